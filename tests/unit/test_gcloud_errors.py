"""What a failed `gcloud logging read` says, read for a person: gcloud 528's own stderr, as measured
against the local stand-in of Cloud Logging (tests/replica/test_cloud_logging_api.py runs the real one),
and the one line the suite makes of it."""

from __future__ import annotations

import pytest

from harness.startup.gcloud_errors import read_failure

pytestmark = pytest.mark.unit

ERROR = "ERROR: (gcloud.logging.read) "
TOKEN_FILE = "/tmp/t/token"
BY_TOKEN_FILE = (
    f" This command is authenticated with an access token from {TOKEN_FILE} specified by the "
    "[auth/access_token_file] property."
)
HTTP_503 = (
    f"{ERROR}HttpError accessing <http://127.0.0.1:4000/v2/entries:list?alt=json>: response: <{{'server': "
    "'ESF', 'date': 'Mon, 07 Dec 2026 20:00:00 GMT', 'content-type': 'application/json; charset=UTF-8', "
    "'content-length': '401', 'vary': 'Origin', 'status': 503}>, content <{\n  \"error\": {\n    \"code\": 503,\n"
    '    "message": "The service is currently unavailable.",\n    "status": "UNAVAILABLE"\n  }\n}\n>\n'
    "This may be due to network connectivity issues. Please check your network settings, and the status of "
    "the service you are trying to reach.\n"
)


@pytest.mark.parametrize(
    ("stderr", "kind", "says"),
    [
        (
            f"{ERROR}UNAUTHENTICATED: Request had invalid authentication credentials.{BY_TOKEN_FILE}",
            "unauthenticated",
            "gcloud is not authenticated for netra-staging (gcloud said: Request had invalid authentication "
            "credentials.): run `gcloud auth login`",
        ),
        (
            f"{ERROR}You do not currently have an active account selected.\nPlease run:\n\n  $ gcloud auth login",
            "unauthenticated",
            "gcloud is not authenticated for netra-staging (gcloud said: You do not currently have an active",
        ),
        (
            f"{ERROR}PERMISSION_DENIED: Permission 'logging.logEntries.list' denied on resource (or it may not "
            f"exist).{BY_TOKEN_FILE}",
            "permission_denied",
            f"gcloud is authenticated, but an access token from {TOKEN_FILE} may not read Cloud Logging in "
            "netra-staging (Permission 'logging.logEntries.list' denied on resource (or it may not exist).): "
            "grant it roles/logging.viewer on netra-staging",
        ),
        (
            f"{ERROR}PERMISSION_DENIED: Permission 'logging.logEntries.list' denied on resource (or it may not "
            "exist). This command is authenticated as reader@netra-staging.iam.gserviceaccount.com which is "
            "the active account specified by the [core/account] property.",
            "permission_denied",
            "gcloud is authenticated, but reader@netra-staging.iam.gserviceaccount.com may not read",
        ),
        (
            f"{ERROR}RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Read requests' and limit 'Read "
            "requests per minute' of service 'logging.googleapis.com'.\nRequest a higher quota limit.",
            "quota",
            "Cloud Logging's read quota for netra-staging is spent (429 RESOURCE_EXHAUSTED: Quota exceeded",
        ),
        (
            HTTP_503,
            "unavailable",
            "Cloud Logging answered 503: The service is currently unavailable. (after gcloud's own retries)",
        ),
        (
            f"{ERROR}INVALID_ARGUMENT: Request contains an invalid argument.",
            "failed",
            f"gcloud logging read failed (exit 1): {ERROR}INVALID_ARGUMENT: Request contains an invalid argument.",
        ),
    ],
)
def test_each_failure_is_told_as_what_failed_and_what_to_do(stderr: str, kind: str, says: str) -> None:
    failure = read_failure(stderr, 1, "netra-staging")
    assert (failure.kind, failure.line[: len(says)]) == (kind, says)
    assert "\n" not in failure.line


def test_a_5xx_never_reads_as_a_refused_credential() -> None:
    """Its headers may hold a content-length of 401 or 403: the status said is the response's."""
    assert read_failure(HTTP_503, 1, "netra-staging").kind == "unavailable"
    assert "network" not in read_failure(HTTP_503, 1, "netra-staging").line
