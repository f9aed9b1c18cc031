"""The one taxonomy of failure categories: each category's meaning and policy, in one table.

A category says who must act (`blame`), and how the suite treats a failure of it: whether it is
retried, whether it opens the shared circuit breaker, whether it means the service could not serve
the step (then it explains the other failures on that service), whether a half-open probe that
sees it may end a test at once (nothing of the service answers), and whether, reported by a side
endpoint (readiness, database health) while the service serves, it concerns that endpoint only.

Adding a category: a member of `Category` and its row in `TABLE` (a test checks that every member
has one, and `Policy` has no defaults, so a row states all of it); where a response should be read
as it, a row of `harness.classify.RULES`. The README's table is generated from this one:
`python -m harness.taxonomy --write README.md` rewrites it between its markers (a test fails, naming
that command, when it is out of step); `python -m harness.taxonomy` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from harness import readme_tables
from harness.readme_tables import ReadmeTable

Blame = Literal["infrastructure", "product", "nobody", "suite"]


class Category(StrEnum):
    INFRA_UNREACHABLE = "infra.unreachable"
    INFRA_TIMEOUT = "infra.timeout"
    INFRA_GATEWAY = "infra.gateway"
    INFRA_STARTING = "infra.starting"
    INFRA_DEPENDENCY = "infra.dependency"
    INFRA_CONFIG = "infra.config"
    INFRA_WS = "infra.ws"
    PRODUCT_CONTRACT = "product.contract"
    PRODUCT_AUTH = "product.auth"
    PRODUCT_HTTP = "product.http"
    PRODUCT_GOLDEN_PATH = "product.golden_path"
    PRODUCT_SLO = "product.slo"
    REPRO_NOT_REPRODUCED = "repro.not_reproduced"
    SUITE_ERROR = "suite.error"

    @property
    def policy(self) -> Policy:
        return TABLE[self]

    @property
    def description(self) -> str:
        return self.policy.description

    @property
    def blame(self) -> Blame:
        return self.policy.blame

    @property
    def is_infra(self) -> bool:
        return self.blame == "infrastructure"

    @property
    def is_product(self) -> bool:
        return self.blame == "product"

    @property
    def allure_status(self) -> Literal["broken", "failed"]:
        """Infrastructure and suite defects end as Allure `broken` (the check could not run), the
        product's defects and failed reproductions as `failed`."""
        return "broken" if self.blame in ("infrastructure", "suite") else "failed"


@dataclass(frozen=True)
class Policy:
    """What a category means and how the suite treats it. No defaults: every row states all of it."""

    description: str  # one line, as Allure's categories and the summary show it
    when: str  # the README's explanation: which evidence lands here
    blame: Blame
    retried: bool  # transient: an operation tries again, within its budget
    opens_breaker: bool  # an operation that spent its budget on it opens the shared circuit breaker
    service_down: bool  # the service could not serve the step: it explains other failures on that service
    unanswered: bool  # nothing of the service answered: a half-open probe seeing it ends the test at once
    side_endpoint_scoped: (
        bool  # reported by a side endpoint while the service serves, it concerns that endpoint only
    )


# fmt: off
TABLE: Mapping[Category, Policy] = {
    Category.INFRA_UNREACHABLE: Policy(
        "Infrastructure: unreachable (no HTTP response)",
        "no HTTP response: DNS, TLS, refused, reset (the kind is kept: `dns`, `tls`, `refused`, …)",
        "infrastructure", retried=True, opens_breaker=True, service_down=True, unanswered=True,
        side_endpoint_scoped=False,
    ),
    Category.INFRA_TIMEOUT: Policy(
        "Infrastructure: timeout (no complete response in time)",
        "no complete response within the deadline (a slow-drip body included)",
        "infrastructure", retried=True, opens_breaker=True, service_down=True, unanswered=True,
        side_endpoint_scoped=False,
    ),
    Category.INFRA_GATEWAY: Policy(
        "Infrastructure: gateway error page (502/503/504, not the service's JSON)",
        "502/503/504 whose body is not the service's own JSON (a load balancer / Cloud Run page), or 429",
        "infrastructure", retried=True, opens_breaker=True, service_down=True, unanswered=True,
        side_endpoint_scoped=False,
    ),
    Category.INFRA_STARTING: Policy(
        "Infrastructure: the service is not ready (starting, startup failed, unavailable)",
        "the service's own JSON says it is not ready: starting, startup failed, or a bare 503",
        "infrastructure", retried=True, opens_breaker=True, service_down=True, unanswered=False,
        side_endpoint_scoped=True,
    ),
    Category.INFRA_DEPENDENCY: Policy(
        "Infrastructure: dependency down (database, cache)",
        "the service's own JSON names a dependency down (the error envelope's `SERVICE_UNAVAILABLE` "
        "\"Database unavailable\", `connected: false`, an `agent_error` saying so)",
        "infrastructure", retried=True, opens_breaker=True, service_down=True, unanswered=False,
        side_endpoint_scoped=True,
    ),
    Category.INFRA_CONFIG: Policy(
        "Infrastructure: staging configuration missing (the service says so)",
        "the service says staging lacks a setting (`\"E2E authentication not configured\"`): never retried",
        "infrastructure", retried=False, opens_breaker=False, service_down=True, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.INFRA_WS: Policy(
        "Infrastructure: WebSocket dropped or closed by the platform (1001 mid-turn, 1006, 1012-1015)",
        "the socket dropped (1006), the platform closed it (1012/1013/1014/1015), or a server going away "
        "(1001) mid-turn; retried with a new socket",
        "infrastructure", retried=True, opens_breaker=True, service_down=True, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.PRODUCT_CONTRACT: Policy(
        "Product: contract violation (type, shape, identity)",
        "2xx with wrong content type, unparsable or wrong-shaped JSON, or the wrong service answering",
        "product", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.PRODUCT_AUTH: Policy(
        "Product: authentication defect",
        "login rejected, a valid token refused, a socket accepted without a valid token, or welcomed as "
        "another user (demo mode)",
        "product", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.PRODUCT_HTTP: Policy(
        "Product: unexpected HTTP status or the service's own error",
        "an unexpected status, or the service's own code failing (its error envelope, e.g. "
        "`DB_RECORD_NOT_FOUND`, `INTERNAL_ERROR`; a stack trace in it is noted)",
        "product", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.PRODUCT_GOLDEN_PATH: Policy(
        "Product: golden path (chat events, AI answer, persistence)",
        "chat failed: an error frame, close 1011 (the server's failure), closed before the answer, events "
        "missing / out of order, no answer, an answer not about the question, not stored",
        "product", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.PRODUCT_SLO: Policy(
        "Product: SLO missed",
        "a success-rate or latency threshold missed",
        "product", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.REPRO_NOT_REPRODUCED: Policy(
        "Reproduction: the issue's signature was not seen",
        "a reproduction did not see its issue's signature",
        "nobody", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
    Category.SUITE_ERROR: Policy(
        "Suite defect: an error of the validation suite itself",
        "an exception the suite did not anticipate, or a module that does not collect: a defect of the "
        "suite, never blamed on the product",
        "suite", retried=False, opens_breaker=False, service_down=False, unanswered=False,
        side_endpoint_scoped=False,
    ),
}
# fmt: on


def markdown_table() -> str:
    """The README's category table, rendered from `TABLE`."""
    rows = ["| category | when |", "|---|---|"]
    rows += [f"| `{category.value}` | {category.policy.when} |" for category in Category]
    return "\n".join(rows)


README_TABLE = ReadmeTable("categories", "harness.taxonomy", markdown_table)


if __name__ == "__main__":
    readme_tables.run(
        README_TABLE, "The failure categories: each one's meaning and policy, as the README's table."
    )
