"""The one taxonomy of failure categories (a contract: verdict.json and Allure categories use the codes).

Four families say who must act: `infra.*` the platform (Allure *broken*), `product.*` the product's
code (Allure *failed*), `repro.*` a reproduction that found the system not in the state it looks
for (failed), `suite.*` this suite itself (broken: nobody's fault but ours).
"""

from enum import StrEnum


class Category(StrEnum):
    INFRA_UNREACHABLE = "infra.unreachable"  # no HTTP response: DNS, refused, reset, TLS
    INFRA_TIMEOUT = "infra.timeout"  # no complete response within the deadline
    INFRA_GATEWAY = "infra.gateway"  # 502/503/504 whose body is not the service's own JSON
    INFRA_STARTING = "infra.starting"  # the service's own JSON says it is not ready (starting, failed, 503)
    INFRA_DEPENDENCY = "infra.dependency"  # the service says a dependency (database, cache) is down
    INFRA_CONFIG = "infra.config"  # the service says staging lacks a setting (e.g. the E2E bypass)
    INFRA_WS = "infra.ws"  # the WebSocket dropped (1006) or closed by the platform (1012-1015)
    PRODUCT_CONTRACT = "product.contract"  # 2xx with wrong type/shape, or the wrong service answering
    PRODUCT_AUTH = "product.auth"  # login rejected, valid token refused, invalid token accepted
    PRODUCT_HTTP = "product.http"  # an unexpected status, or the service's own error
    PRODUCT_GOLDEN_PATH = "product.golden_path"  # chat failed: error frame, 1011, events missing, no answer
    PRODUCT_SLO = "product.slo"  # a success-rate or latency threshold missed
    REPRO_NOT_REPRODUCED = "repro.not_reproduced"  # a reproduction did not see its issue's signature
    SUITE_ERROR = "suite.error"  # an exception the suite did not anticipate: a defect of the suite

    @property
    def family(self) -> str:
        return self.value.split(".", 1)[0]

    @property
    def is_infra(self) -> bool:
        return self.family == "infra"

    @property
    def is_product(self) -> bool:
        return self.family == "product"

    @property
    def allure_status(self) -> str:
        """Infrastructure and suite defects end as Allure `broken`, the rest as `failed`."""
        return "broken" if self.family in ("infra", "suite") else "failed"


# Infrastructure failures that mean a service could not serve the step at all: they explain any
# other failure on the same service in the same run (see `harness.diagnosis`).
SERVICE_DOWN = frozenset(
    {
        Category.INFRA_UNREACHABLE,
        Category.INFRA_TIMEOUT,
        Category.INFRA_GATEWAY,
        Category.INFRA_STARTING,
        Category.INFRA_DEPENDENCY,
        Category.INFRA_CONFIG,
        Category.INFRA_WS,
    }
)

DESCRIPTIONS: dict[Category, str] = {
    Category.INFRA_UNREACHABLE: "Infrastructure: unreachable (no HTTP response)",
    Category.INFRA_TIMEOUT: "Infrastructure: timeout (no complete response in time)",
    Category.INFRA_GATEWAY: "Infrastructure: gateway error page (502/503/504, not the service's JSON)",
    Category.INFRA_STARTING: "Infrastructure: the service is not ready (starting, startup failed, unavailable)",
    Category.INFRA_DEPENDENCY: "Infrastructure: dependency down (database, cache)",
    Category.INFRA_CONFIG: "Infrastructure: staging configuration missing (the service says so)",
    Category.INFRA_WS: "Infrastructure: WebSocket dropped (1006) or closed by the platform (1012-1015)",
    Category.PRODUCT_CONTRACT: "Product: contract violation (type, shape, identity)",
    Category.PRODUCT_AUTH: "Product: authentication defect",
    Category.PRODUCT_HTTP: "Product: unexpected HTTP status or the service's own error",
    Category.PRODUCT_GOLDEN_PATH: "Product: golden path (chat events, AI answer, persistence)",
    Category.PRODUCT_SLO: "Product: SLO missed",
    Category.REPRO_NOT_REPRODUCED: "Reproduction: the issue's signature was not seen",
    Category.SUITE_ERROR: "Suite defect: an error of the validation suite itself",
}
