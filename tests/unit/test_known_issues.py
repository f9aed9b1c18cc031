"""The known-issue catalogue (fixtures/known_issues.json): it loads and validates, its signatures
label exactly the shapes they describe (through the classifier's entry points), and any catalogued
issue, not only #1278, can label an observation."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness import known_issues
from harness.classify import RULES, Expect, classify_http, finding
from harness.evidence import HttpEvidence, Observation, Target
from harness.known_issues import KnownIssue, Signature
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

ISSUE_1278 = "issue-1278"
WS_PERMISSIVE = "staging-ws-auth-permissive"
BACKEND = "https://api.staging.netrasystems.ai"
AUTH = "https://auth.staging.netrasystems.ai"
GFE_503 = (
    "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 503 (Server Error)!!1</title>"
    "<p>The server encountered a temporary error and could not complete your request.</html>"
)
# Outcomes decided beyond the table (harness.operations, tests/e2e_staging): kinds a signature may name.
FINDING_KINDS = {"ws_accepted_without_valid_token", "ws_wrong_user", "startups_failed_by_database_timeout"}
WS_OBSERVATION = Observation(channel="ws", target="backend", path="/ws", status=101, expected=True)
LOGS_OBSERVATION = Observation(channel="logs", target="backend", path="startup")


def http(
    status: int,
    body: dict[str, Any] | list[Any] | str,
    *,
    path: str = "/health",
    base: str = BACKEND,
    content_type: str = "text/html; charset=UTF-8",
) -> HttpEvidence:
    """Evidence as harness.http records it: the snippet always, `json` only for a JSON body."""
    if isinstance(body, str):
        return HttpEvidence(
            "GET", f"{base}{path}", status=status, content_type=content_type, body_snippet=body
        )
    return HttpEvidence(
        "GET",
        f"{base}{path}",
        status=status,
        content_type="application/json",
        body_snippet=json.dumps(body),
        json=body,
    )


def label(ev: HttpEvidence, target: Target = "backend") -> str | None:
    return classify_http(ev, Expect(), target=target).known_issue


def write(tmp_path: Path, catalogue: dict[str, Any]) -> Path:
    path = tmp_path / "known_issues.json"
    path.write_text(json.dumps(catalogue), encoding="utf-8")
    return path


def issue(signature: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "issue-42",
        "name": "Issue #42",
        "title": "Auth service lacks its E2E bypass secret",
        "link": "https://example.invalid/42",
        "blame": "infrastructure",
        "headline": "the auth service lacks its E2E bypass secret",
        "owner": "the platform team",
        "review_by": "2027-01-31",
        "signatures": [signature],
    } | fields


# -- the catalogue ---------------------------------------------------------------------------------


def test_the_catalogue_holds_both_issues() -> None:
    assert [i.id for i in known_issues.load()] == [ISSUE_1278, WS_PERMISSIVE]


@pytest.mark.parametrize(("issue_id", "blame"), [(ISSUE_1278, "infrastructure"), (WS_PERMISSIVE, "product")])
def test_each_issue_says_who_must_act(issue_id: str, blame: str) -> None:
    found = known_issues.get(issue_id)
    assert found is not None and found.blame == blame


@pytest.mark.parametrize("issue_id", [ISSUE_1278, WS_PERMISSIVE])
def test_each_issue_has_a_headline(issue_id: str) -> None:
    found = known_issues.get(issue_id)
    assert found is not None and found.headline.strip()


def test_1278_links_the_issue() -> None:
    found = known_issues.get(ISSUE_1278)
    assert found is not None and found.link == "https://github.com/netra-systems/zen/issues/1278"


@pytest.mark.parametrize("issue_id", [ISSUE_1278, WS_PERMISSIVE])
def test_allure_category_names_the_issue_and_its_title(issue_id: str) -> None:
    found = known_issues.get(issue_id)
    assert found is not None and found.allure_category == f"Known issue {issue_id}: {found.title}"


@pytest.mark.parametrize("issue_id", [ISSUE_1278, WS_PERMISSIVE])
def test_mark_names_the_issue(issue_id: str) -> None:
    found = known_issues.get(issue_id)
    assert found is not None and found.mark == f"(known issue {issue_id})"


@pytest.mark.parametrize("issue_id", [None, "issue-9999"])
def test_get_an_unknown_issue_is_none(issue_id: str | None) -> None:
    assert known_issues.get(issue_id) is None


def test_every_kind_a_signature_names_exists() -> None:
    """A misspelt kind would silently never match."""
    named = {kind for i in known_issues.load() for s in i.signatures for kind in s.kinds}
    assert named <= {rule.name for rule in RULES} | FINDING_KINDS


# -- issue-1278: the gateway page on the backend's health ----------------------------------------


@pytest.mark.parametrize("path", ["/health", "/health/", "/health/ready", "/health/database"])
def test_gateway_503_page_on_backend_health_is_1278(path: str) -> None:
    assert label(http(503, GFE_503, path=path)) == ISSUE_1278


def test_gateway_503_page_labelled_json_is_still_1278() -> None:
    ev = http(503, GFE_503, content_type="application/json")
    ev.json_error = "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"
    assert label(ev) == ISSUE_1278


def test_the_label_keeps_the_category() -> None:
    outcome = classify_http(http(503, GFE_503), Expect(), target="backend")
    assert (outcome.category, outcome.kind) == (Category.INFRA_GATEWAY, "gateway_page")


@pytest.mark.parametrize("path", ["/api/threads", "/ws/health", "/healthz", "/api/health"])
def test_gateway_503_page_off_the_health_path_is_not_1278(path: str) -> None:
    assert label(http(503, GFE_503, path=path)) is None


def test_gateway_503_page_on_auth_health_is_not_1278() -> None:
    assert label(http(503, GFE_503, base=AUTH), target="auth") is None


@pytest.mark.parametrize(
    "body",
    [
        ["unavailable"],  # JSON, not an object: still a gateway page by the table, but JSON
        {"error": "Service Unavailable", "message": "Service is shutting down gracefully"},
        {"error": True, "error_code": "SERVICE_UNAVAILABLE", "message": "Database unavailable"},
    ],
    ids=["json-list", "json-object", "error-envelope"],
)
def test_a_json_503_on_backend_health_is_not_1278(body: dict[str, Any] | list[Any]) -> None:
    assert label(http(503, body)) is None


@pytest.mark.parametrize("status", [502, 504])
def test_another_gateway_status_is_not_1278(status: int) -> None:
    assert label(http(status, GFE_503)) is None


# -- issue-1278: startup failed in its database phase --------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {
            "status": "unhealthy",
            "message": "Startup failed",
            "startup_failed": True,
            "details": {"phase": "database"},
        },
        {
            "status": "unhealthy",
            "message": "Startup failed",
            "startup_failed": True,
            "startup_phase": "database",
        },
        {
            "status": "unhealthy",
            "message": "Startup failed: database phase timed out after 95s",
            "startup_failed": True,
        },
    ],
    ids=["phase-in-details", "startup-phase", "message-names-the-database"],
)
def test_startup_failed_in_the_database_phase_is_1278(body: dict[str, Any]) -> None:
    assert label(http(503, body)) == ISSUE_1278


@pytest.mark.parametrize(
    "body",
    [
        {
            "status": "unhealthy",
            "message": "Startup failed: redis error -3",
            "startup_failed": True,
            "phase": "cache",
        },
        {"message": "Startup in progress", "startup_in_progress": True, "details": {"phase": "database"}},
        {"message": "Startup failed", "startup_failed": False, "details": {"phase": "database"}},
        {"message": "Startup error in the database phase, retrying", "startup_in_progress": True},
    ],
    ids=["cache-phase", "in-progress", "not-failed", "retrying-after-a-database-error"],
)
def test_startup_not_failed_in_the_database_phase_is_not_1278(body: dict[str, Any]) -> None:
    assert label(http(503, body)) is None


def test_startup_failed_in_the_database_phase_on_auth_is_not_1278() -> None:
    body = {"message": "Startup failed", "startup_failed": True, "details": {"phase": "database"}}
    assert label(http(503, body, base=AUTH), target="auth") is None


# -- issue-1278: startups failing in the backend's logs ------------------------------------------


def test_startups_failed_by_the_database_timeout_in_the_logs_is_1278() -> None:
    outcome = finding(LOGS_OBSERVATION, Category.INFRA_STARTING, "startups_failed_by_database_timeout", "3/3")
    assert outcome.known_issue == ISSUE_1278


def test_slow_database_phase_in_the_logs_is_not_1278() -> None:
    outcome = finding(LOGS_OBSERVATION, Category.INFRA_DEPENDENCY, "startups_slow_in_database_phase", "slow")
    assert outcome.known_issue is None


def test_the_logs_kind_on_another_channel_is_not_1278() -> None:
    obs = Observation(channel="http", target="backend", path="/health")
    outcome = finding(obs, Category.INFRA_STARTING, "startups_failed_by_database_timeout", "x")
    assert outcome.known_issue is None


# -- staging-ws-auth-permissive --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ws_accepted_without_valid_token", "ws_wrong_user"])
def test_a_socket_accepted_without_a_valid_token_is_permissive_auth(kind: str) -> None:
    assert finding(WS_OBSERVATION, Category.PRODUCT_AUTH, kind, "welcomed 'demo-use...'").known_issue == (
        WS_PERMISSIVE
    )


@pytest.mark.parametrize("kind", ["auth_refused", "closed_early", "ws_refused_valid_token"])
def test_another_socket_kind_is_not_permissive_auth(kind: str) -> None:
    assert finding(WS_OBSERVATION, Category.PRODUCT_AUTH, kind, "x").known_issue is None


def test_permissive_auth_needs_the_auth_category() -> None:
    outcome = finding(WS_OBSERVATION, Category.PRODUCT_GOLDEN_PATH, "ws_wrong_user", "x")
    assert outcome.known_issue is None


def test_permissive_auth_needs_the_socket() -> None:
    obs = Observation(channel="http", target="backend", path="/api/threads", status=200, expected=True)
    assert finding(obs, Category.PRODUCT_AUTH, "ws_wrong_user", "x").known_issue is None


# -- validation of a catalogue file ----------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        {"name": "bad-body", "body_regex": ["("]},
        {"name": "bad-path", "path_regex": "[unclosed"},
    ],
    ids=["body-regex", "path-regex"],
)
def test_an_invalid_regex_is_refused(tmp_path: Path, signature: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="bad regex"):
        known_issues.load(write(tmp_path, {"issues": [issue(signature)]}))


def test_an_unknown_signature_field_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"issues": [issue({"name": "n", "host": "api.staging"})]})
    with pytest.raises(ValidationError, match="host"):
        known_issues.load(path)


def test_a_signature_without_a_rule_is_refused(tmp_path: Path) -> None:
    """It would label every failure of every run with its issue."""
    with pytest.raises(ValidationError, match="states no rule"):
        known_issues.load(write(tmp_path, {"issues": [issue({"name": "catch-all"})]}))


@pytest.mark.parametrize("field", ["owner", "review_by"])
def test_an_issue_without_an_owner_or_a_review_date_is_refused(tmp_path: Path, field: str) -> None:
    """Every catalogued issue answers to someone until a date: none explains nights away forever."""
    whole = issue({"name": "n", "target": "auth"})
    del whole[field]
    with pytest.raises(ValidationError, match=field):
        known_issues.load(write(tmp_path, {"issues": [whole]}))


def test_no_catalogued_issue_is_past_its_review_date() -> None:
    """The catalogue's review dates are real: past one, the nightly reads a night red only with that
    issue as a new failure (re-triage). This test says so first, naming what to do, rather than
    leaving the self-tests' headlines to change one morning."""
    today = date.today()
    past = [
        f"{i.id} (review_by {i.review_by}, owner {i.owner})"
        for i in known_issues.load()
        if i.past_review(today)
    ]
    assert not past, f"re-triage, then move review_by in fixtures/known_issues.json: {past}"


def test_issue_1278_is_the_platform_teams_and_has_its_tracker() -> None:
    found = known_issues.get(ISSUE_1278)
    assert found is not None
    assert "platform/infrastructure" in found.owner
    assert (found.review_by, found.tracker) == (date(2026, 12, 21), 1278)
    assert found.past_review(date(2026, 12, 22)) and not found.past_review(date(2026, 12, 21))


def test_duplicate_issue_ids_are_refused(tmp_path: Path) -> None:
    twice = issue({"name": "n", "target": "auth"})
    with pytest.raises(ValidationError, match="unique"):
        known_issues.load(write(tmp_path, {"issues": [twice, twice]}))


def test_an_unknown_issue_field_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"issues": [issue({"name": "n", "target": "auth"}, colour="red")]})
    with pytest.raises(ValidationError, match="colour"):
        known_issues.load(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("blame", "nobody"),
        ("signatures", []),
        ("owner", ""),
        ("review_by", "next spring"),
        ("review_by", "2026-02-30"),
        ("tracker", 0),
        ("tracker", "#1278"),
    ],
)
def test_an_invalid_issue_is_refused(tmp_path: Path, field: str, value: Any) -> None:
    path = write(tmp_path, {"issues": [issue({"name": "n", "target": "auth"}, **{field: value})]})
    with pytest.raises(ValidationError, match=field):
        known_issues.load(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [("categories", ["infra.gatway"]), ("target", "frontend"), ("channel", "email")],
)
def test_an_invalid_signature_value_is_refused(tmp_path: Path, field: str, value: Any) -> None:
    path = write(tmp_path, {"issues": [issue({"name": "n", field: value})]})
    with pytest.raises(ValidationError, match=field):
        known_issues.load(path)


# -- any catalogued issue labels ------------------------------------------------------------------


BYPASS_NOT_CONFIGURED = {
    "name": "bypass-secret-missing",
    "target": "auth",
    "channel": "http",
    "path_regex": "^/auth/e2e/test-auth$",
    "kinds": ["config_missing"],
    "categories": ["infra.config"],
    "statuses": [503],
    "body_json": True,
    "body_regex": ["(?i)not configured"],
}


def _login_not_configured() -> tuple[Observation, Category, str]:
    ev = http(503, {"detail": "E2E authentication not configured"}, path="/auth/e2e/test-auth", base=AUTH)
    expect = Expect(auth_endpoint=True)
    outcome = classify_http(ev, expect, target="auth")
    assert outcome.category is not None
    return ev.observe("auth", ok=expect.ok, auth_step=True), outcome.category, outcome.kind


def test_another_catalogue_loads(tmp_path: Path) -> None:
    issues = known_issues.load(write(tmp_path, {"issues": [issue(BYPASS_NOT_CONFIGURED)]}))
    assert issues == (KnownIssue.model_validate(issue(BYPASS_NOT_CONFIGURED)),)


def test_a_catalogue_is_read_once_per_path(tmp_path: Path) -> None:
    path = write(tmp_path, {"issues": [issue(BYPASS_NOT_CONFIGURED)]})
    first = known_issues.load(path)
    path.write_text("not JSON", encoding="utf-8")
    assert known_issues.load(path) is first


def test_an_issue_of_another_catalogue_labels_its_observation(tmp_path: Path) -> None:
    issues = known_issues.load(write(tmp_path, {"issues": [issue(BYPASS_NOT_CONFIGURED)]}))
    obs, category, kind = _login_not_configured()
    found = known_issues.match(obs, category, kind, issues=issues)
    assert found is not None and found.issue.id == "issue-42"


def test_the_default_catalogue_does_not_label_that_observation() -> None:
    obs, category, kind = _login_not_configured()
    assert known_issues.match(obs, category, kind) is None


def test_an_extra_issue_beside_1278_labels_its_own_observation(tmp_path: Path) -> None:
    catalogue = json.loads(known_issues.DEFAULT_PATH.read_text(encoding="utf-8"))
    catalogue["issues"].append(issue(BYPASS_NOT_CONFIGURED))
    issues = known_issues.load(write(tmp_path, catalogue))
    obs, category, kind = _login_not_configured()
    found = known_issues.match(obs, category, kind, issues=issues)
    assert found is not None and found.issue.id == "issue-42"


def test_the_first_matching_issue_wins(tmp_path: Path) -> None:
    catalogue = {"issues": [issue(BYPASS_NOT_CONFIGURED), issue(BYPASS_NOT_CONFIGURED, id="issue-43")]}
    obs, category, kind = _login_not_configured()
    found = known_issues.match(obs, category, kind, issues=known_issues.load(write(tmp_path, catalogue)))
    assert found is not None and found.issue.id == "issue-42"


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("target", "backend"),
        ("channel", "ws"),
        ("path_regex", "^/health"),
        ("kinds", ["gateway_page"]),
        ("categories", ["infra.gateway"]),
        ("statuses", [502]),
        ("body_json", False),
        ("body_regex", ["(?i)not configured", "startup"]),
    ],
)
def test_every_rule_of_a_signature_must_hold(rule: str, value: Any) -> None:
    signature = Signature.model_validate(BYPASS_NOT_CONFIGURED | {rule: value})
    obs, category, kind = _login_not_configured()
    assert not signature.matches(obs, category, kind)


def test_a_signature_whose_rules_all_hold_matches() -> None:
    obs, category, kind = _login_not_configured()
    assert Signature.model_validate(BYPASS_NOT_CONFIGURED).matches(obs, category, kind)
