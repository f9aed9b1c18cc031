"""A local stand-in of GitHub's REST API: a real HTTP server on 127.0.0.1 speaking GitHub's documented
JSON, for the calls the nightly makes (harness.nightly.github), so that the nightly's history store
and trackers are tested end to end, over HTTP, as they run in Actions.

Issues: list (`labels`, all of them required, and `state` filters, `per_page`/`page` with a `Link`
header), create (201), get, update (`state`, `state_reason`, `title`, `body`); comments: list and
create (201). Contents: get (`ref`; base64 content and the blob's git sha) and create or update (a
stale or missing `sha` refused: 409 / 422, as GitHub does), a missing branch 404. Git refs: get a
branch head, create a branch. The repository: its default branch. Auth: `Authorization: Bearer <t>`
or `token <t>`, else 401 "Bad credentials". Plus a Slack incoming webhook (`POST /slack/webhook`,
no auth) that keeps what it was told.

Faults for the failure paths: `fail_with(status)` answers every API call with that status until
`recover()`; `before_put` runs once before the next contents write (a concurrent writer).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DOCS = "https://docs.github.com/rest"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def blob_sha(data: bytes) -> str:
    """Git's blob id, as the contents API reports a file's `sha`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repository:
    """What the stand-in holds: one repository's issues, comments, branches and files."""

    full_name: str
    default_branch: str = "main"
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> head commit sha
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (branch, path) -> content
    commits: int = 0
    next_number: int = 1300
    next_id: int = 1

    def __post_init__(self) -> None:
        self.branches.setdefault(self.default_branch, self._commit())

    def _commit(self) -> str:
        self.commits += 1
        return hashlib.sha1(f"commit {self.commits}".encode()).hexdigest()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add_issue(
        self, title: str, body: str = "", labels: list[str] | None = None, number: int | None = None
    ) -> dict[str, Any]:
        number = number or self.next_number
        self.next_number = max(self.next_number, number + 1)
        api = f"/repos/{self.full_name}/issues/{number}"
        issue: dict[str, Any] = {
            "id": self.new_id(),
            "node_id": f"I_{number}",
            "url": api,
            "html_url": f"https://github.com/{self.full_name}/issues/{number}",
            "comments_url": f"{api}/comments",
            "number": number,
            "state": "open",
            "state_reason": None,
            "title": title,
            "body": body,
            "user": {"login": "github-actions[bot]", "type": "Bot"},
            "labels": [
                {"id": self.new_id(), "name": name, "color": "ededed", "default": False}
                for name in labels or []
            ],
            "comments": 0,
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": None,
        }
        self.issues[number] = issue
        self.comments[number] = []
        return issue

    def comment_bodies(self, number: int) -> list[str]:
        return [str(c["body"]) for c in self.comments.get(number, [])]

    def file(self, branch: str, path: str) -> str | None:
        data = self.files.get((branch, path))
        return data.decode() if data is not None else None


class _Answer(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: str) -> _Answer:
    return _Answer(status, {"message": message, "documentation_url": DOCS, "status": str(status)})


class GitHubStandIn:
    """The server and what it holds; `with GitHubStandIn.running(...) as api:` starts and stops it."""

    def __init__(self, repository: str, token: str) -> None:
        self.repo = Repository(repository)
        self.token = token
        self.requests: list[str] = []  # "METHOD /path", in order
        self.slack: list[dict[str, Any]] = []
        self._fail: int | None = None
        self.before_put: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @classmethod
    @contextmanager
    def running(cls, repository: str, token: str) -> Iterator[GitHubStandIn]:
        api = cls(repository, token)
        api._thread.start()
        try:
            yield api
        finally:
            api._server.shutdown()
            api._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_with(self, status: int) -> None:
        self._fail = status

    def recover(self) -> None:
        self._fail = None

    # -- the HTTP side ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                    with api._lock:
                        api.requests.append(f"{method} {parts.path}")
                        status, answer, headers = api._route(
                            method, unquote(parts.path), query, body, self.headers.get("Authorization")
                        )
                except _Answer as done:
                    status, answer, headers = done.status, done.body, done.headers
                except (ValueError, KeyError, TypeError) as exc:
                    status, answer, headers = 400, {"message": f"Problems parsing JSON: {exc}"}, {}
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        return Handler

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, authorization: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/slack/webhook":
            self.slack.append(dict(body or {}))
            return 200, None, {}
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or credential != self.token:
            raise _error(401, "Bad credentials")
        if self._fail is not None:
            raise _error(
                self._fail,
                {403: "Resource not accessible by integration", 404: "Not Found"}.get(
                    self._fail, "Server Error"
                ),
            )
        prefix = f"/repos/{self.repo.full_name}"
        if not path.startswith(prefix):
            raise _error(404, "Not Found")
        rest = path[len(prefix) :]
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, f"{method} {rest}")
            if match:
                return handler(query, body, **match.groupdict())
        raise _error(404, "Not Found")

    def _routes(self) -> list[tuple[str, Callable[..., tuple[int, Any, dict[str, str]]]]]:
        return [
            (r"GET ", self._get_repo),
            (r"GET /issues", self._list_issues),
            (r"POST /issues", self._create_issue),
            (r"GET /issues/(?P<number>\d+)", self._get_issue),
            (r"PATCH /issues/(?P<number>\d+)", self._update_issue),
            (r"GET /issues/(?P<number>\d+)/comments", self._list_comments),
            (r"POST /issues/(?P<number>\d+)/comments", self._create_comment),
            (r"GET /contents/(?P<path>.+)", self._get_content),
            (r"PUT /contents/(?P<path>.+)", self._put_content),
            (r"GET /git/ref/heads/(?P<branch>.+)", self._get_ref),
            (r"POST /git/refs", self._create_ref),
        ]

    def _get_repo(self, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, {"full_name": self.repo.full_name, "default_branch": self.repo.default_branch}, {}

    def _issue(self, number: str) -> dict[str, Any]:
        issue = self.repo.issues.get(int(number))
        if issue is None:
            raise _error(404, "Not Found")
        return issue

    def _list_issues(self, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        state = query.get("state", "open")
        wanted = {name.strip() for name in query.get("labels", "").split(",") if name.strip()}
        found = [
            issue
            for issue in sorted(self.repo.issues.values(), key=lambda i: -int(i["number"]))
            if (state == "all" or issue["state"] == state)
            and wanted <= {label["name"] for label in issue["labels"]}
        ]
        per_page, page = min(int(query.get("per_page", 30)), 100), int(query.get("page", 1))
        chunk = found[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(found):
            headers["Link"] = f'<{self.url}/repos/{self.repo.full_name}/issues?page={page + 1}>; rel="next"'
        return 200, chunk, headers

    def _create_issue(self, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if not body or not body.get("title"):
            raise _error(422, "Validation Failed")
        return (
            201,
            self.repo.add_issue(
                str(body["title"]), str(body.get("body") or ""), list(body.get("labels") or [])
            ),
            {},
        )

    def _get_issue(self, query: dict[str, str], body: Any, number: str) -> tuple[int, Any, dict[str, str]]:
        return 200, self._issue(number), {}

    def _update_issue(self, query: dict[str, str], body: Any, number: str) -> tuple[int, Any, dict[str, str]]:
        issue = self._issue(number)
        for key in ("title", "body", "state_reason"):
            if key in (body or {}):
                issue[key] = body[key]
        if (body or {}).get("state") in ("open", "closed"):
            issue["state"] = body["state"]
            issue["closed_at"] = _now() if body["state"] == "closed" else None
        issue["updated_at"] = _now()
        return 200, issue, {}

    def _list_comments(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, Any, dict[str, str]]:
        self._issue(number)
        per_page, page = min(int(query.get("per_page", 30)), 100), int(query.get("page", 1))
        return 200, self.repo.comments[int(number)][(page - 1) * per_page : page * per_page], {}

    def _create_comment(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, Any, dict[str, str]]:
        issue = self._issue(number)
        if not body or not body.get("body"):
            raise _error(422, "Validation Failed")
        comment_id = self.repo.new_id()
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"/repos/{self.repo.full_name}/issues/comments/{comment_id}",
            "html_url": f"{issue['html_url']}#issuecomment-{comment_id}",
            "issue_url": issue["url"],
            "body": str(body["body"]),
            "user": {"login": "github-actions[bot]", "type": "Bot"},
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.repo.comments[int(number)].append(comment)
        issue["comments"] = len(self.repo.comments[int(number)])
        return 201, comment, {}

    def _get_content(self, query: dict[str, str], body: Any, path: str) -> tuple[int, Any, dict[str, str]]:
        ref = query.get("ref", self.repo.default_branch)
        if ref not in self.repo.branches:
            raise _error(404, f"No commit found for the ref {ref}")
        data = self.repo.files.get((ref, path))
        if data is None:
            raise _error(404, "Not Found")
        return (
            200,
            self._content_entry(path, data)
            | {
                "encoding": "base64",
                "content": base64.encodebytes(data).decode("ascii"),  # GitHub wraps it in lines, as here
            },
            {},
        )

    def _content_entry(self, path: str, data: bytes) -> dict[str, Any]:
        return {
            "type": "file",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": blob_sha(data),
            "size": len(data),
            "url": f"{self.url}/repos/{self.repo.full_name}/contents/{path}",
        }

    def _put_content(self, query: dict[str, str], body: Any, path: str) -> tuple[int, Any, dict[str, str]]:
        if self.before_put is not None:
            concurrent, self.before_put = self.before_put, None
            concurrent()
        branch = str(body.get("branch") or self.repo.default_branch)
        if branch not in self.repo.branches:
            raise _error(404, f"Branch {branch} not found")
        if "message" not in body or "content" not in body:
            raise _error(422, 'Invalid request.\n\n"message" and "content" are required.')
        existing = self.repo.files.get((branch, path))
        sha = body.get("sha")
        if existing is not None and not sha:
            raise _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if existing is not None and sha != blob_sha(existing):
            raise _error(409, f"{path} does not match {sha}")
        data = base64.b64decode(str(body["content"]))
        self.repo.files[(branch, path)] = data
        commit = self.repo._commit()
        self.repo.branches[branch] = commit
        answer = {
            "content": self._content_entry(path, data),
            "commit": {"sha": commit, "message": body["message"]},
        }
        return (201 if existing is None else 200), answer, {}

    def _get_ref(self, query: dict[str, str], body: Any, branch: str) -> tuple[int, Any, dict[str, str]]:
        head = self.repo.branches.get(branch)
        if head is None:
            raise _error(404, "Not Found")
        return 200, {"ref": f"refs/heads/{branch}", "object": {"type": "commit", "sha": head}}, {}

    def _create_ref(self, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        ref = str((body or {}).get("ref") or "")
        if not ref.startswith("refs/heads/") or not body.get("sha"):
            raise _error(422, "Validation Failed")
        name = ref.removeprefix("refs/heads/")
        if name in self.repo.branches:
            raise _error(422, "Reference already exists")
        self.repo.branches[name] = str(body["sha"])
        for (branch, path), data in list(self.repo.files.items()):  # a branch starts with its parent's files
            if branch == self.repo.default_branch:
                self.repo.files[(name, path)] = data
        return 201, {"ref": ref, "object": {"type": "commit", "sha": body["sha"]}}, {}
