"""What a failed `gcloud logging read` says, told to a person who must act on it.

The real client (Google Cloud SDK 528, measured against a local stand-in of the Cloud Logging API:
replica/cloud_logging_api.py) exits 1 and writes, on stderr:

* `ERROR: (gcloud.logging.read) <STATUS>: <the API's message>` for the API's own refusals, the status
  being Google's canonical one: `UNAUTHENTICATED` (401: the credential was refused), `PERMISSION_DENIED`
  (403: authenticated, but the identity may not read the project's logs), `RESOURCE_EXHAUSTED` (429:
  the read quota, per minute), `INVALID_ARGUMENT` (400: the filter);
* `You do not currently have an active account selected.` when it holds no credential at all;
* `HttpError accessing <url>: response: <{…, 'status': 503}>, content <{…"message": "…"…}>` after ~30 s
  of its own retries, when the API answers 5xx: the status and the API's message are kept here, and a
  person is told to try later, not to check their network.

Each reading is one line that names what failed and what to do; it never holds a credential (gcloud
prints a token file's path, never the token; the line is redacted all the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.redact import redact_line

_API_STATUS = re.compile(r"\(gcloud\.[\w.]+\) ([A-Z_]{4,}): (.*)")
_HTTP_STATUS = re.compile(r"'status': '?(\d{3})'?")
_API_MESSAGE = re.compile(r'"message":\s*"((?:[^"\\]|\\.)*)"')
_IDENTITY = re.compile(r"This command is authenticated (?:as|with) (.+?) (?:which is|specified by)")
_NO_ACCOUNT = "You do not currently have an active account selected"
# A credential gcloud holds but cannot use any more (expired, revoked): it must log in again.
_STALE_CREDENTIAL = re.compile(r"(?i)reauthenticat|refreshing your current auth tokens|invalid_grant")


@dataclass(frozen=True)
class GcloudFailure:
    """One failed read: `kind` (what failed), and the line a person reads."""

    kind: str  # unauthenticated | permission_denied | quota | unavailable | failed
    line: str


def read_failure(stderr: str, exit_status: int, project: str) -> GcloudFailure:
    """The reading of gcloud's stderr after a failed `gcloud logging read` in `project`."""
    text = stderr.strip()
    api = _API_STATUS.search(text)
    status, said = (api.group(1), _sentence(api.group(2))) if api else ("", "")
    if _NO_ACCOUNT in text or status == "UNAUTHENTICATED" or _STALE_CREDENTIAL.search(text):
        why = said or _first_line(text).removeprefix("ERROR: (gcloud.logging.read) ")
        return GcloudFailure(
            "unauthenticated",
            redact_line(
                f"gcloud is not authenticated for {project} (gcloud said: {why}): run `gcloud auth login` (in "
                f"CI: workload identity federation) with an identity holding roles/logging.viewer on {project}",
                600,
            ),
        )
    if status == "PERMISSION_DENIED":
        identity = _IDENTITY.search(text)
        who = identity.group(1) if identity else "the identity gcloud uses (`gcloud auth list` shows it)"
        return GcloudFailure(
            "permission_denied",
            redact_line(
                f"gcloud is authenticated, but {who} may not read Cloud Logging in {project} ({said}): grant it "
                f"roles/logging.viewer on {project} (`gcloud projects add-iam-policy-binding {project} "
                f"--member=<that identity> --role=roles/logging.viewer`)",
                600,
            ),
        )
    if status == "RESOURCE_EXHAUSTED":
        return GcloudFailure(
            "quota",
            redact_line(
                f"Cloud Logging's read quota for {project} is spent (429 RESOURCE_EXHAUSTED: {said}): try "
                "later (the quota is per minute), or read a shorter window",
                600,
            ),
        )
    http = _HTTP_STATUS.search(text)
    if http and http.group(1).startswith("5"):
        message = _API_MESSAGE.search(text)
        answered = f": {message.group(1)}" if message else ""
        return GcloudFailure(
            "unavailable",
            redact_line(
                f"Cloud Logging answered {http.group(1)}{answered} (after gcloud's own retries): the service "
                "was unavailable, not the suite's access; try again later",
                600,
            ),
        )
    first = _first_line(text) or f"exit status {exit_status}, nothing on stderr"
    return GcloudFailure(
        "failed", redact_line(f"gcloud logging read failed (exit {exit_status}): {first}", 600)
    )


def _sentence(text: str) -> str:
    """The API's message up to gcloud's own advice ("This command is authenticated …")."""
    return text.split(" This command is authenticated", 1)[0].strip()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
