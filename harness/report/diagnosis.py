"""One diagnosis per run, weighing the evidence: who must act?

A failure is *explained* by infrastructure when the service it needed could not serve in this run:
that service (or its dependency, on the path the step needed) was unreachable, timing out, behind a
gateway page, starting, missing its configuration, or dropped the socket. A dependency that a side
endpoint (readiness, database health) reports down while the service serves explains nothing else.
The service's own code failing (an error envelope, an error frame, close 1011) is never
infrastructure.

The cause (`harness.report.cause`) weighs a known issue seen only from outside against the platform's own
record; when the record rules it out, its label is dropped before this diagnosis (the plugin does it),
and startups dying of a kind the product (or its configuration) must act on (a bad deploy, a refused
password, a missing Cloud SQL socket; `harness.startup.kinds`) are the product's, not the
infrastructure's. A kind the infrastructure acts on, or an UNRECOGNISED one, leaves the outside view
(infrastructure) as it is: the headline and the owner say which.

Order:
1. `known_issue`: a catalogued issue labels failures (or a passed reproduction) and every failure is
   labelled by it or explained by the outage it causes;
2. `product_defect`: a product failure that no infrastructure failure explains;
3. `infrastructure`: infrastructure failures (and whatever they explain);
4. `not_reproduced`: a reproduction did not see its issue, and nothing else failed;
5. `suite_error`: only the suite itself failed;
6. `healthy`: nothing failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from harness.report.cause import Cause
from harness.taxonomy import Category

Kind = Literal["healthy", "known_issue", "infrastructure", "product_defect", "not_reproduced", "suite_error"]


class Result(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def known_issue(self) -> str | None: ...
    @property
    def service(self) -> str | None: ...
    @property
    def side_endpoint(self) -> bool: ...


@dataclass(frozen=True)
class Diagnosis:
    kind: Kind
    known_issue: str | None = None


def _failed(tests: Sequence[Result]) -> list[Result]:
    return [t for t in tests if t.status in ("failed", "broken") and t.category]


def _category(test: Result) -> Category:
    """The category of a failure (`_failed` keeps only results that have one)."""
    return Category(test.category or Category.SUITE_ERROR)


def takes_down(test: Result) -> bool:
    """This infrastructure failure means its service could not serve the step."""
    policy = _category(test).policy
    return policy.service_down and not (policy.side_endpoint_scoped and test.side_endpoint)


def down_services(failures: Sequence[Result]) -> set[str]:
    return {t.service or "" for t in failures if takes_down(t)}


def diagnose(tests: Sequence[Result], cause: Cause | None = None) -> Diagnosis:
    diagnosis = _weigh(tests)
    if (
        diagnosis.kind == "infrastructure"
        and cause
        and cause.status == "ruled_out"
        and cause.instead == "startup"
        and cause.kind is not None
        and cause.kind.blame == "product"
    ):
        # The record shows the backend's startups dying of the product's (or its configuration's)
        # doing: a bad deploy, a refused password, a missing Cloud SQL socket, an empty database...
        return Diagnosis("product_defect")
    return diagnosis


def _weigh(tests: Sequence[Result]) -> Diagnosis:
    failures = _failed(tests)
    down = down_services(failures)

    def explained(test: Result) -> bool:
        return (test.service or "") in down

    issue = _known_issue(tests, failures)
    if issue is not None:
        labelled = {t.service or "" for t in failures if t.known_issue == issue and takes_down(t)}
        if all(t.known_issue == issue or (t.service or "") in labelled for t in failures):
            return Diagnosis("known_issue", issue)
    blamed = {_category(t).blame for t in failures}
    if any(_category(t).is_product and not explained(t) for t in failures):
        return Diagnosis("product_defect")
    if "infrastructure" in blamed:
        return Diagnosis("infrastructure")
    if "nobody" in blamed:
        return Diagnosis("not_reproduced")
    if "suite" in blamed:
        return Diagnosis("suite_error")
    return Diagnosis("healthy")


def _known_issue(tests: Sequence[Result], failures: Sequence[Result]) -> str | None:
    """The issue most failures (or passed reproductions) are labelled with, if any."""
    labels = Counter(t.known_issue for t in failures if t.known_issue)
    labels.update(t.known_issue for t in tests if t.status == "passed" and t.known_issue)
    return labels.most_common(1)[0][0] if labels else None
