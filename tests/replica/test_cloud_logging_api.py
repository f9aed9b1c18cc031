"""The real `gcloud logging read`, as the suite calls it, against the local stand-in of Cloud Logging.

The suite reads the backend's startup record with the real Google Cloud SDK; these tests run that SDK
(no stand-in of gcloud) over real HTTP against `replica.cloud_logging_api`, which serves a replica's
`cloud-logging.json` the way Google's entries.list does. They pin down what the real client sends and
prints, as measured with Google Cloud SDK 528 (the module's docstring of the stand-in and the numbers
below): the request, paging, `--limit`, and each error's exit status and words.

Every gcloud here has a fresh CLOUDSDK_CONFIG and HOME (tmp_path), a token file of its own, and no way
out but 127.0.0.1 (`gcloud_env`); nothing of the machine's own gcloud setup is inherited.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.startup.gcloud_errors import read_failure
from replica.cloud_logging import LOCATION, LOG_STDOUT, LOG_SYSTEM, PROJECT_ID, SERVICE_NAME, CloudLogging
from replica.cloud_logging_api import LIST_PATH, StandIn, suite_record

GCLOUD = shutil.which("gcloud")
pytestmark = [
    pytest.mark.replica,
    pytest.mark.skipif(
        GCLOUD is None,
        reason="gcloud (the Google Cloud CLI) is not on PATH: these tests run the real gcloud against a "
        "local stand-in of Cloud Logging (install google-cloud-cli to run them)",
    ),
]

Start = Callable[..., tuple[StandIn, dict[str, str]]]

# The suite's filter, as harness/startup/sources.py builds it. Kept here verbatim (not imported) so
# that these tests do not move with the harness; test_gcloud_startup_source.py runs the suite's own.
TEXT_REGEX = (
    "STARTUP SEQUENCE (INITIATED|COMPLETED SUCCESSFULLY|FAILED)|PHASE TRANSITION|COMPLETED: *DATABASE *[(]|"
    "DATABASE *: *[0-9]|PHASE FAILED:|Failed at Phase:|FAIL: *Error:|Application startup failed|"
    "Container called exit[(]|exited with code|capacity-aware timeouts|Missing critical database tables|"
    "Database connection (error|timeout) after|Database connectivity check failed|"
    "Database initialization attempt [0-9]+ failed|Circuit breaker: Database failures reached threshold|"
    "Memory limit of [0-9]+|container ran out of memory|[Ss]tartup probe failed|STARTUP [A-Z]+ probe failed|"
    "failed to start and listen on the port|Container terminated on signal"
)
SINCE = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(minutes=10)
REVISION = f"{SERVICE_NAME}-00042-rep"
ERROR = "ERROR: (gcloud.logging.read) "


def rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def suite_filter(since: datetime = SINCE, until: datetime = UNTIL) -> str:
    text = json.dumps(TEXT_REGEX)
    return " AND ".join(
        [
            'resource.type="cloud_run_revision"',
            f'resource.labels.service_name="{SERVICE_NAME}"',
            f'resource.labels.location="{LOCATION}"',
            f'timestamp>="{rfc3339(since)}"',
            f'timestamp<="{rfc3339(until)}"',
            f"(jsonPayload.message=~{text} OR textPayload=~{text})",
        ]
    )


# --- the replica's record ----------------------------------------------------------------------------
def ns(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000


@dataclass
class Record:
    """A `cloud-logging.json` written by the replica's own writer, and which of its entries the
    suite's filter must return (by insertId)."""

    path: Path
    wanted: set[str]
    unwanted: dict[str, str]  # insertId -> why the filter must leave it out

    def entries(self) -> list[dict[str, Any]]:
        return list(json.loads(self.path.read_text()))

    def expected(self) -> list[dict[str, Any]]:
        """The wanted entries, in the file's order (newest first), as the file holds them."""
        return [e for e in self.entries() if e["insertId"] in self.wanted]


def write_record(path: Path, lines: list[tuple[datetime, str, str | None, dict[str, Any]]]) -> Record:
    """`lines`: (time, message, why it must be left out or None, changes to the entry's resource labels).
    A message starting with `text:` is a platform line (textPayload), the others the app's JSON lines."""
    log = CloudLogging(path)
    instance = log.instance(REVISION)
    for at, message, _, _ in lines:
        if message.startswith("text:"):
            fields: dict[str, Any] = {"severity": "WARNING", "textPayload": message[5:]}
            log.add(instance.instance_id, REVISION, LOG_SYSTEM, ns(at), fields)
        else:
            fields = {"severity": "INFO", "jsonPayload": {"message": message, "timestamp": at.isoformat()}}
            log.add(instance.instance_id, REVISION, LOG_STDOUT, ns(at), fields)
    log.write()
    entries = json.loads(path.read_text())
    # The writer stores newest first; map each line to its entry by time and text.
    by_key = {(e["timestamp"], text_of(e)): e for e in entries}
    wanted: set[str] = set()
    unwanted: dict[str, str] = {}
    for at, message, why, labels in lines:
        entry = by_key[(rfc3339(at), message.removeprefix("text:"))]
        entry["resource"]["labels"].update(labels)
        if why is None:
            wanted.add(entry["insertId"])
        else:
            unwanted[entry["insertId"]] = why
    path.write_text(json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return Record(path, wanted, unwanted)


def text_of(entry: dict[str, Any]) -> str:
    payload = entry.get("jsonPayload")
    return str(payload.get("message", "")) if isinstance(payload, dict) else str(entry.get("textPayload", ""))


def startup_record(path: Path) -> Record:
    """Two startups in the window (one good, one dying in the database phase), and lines the suite's
    filter must leave out: outside the window by a microsecond, another service, another region,
    text the regex does not match (or matches only case-insensitively)."""
    s = SINCE
    return write_record(
        path,
        [
            (
                s - timedelta(microseconds=1),
                "STARTUP SEQUENCE INITIATED",
                "a microsecond before the window",
                {},
            ),
            (s, "STARTUP SEQUENCE INITIATED", None, {}),
            (s + timedelta(seconds=1), "PHASE TRANSITION: INIT -> DEPENDENCIES", None, {}),
            (s + timedelta(seconds=2), "GET /health 200", "text the regex does not match", {}),
            (s + timedelta(seconds=3), "  COMPLETED: DATABASE (1.234s)", None, {}),
            (s + timedelta(seconds=4), "startup sequence initiated", "the regex is case-sensitive", {}),
            (s + timedelta(seconds=5), "STARTUP SEQUENCE COMPLETED SUCCESSFULLY", None, {}),
            (
                s + timedelta(seconds=6),
                "STARTUP SEQUENCE INITIATED",
                "another service",
                {"service_name": "other"},
            ),
            (
                s + timedelta(seconds=7),
                "STARTUP SEQUENCE INITIATED",
                "another region",
                {"location": "europe-west1"},
            ),
            (s + timedelta(minutes=1), "STARTUP SEQUENCE INITIATED", None, {}),
            (s + timedelta(minutes=1, seconds=2), "PHASE FAILED: DATABASE timeout", None, {}),
            (s + timedelta(minutes=1, seconds=3), "text:Container called exit(3).", None, {}),
            (
                s + timedelta(minutes=1, seconds=4),
                "text:Uvicorn running on http://0.0.0.0:8000",
                "not matched",
                {},
            ),
            (UNTIL, "STARTUP SEQUENCE INITIATED", None, {}),
            (
                UNTIL + timedelta(microseconds=1),
                "STARTUP SEQUENCE INITIATED",
                "a microsecond after the window",
                {},
            ),
        ],
    )


def many_record(path: Path, count: int) -> Record:
    """`count` matching lines a second apart in the window, and one before it."""
    lines: list[tuple[datetime, str, str | None, dict[str, Any]]] = [
        (SINCE + timedelta(seconds=i), f"PHASE TRANSITION {i}", None, {}) for i in range(count)
    ]
    lines.append((SINCE - timedelta(seconds=1), "PHASE TRANSITION before", "before the window", {}))
    return write_record(path, lines)


# --- the real gcloud ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    def entries(self) -> list[dict[str, Any]]:
        return list(json.loads(self.stdout))


def gcloud_read(env: dict[str, str], log_filter: str | None = None, *, limit: int = 5000) -> Run:
    """`gcloud logging read` exactly as the suite runs it (harness/startup/sources.py `_from_gcloud`)."""
    assert GCLOUD is not None
    command = [
        GCLOUD,
        "logging",
        "read",
        suite_filter() if log_filter is None else log_filter,
        f"--project={PROJECT_ID}",
        "--format=json",
        f"--limit={limit}",
    ]
    began = time.monotonic()
    done = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def assert_no_secret(run: Run, stand_in: StandIn) -> None:
    token = stand_in.token_file.read_text().strip()
    assert token not in run.stdout and token not in run.stderr


# --- what comes back ---------------------------------------------------------------------------------
def test_gcloud_returns_the_replicas_entries_of_the_window_as_the_replica_wrote_them(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    record = startup_record(tmp_path / "cloud-logging.json")
    stand_in, env = cloud_logging_api(record.path)
    run = gcloud_read(env)
    assert (run.exit_status, run.stderr) == (0, ""), run
    got = run.entries()
    assert got == record.expected()  # the very entries, newest first, field for field
    returned = {e["insertId"] for e in got}
    left_out = {why for insert_id, why in record.unwanted.items() if insert_id not in returned}
    assert left_out == set(record.unwanted.values())
    assert len(got) == 8 and run.seconds < 15
    assert_no_secret(run, stand_in)


def test_gcloud_prints_what_it_read_as_the_replicas_file_prints_it(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """Byte for byte: `--format=json` is a 2-space indented array with sorted keys, as the file is."""
    record = many_record(tmp_path / "cloud-logging.json", 3)
    _, env = cloud_logging_api(record.path)
    run = gcloud_read(env)
    assert run.exit_status == 0, run
    assert run.stdout == json.dumps(record.expected(), indent=2, sort_keys=True) + "\n"


def test_the_request_is_the_suites_filter_for_its_project_newest_first_with_its_bearer_token(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    record = many_record(tmp_path / "cloud-logging.json", 3)
    stand_in, env = cloud_logging_api(record.path)
    assert gcloud_read(env).exit_status == 0
    (request,) = stand_in.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert (request.method, request.path) == ("POST", f"{LIST_PATH}?alt=json")
    assert request.body == {
        "filter": suite_filter(),
        "orderBy": "timestamp desc",
        "pageSize": 1000,  # min(--limit, 1000)
        "resourceNames": [f"projects/{PROJECT_ID}"],
    }
    assert headers["authorization"] == f"Bearer {stand_in.token_file.read_text().strip()}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("google-cloud-sdk gcloud/")
    assert "command/gcloud.logging.read" in headers["user-agent"]


def test_gcloud_pages_through_more_entries_than_a_page_holds(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    record = many_record(tmp_path / "cloud-logging.json", 130)
    stand_in, env = cloud_logging_api(record.path)
    run = gcloud_read(env)
    assert run.exit_status == 0, run
    assert run.entries() == record.expected() and len(record.expected()) == 130
    bodies = [r.body for r in stand_in.requests]
    assert [len(b) for b in bodies] == [4, 5, 5]  # three pages of 50, 50, 30: a token on the 2nd and 3rd
    assert [b.get("pageSize") for b in bodies] == [1000, 1000, 1000]
    assert all(b["filter"] == suite_filter() for b in bodies)
    assert len({b.get("pageToken") for b in bodies}) == 3


def test_limit_gives_the_newest_entries_and_stops_asking_silently(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """`--limit=N` with more entries: the N newest, exit 0, nothing on stderr, and gcloud asks for no
    more than it needs (pageSize = what is still missing)."""
    record = many_record(tmp_path / "cloud-logging.json", 130)
    stand_in, env = cloud_logging_api(record.path)
    run = gcloud_read(env, limit=70)
    assert (run.exit_status, run.stderr) == (0, ""), run
    assert run.entries() == record.expected()[:70]
    assert [r.body.get("pageSize") for r in stand_in.requests] == [70, 20]

    stand_in.requests.clear()
    run = gcloud_read(env, limit=50)
    assert (run.exit_status, run.stderr, run.entries()) == (0, "", record.expected()[:50])
    assert len(stand_in.requests) == 1  # a full page at the limit: no second request, though there is more


def test_no_entries_print_an_empty_array(cloud_logging_api: Start, tmp_path: Path) -> None:
    record = many_record(tmp_path / "cloud-logging.json", 3)
    _, env = cloud_logging_api(record.path)
    later = UNTIL + timedelta(hours=1)
    run = gcloud_read(env, suite_filter(since=later, until=later + timedelta(minutes=1)))
    assert (run.exit_status, run.stdout, run.stderr) == (0, "[]\n", "")


def test_a_record_not_written_yet_is_empty(cloud_logging_api: Start, tmp_path: Path) -> None:
    _, env = cloud_logging_api(tmp_path / "not-yet" / "cloud-logging.json")
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout, run.stderr) == (0, "[]\n", "")


def test_the_record_is_read_afresh_for_each_call(cloud_logging_api: Start, tmp_path: Path) -> None:
    """The replica keeps rewriting its file: each gcloud call sees the file as it is then."""
    path = tmp_path / "cloud-logging.json"
    many_record(path, 2)
    _, env = cloud_logging_api(path)
    assert len(gcloud_read(env).entries()) == 2
    record = many_record(path, 5)
    assert gcloud_read(env).entries() == record.expected()


# --- errors: Google's answers, and what the real gcloud makes of them ---------------------------------
def details(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def test_400_invalid_argument(cloud_logging_api: Start, tmp_path: Path) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(400)
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout) == (1, "[]\n")  # stdout has an empty array even on failure
    assert run.stderr == f"{ERROR}INVALID_ARGUMENT: Request contains an invalid argument.\n"
    assert len(stand_in.requests) == 1 and run.seconds < 15


def test_401_unauthenticated_is_retried_once_then_names_the_token_file(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(401)
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout) == (1, "[]\n")
    assert run.stderr == f"{ERROR}UNAUTHENTICATED: " + UNAUTHENTICATED_TEXT.format(
        token_file=stand_in.token_file
    ) + details(
        "- '@type': type.googleapis.com/google.rpc.ErrorInfo",
        "  domain: googleapis.com",
        "  metadata:",
        "    method: google.logging.v2.LoggingServiceV2.ListLogEntries",
        "    service: logging.googleapis.com",
        "  reason: ACCESS_TOKEN_TYPE_UNSUPPORTED",
    )
    assert len(stand_in.requests) == 2  # gcloud re-reads its token and tries once more
    assert_no_secret(run, stand_in)


UNAUTHENTICATED_TEXT = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project. "
    "This command is authenticated with an access token from {token_file} specified by the "
    "[auth/access_token_file] property.\n"
)


def test_a_token_the_api_does_not_accept_is_401(cloud_logging_api: Start, tmp_path: Path) -> None:
    """Not injected: the stand-in checks the bearer token against its token file."""
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    wrong = tmp_path / "wrong-token"
    wrong.write_text("ya29.not-the-one\n")
    run = gcloud_read({**env, "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(wrong)})
    assert run.exit_status == 1
    assert run.stderr.startswith(f"{ERROR}UNAUTHENTICATED: " + UNAUTHENTICATED_TEXT.format(token_file=wrong))
    assert [r.status for r in stand_in.requests] == [401, 401]
    assert "not-the-one" not in run.stderr + run.stdout


def test_403_permission_denied(cloud_logging_api: Start, tmp_path: Path) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(403)
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout) == (1, "[]\n")
    assert run.stderr == (
        f"{ERROR}PERMISSION_DENIED: Permission 'logging.logEntries.list' denied on resource (or it may not "
        f"exist). This command is authenticated with an access token from {stand_in.token_file} specified by "
        "the [auth/access_token_file] property.\n"
    ) + details(
        "- '@type': type.googleapis.com/google.rpc.ErrorInfo",
        "  domain: iam.googleapis.com",
        "  metadata:",
        "    permission: logging.logEntries.list",
        f"    resource: projects/{PROJECT_ID}",
        "  reason: IAM_PERMISSION_DENIED",
    )
    assert len(stand_in.requests) == 1


def test_another_project_is_403(cloud_logging_api: Start, tmp_path: Path) -> None:
    """Not injected: the stand-in serves its own project only, as an identity's grant would."""
    _, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path, project="some-other-project")
    run = gcloud_read(env)
    assert run.exit_status == 1
    assert run.stderr.startswith(f"{ERROR}PERMISSION_DENIED: Permission 'logging.logEntries.list' denied")
    assert f"    resource: projects/{PROJECT_ID}\n" in run.stderr


def test_429_resource_exhausted_is_not_retried(cloud_logging_api: Start, tmp_path: Path) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(429)
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout) == (1, "[]\n")
    lines = run.stderr.splitlines()
    assert lines[:3] == [
        f"{ERROR}RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Read requests' and limit 'Read requests "
        "per minute' of service 'logging.googleapis.com' for consumer 'project_number:000000000000'.",
        "Request a higher quota limit.",
        "https://cloud.google.com/docs/quotas/help/request_increase",
    ]
    assert "  reason: RATE_LIMIT_EXCEEDED" in lines
    assert len(stand_in.requests) == 1 and run.seconds < 15


@pytest.mark.parametrize("status", [500, 503])
def test_a_passing_5xx_is_retried_after_about_two_seconds(
    cloud_logging_api: Start, tmp_path: Path, status: int
) -> None:
    record = many_record(tmp_path / "c.json", 3)
    stand_in, env = cloud_logging_api(record.path)
    stand_in.fail(status, times=1)
    run = gcloud_read(env)
    assert (run.exit_status, run.stderr, run.entries()) == (0, "", record.expected()), run
    assert [r.status for r in stand_in.requests] == [status, 200]
    assert 1.0 <= run.seconds < 15  # apitools waits 2 s (+-25 %) before its first retry


def http_error_text(port: int, status: int, message: str, name: str) -> re.Pattern[str]:
    body = json.dumps({"error": {"code": status, "message": message, "status": name}}, indent=2)
    return re.compile(
        re.escape(
            f"{ERROR}HttpError accessing <http://127.0.0.1:{port}/v2/entries:list?alt=json>: response: "
        )
        + r"<\{'server': 'ESF', 'date': '[^']+', 'content-type': 'application/json; charset=UTF-8', "
        r"'content-length': '\d+', 'vary': '[^']+', "
        + re.escape(f"'status': {status}}}>, content <{body}\n>\n")
        + re.escape(
            "This may be due to network connectivity issues. Please check your network settings, "
            "and the status of the service you are trying to reach.\n"
        )
    )


@pytest.mark.slow
def test_a_lasting_503_is_tried_five_times_over_about_thirty_seconds(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """apitools tries 5 times, waiting 2, 4, 8, 16 s (+-25 % each) between: 22.5 to 37.5 s (measured
    30-33 s; a lasting 500 alike), and no gcloud setting shortens it (CLOUDSDK_CORE_HTTP_TIMEOUT bounds
    one request, not the waits). Google's JSON error is not decoded: gcloud prints the raw HttpError."""
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(503)
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout) == (1, "[]\n")
    expected = http_error_text(stand_in.port, 503, "The service is currently unavailable.", "UNAVAILABLE")
    assert expected.fullmatch(run.stderr), run.stderr
    assert [r.status for r in stand_in.requests] == [503] * 5
    assert 22 <= run.seconds <= 45, run.seconds
    # What the suite makes of it: the status and the API's message, and no hint about the network.
    assert read_failure(run.stderr, run.exit_status, PROJECT_ID).line == (
        "Cloud Logging answered 503: The service is currently unavailable. (after gcloud's own retries): the "
        "service was unavailable, not the suite's access; try again later"
    )


def test_an_error_on_a_later_page_leaves_a_valid_partial_array_on_stdout(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """The first page is printed, as a complete JSON array, though gcloud exits 1: only the exit status
    says the read was cut short."""
    record = many_record(tmp_path / "c.json", 130)
    stand_in, env = cloud_logging_api(record.path)
    stand_in.fail(403, after=1)
    run = gcloud_read(env)
    assert run.exit_status == 1
    assert run.entries() == record.expected()[:50]
    assert run.stderr.startswith(f"{ERROR}PERMISSION_DENIED: ")


# --- the filter: the suite's, and nothing else ---------------------------------------------------------
def test_a_filter_outside_the_suites_subset_is_400_through_gcloud(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    changed = suite_filter().replace("jsonPayload.message=~", "jsonPayload.message:")
    run = gcloud_read(env, changed)
    assert (run.exit_status, run.stdout) == (1, "[]\n")
    column = changed.index("jsonPayload.message:") + len("jsonPayload.message:")
    assert run.stderr == (
        f"{ERROR}INVALID_ARGUMENT: Unparseable filter: operator : at column {column} (served: =, =~, >=, <=).\n"
    )
    assert [r.status for r in stand_in.requests] == [400]


CHANGES: dict[str, tuple[Callable[[str], str], str]] = {
    "has": (lambda f: f.replace("jsonPayload.message=~", "jsonPayload.message:"), "operator : at column"),
    "not": (lambda f: f.replace(" AND (", " AND NOT ("), "negation (NOT)"),
    "top-level or": (lambda f: f.replace(" AND timestamp<=", " OR timestamp<="), "a top-level OR"),
    "greater than": (lambda f: f.replace('timestamp>="', 'timestamp>"'), "operator > at column"),
    "unquoted": (lambda f: f.replace(f'"{SERVICE_NAME}"', SERVICE_NAME), "needs a double-quoted value"),
    "severity": (lambda f: f + ' AND severity>="ERROR"', "on severity"),
    "juxtaposed": (
        lambda f: f.replace(" AND resource.labels.location", " resource.labels.location"),
        "joined by AND",
    ),
    "equality in or": (
        lambda f: f.replace(" OR textPayload=~", ' OR textPayload="x" OR textPayload=~'),
        "inside parentheses",
    ),
    "lookahead": (lambda f: f.replace("exited with code", "(?=exited) with code"), "invalid RE2"),
    "date only": (lambda f: f.replace(rfc3339(SINCE), "2026-01-15"), "is not an RFC 3339 time"),
    "bare word": (lambda f: f + ' AND "STARTUP"', "a bare value"),
    "nested": (
        lambda f: f.replace("(jsonPayload", "((jsonPayload").replace('code")', 'code"))'),
        "nested parentheses",
    ),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_filter_outside_the_suites_subset_is_400(
    cloud_logging_api: Start, tmp_path: Path, change: str
) -> None:
    """Straight to the stand-in (gcloud passes a filter through as it is, as the test above shows)."""
    stand_in, _ = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    edit, why = CHANGES[change]
    changed = edit(suite_filter())
    assert changed != suite_filter()
    body = {"resourceNames": [f"projects/{PROJECT_ID}"], "filter": changed, "orderBy": "timestamp desc"}
    headers = {"Authorization": f"Bearer {stand_in.token_file.read_text().strip()}"}
    answer = httpx.post(f"{stand_in.endpoint}v2/entries:list", json=body, headers=headers)
    error = answer.json()["error"]
    assert (answer.status_code, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("Unparseable filter: ") and why in error["message"], error
    unchanged = httpx.post(
        f"{stand_in.endpoint}v2/entries:list", json={**body, "filter": suite_filter()}, headers=headers
    )
    assert unchanged.status_code == 200 and len(unchanged.json()["entries"]) == 3


def test_without_a_timestamp_gcloud_adds_a_day_of_freshness(cloud_logging_api: Start, tmp_path: Path) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    run = gcloud_read(env, 'resource.type="cloud_run_revision"')
    assert run.exit_status == 0, run
    sent = stand_in.requests[0].body["filter"]
    assert re.fullmatch(
        r'timestamp>="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z" AND resource.type="cloud_run_revision"', sent
    )


# --- gcloud's own configuration --------------------------------------------------------------------
def test_a_fresh_config_needs_no_account_when_given_a_token_file(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """No `gcloud auth login`, no account: the token file is enough. gcloud writes its configuration
    into the fresh CLOUDSDK_CONFIG, and nothing into HOME."""
    _, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    config, home = Path(env["CLOUDSDK_CONFIG"]), Path(env["HOME"])
    assert not config.exists() or not any(config.iterdir())
    run = gcloud_read(env)
    assert run.exit_status == 0, run
    assert (config / "active_config").read_text() == "default"
    assert (config / "gce").read_text() == "False"  # asked 127.0.0.1:9, not the metadata server
    assert not list(home.rglob("*"))


def test_without_a_token_file_a_fresh_config_has_no_account_and_asks_nothing(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    del env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]
    run = gcloud_read(env)
    assert (run.exit_status, run.stdout) == (1, "")
    assert run.stderr == (
        f"{ERROR}You do not currently have an active account selected.\nPlease run:\n\n  $ gcloud auth login\n\n"
        "to obtain new credentials.\n\nIf you have already logged in with a different account, run:\n\n"
        "  $ gcloud config set account ACCOUNT\n\nto select an already authenticated account to use.\n"
    )
    assert stand_in.requests == []


STRACE = shutil.which("strace")


@pytest.mark.skipif(STRACE is None, reason="strace is not installed: it shows where gcloud connects")
def test_gcloud_connects_to_nothing_but_127_0_0_1(cloud_logging_api: Start, tmp_path: Path) -> None:
    """No DNS lookup (gcloud's GCE check would resolve metadata.google.internal), no connection but
    to the stand-in and to the closed 127.0.0.1:9 its GCE check and any proxied request are sent to."""
    assert GCLOUD is not None and STRACE is not None
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    trace = tmp_path / "strace.txt"
    command = [STRACE, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace)]
    command += [GCLOUD, "logging", "read", suite_filter(), f"--project={PROJECT_ID}", "--format=json"]
    done = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    inet = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    ports = {
        int(p)
        for p in re.findall(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("127\.0\.0\.1"\)', "\n".join(inet))
    }
    assert inet and all('inet_addr("127.0.0.1")' in line for line in inet), inet
    assert ports <= {stand_in.port, 9}, ports
    assert "metadata" not in trace.read_text()


# --- the stand-in itself, where gcloud cannot reach -------------------------------------------------
def test_a_retried_page_token_gives_the_same_page_and_a_foreign_one_is_400(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    record = many_record(tmp_path / "c.json", 60)
    stand_in, _ = cloud_logging_api(record.path)
    headers = {"Authorization": f"Bearer {stand_in.token_file.read_text().strip()}"}
    body = {
        "resourceNames": [f"projects/{PROJECT_ID}"],
        "filter": suite_filter(),
        "orderBy": "timestamp desc",
    }
    url = f"{stand_in.endpoint}v2/entries:list"
    first = httpx.post(url, json=body, headers=headers).json()
    assert len(first["entries"]) == 50
    page = {**body, "pageToken": first["nextPageToken"]}
    second, again = (httpx.post(url, json=page, headers=headers).json() for _ in range(2))
    assert second == again and len(second["entries"]) == 10 and "nextPageToken" not in second
    assert first["entries"] + second["entries"] == record.expected()
    foreign = httpx.post(url, json={**page, "filter": 'resource.type="x"'}, headers=headers)
    assert foreign.status_code == 400 and foreign.json()["error"]["status"] == "INVALID_ARGUMENT"
    oldest_first = httpx.post(
        url, json={**body, "orderBy": "timestamp asc", "pageSize": 5}, headers=headers
    ).json()
    assert oldest_first["entries"] == record.expected()[::-1][:5]
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"


# --- a self-test's use: the record of the suite run that called gcloud ------------------------------------
def test_suite_record_serves_the_replica_of_the_process_that_ran_gcloud(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """The suite starts its replica in `.replica/suite-<its pid>` and runs gcloud as its child: the
    stand-in finds the run dir from the connecting process. A stand-in process plays the suite here."""
    root = tmp_path / "checkout"
    record_path = tmp_path / "c.json"
    record = many_record(record_path, 3)
    _, env = cloud_logging_api(suite_record(root))
    script = (
        "import os, pathlib, shutil, subprocess, sys\n"
        "run_dir = pathlib.Path(sys.argv[1]) / '.replica' / f'suite-{os.getpid()}'\n"
        "run_dir.mkdir(parents=True)\n"
        "shutil.copy(sys.argv[2], run_dir / 'cloud-logging.json')\n"
        "sys.exit(subprocess.run(sys.argv[3:]).returncode)\n"
    )
    assert GCLOUD is not None
    command = [sys.executable, "-c", script, str(root), str(record_path)]
    command += [GCLOUD, "logging", "read", suite_filter(), f"--project={PROJECT_ID}", "--format=json"]
    done = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == record.expected()

    # gcloud run by a process that started no replica: a 400 that says so, not an empty record.
    orphan = gcloud_read(env)
    assert orphan.exit_status == 1
    assert orphan.stderr.startswith(
        f"{ERROR}FAILED_PRECONDITION: The stand-in cannot tell which suite run asked: no ancestor of gcloud"
    )


def test_the_environment_keeps_the_machines_gcloud_setup_out(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    _, env = cloud_logging_api([])
    assert env["CLOUDSDK_CONFIG"].startswith(str(tmp_path)) and env["HOME"].startswith(str(tmp_path))
    inherited = {k for k in env if k.startswith(("CLOUDSDK_", "GOOGLE_", "GCE_"))}
    assert inherited == {
        "CLOUDSDK_CONFIG",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING",
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
        "CLOUDSDK_CORE_PROJECT",
        "CLOUDSDK_CORE_DISABLE_PROMPTS",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK",
        "CLOUDSDK_SURVEY_DISABLE_PROMPTS",
        "GCE_METADATA_ROOT",
    }
    assert os.path.expanduser("~") not in env["CLOUDSDK_CONFIG"]
