"""GitHub's REST API, the few calls the nightly makes: issues, their comments, a file's contents on a
branch, and the branch itself.

The job's own token (`GITHUB_TOKEN`, as Actions sets it), the API's base URL (`GITHUB_API_URL`, default
https://api.github.com: Actions sets it, GitHub Enterprise included) and the repository
(`GITHUB_REPOSITORY`, owner/name). The token is registered with the redactor before the first call and
never appears in a message: a failing call raises `GitHubError`, whose text is one line naming the
call, the status, GitHub's own message and what to do about it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness import redact

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_PAGES = 10  # 1000 issues or comments: more than a tracker ever holds
_HINTS = {
    401: "the token is missing, expired or not a token (GITHUB_TOKEN)",
    403: "the token lacks a permission (the job's `permissions:`: issues: write, contents: write) or hit a rate limit",
    404: "no such repository, issue, file or branch, or the token cannot see it",
    409: "the file changed since it was read",
    422: "GitHub refused the request's content",
}


class GitHubError(Exception):
    """One failed call, in one line (never the token)."""

    def __init__(self, line: str, status: int | None = None) -> None:
        super().__init__(redact.redact(line))
        self.status = status


@dataclass(frozen=True)
class GitHubConfig:
    api_url: str
    repository: str
    token: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GitHubConfig | str:
        """The configuration, or why there is none (one line)."""
        repository = environ.get("GITHUB_REPOSITORY", "").strip()
        token = environ.get("GITHUB_TOKEN", "").strip()
        missing = [
            name for name, value in (("GITHUB_REPOSITORY", repository), ("GITHUB_TOKEN", token)) if not value
        ]
        if missing:
            return f"{' and '.join(missing)} not set"
        if repository.count("/") != 1:
            return f"GITHUB_REPOSITORY={repository!r} is not owner/name"
        redact.register(token)
        api_url = (environ.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
        return cls(api_url, repository, token)


@dataclass(frozen=True)
class Content:
    text: str
    sha: str


class GitHub:
    """A client for one repository."""

    def __init__(self, config: GitHubConfig, *, timeout_s: float = 20.0) -> None:
        self.config = config
        self._client = httpx.Client(
            base_url=config.api_url,
            timeout=timeout_s,
            headers={
                "Authorization": f"Bearer {config.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "e2e-staging-nightly",
            },
        )

    def close(self) -> None:
        self._client.close()

    @property
    def _repo(self) -> str:
        return f"/repos/{self.config.repository}"

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        try:
            response = self._client.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise GitHubError(
                f"GitHub API: {method} {path}: unreachable ({type(exc).__name__}: {exc}) at {self.config.api_url}"
            ) from None
        if response.status_code >= 400:
            raise GitHubError(self._failure(method, path, response), response.status_code)
        return response.json() if response.content else None

    @staticmethod
    def _failure(method: str, path: str, response: httpx.Response) -> str:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text[:120]
        status = response.status_code
        hint = _HINTS.get(status) or (
            "GitHub failed on its side; the next night tries again" if status >= 500 else ""
        )
        said = f" {message!r}" if message else ""
        return f"GitHub API: {method} {path} -> {status}{said}" + (f": {hint}" if hint else "")

    def _pages(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self.request("GET", path, params={**params, "per_page": 100, "page": page})
            found += batch
            if len(batch) < 100:
                break
        return found

    def repository(self) -> dict[str, Any]:
        return dict(self.request("GET", self._repo))

    # -- issues -------------------------------------------------------------------------------------
    def issues(self, *, labels: str, state: str = "open") -> list[dict[str, Any]]:
        """Issues (not pull requests) with every one of `labels` (comma-separated), in `state`."""
        found = self._pages(f"{self._repo}/issues", {"labels": labels, "state": state})
        return [issue for issue in found if "pull_request" not in issue]

    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return dict(
            self.request(
                "POST", f"{self._repo}/issues", body={"title": title, "body": body, "labels": labels}
            )
        )

    def issue(self, number: int) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._repo}/issues/{number}"))

    def close_issue(self, number: int) -> dict[str, Any]:
        body = {"state": "closed", "state_reason": "completed"}
        return dict(self.request("PATCH", f"{self._repo}/issues/{number}", body=body))

    def comments(self, number: int) -> list[dict[str, Any]]:
        return self._pages(f"{self._repo}/issues/{number}/comments", {})

    def comment(self, number: int, body: str) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._repo}/issues/{number}/comments", body={"body": body}))

    # -- a file on a branch -------------------------------------------------------------------------
    def content(self, path: str, ref: str) -> Content | None:
        """The file's text and blob sha on `ref`; None when the file (or the branch) does not exist."""
        try:
            found = self.request("GET", f"{self._repo}/contents/{path}", params={"ref": ref})
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(found, dict) or found.get("type") != "file":
            raise GitHubError(f"GitHub API: GET {self._repo}/contents/{path}: not a file")
        text = base64.b64decode(str(found.get("content") or "")).decode("utf-8")
        return Content(text, str(found["sha"]))

    def put_content(self, path: str, text: str, *, branch: str, sha: str | None, message: str) -> str:
        """Create or replace the file on `branch`; `sha` is the blob replaced (None: a new file). A
        stale sha raises GitHubError with status 409. Returns the new blob's sha."""
        body: dict[str, Any] = {
            "message": message,
            "content": base64.b64encode(text.encode("utf-8")).decode("ascii"),
            "branch": branch,
        }
        if sha:
            body["sha"] = sha
        done = self.request("PUT", f"{self._repo}/contents/{path}", body=body)
        return str(done["content"]["sha"])

    def ensure_branch(self, branch: str) -> bool:
        """The branch exists; created from the default branch's head when it did not (returns True then)."""
        try:
            self.request("GET", f"{self._repo}/git/ref/heads/{branch}")
            return False
        except GitHubError as exc:
            if exc.status != 404:
                raise
        default = str(self.repository()["default_branch"])
        head = self.request("GET", f"{self._repo}/git/ref/heads/{default}")["object"]["sha"]
        self.request("POST", f"{self._repo}/git/refs", body={"ref": f"refs/heads/{branch}", "sha": head})
        return True
