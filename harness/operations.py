"""The operations the suite performs against a target, each one classified, retried only for
transient infrastructure failures, and guarded by the shared circuit breaker.

Tests stay short and declarative: they say what they expect; this module knows how to ask. Methods
are synchronous; they run on the run's one event loop (`harness.loop`) with the run's one HTTP
client, so `E2E_MAX_CONCURRENCY` and `E2E_MAX_RPS` hold across every operation of a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from contract.identity import AUTH_SERVICE, BACKEND_SERVICE, BYPASS_KEY_HEADER
from harness import allure_api as allure
from harness import journal
from harness.breaker import Breaker, new_trip
from harness.classify import Expect, Judgement, classify_http, finding
from harness.errors import E2EFailure, InfraFailure
from harness.evidence import HttpEvidence, Observation, Target
from harness.http import HttpProbe
from harness.loop import LoopThread
from harness.redact import register
from harness.retry import RetryPolicy, retry_async
from harness.settings import Settings
from harness.startup.watch import StartupWatch
from harness.taxonomy import Category
from harness.turn import Turn, socket_failure
from harness.ws import HANDSHAKE_GRACE_S, ChatSocket, TokenVia, open_socket

T = TypeVar("T")

SERVICES: dict[Target, str] = {"backend": BACKEND_SERVICE, "auth": AUTH_SERVICE}
HALF_OPEN_DEADLINE_S = 3.0
PROGRESS_EVERY_S = 5.0  # a person waiting sees a line at least this often
# Backend failures a dying backend explains: the startup record may settle them before the retries do.
SETTLED_BY_RECORD = frozenset({Category.INFRA_GATEWAY, Category.INFRA_STARTING})
# Transport failures that backoff does not fix, on a host that never answered in this run.
_TERMINAL_KINDS = frozenset({"dns", "tls", "refused"})


@dataclass(frozen=True)
class Login:
    # Not in the repr: pytest prints a failing test's arguments (the `login` fixture among them) into
    # the terminal, JUnit and Allure, and its truncated repr of a token escapes redaction.
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    user_id: str
    email: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass(frozen=True)
class SocketControl:
    """The valid token's socket: accepted (its welcome) or refused (the failure). A refused bad token
    proves an auth decision only when this control was accepted in the same run."""

    welcome: dict[str, Any] | None
    failure: E2EFailure | None

    @property
    def accepted(self) -> bool:
        return self.welcome is not None

    def judge_refusal(self, how: str) -> None:
        """A bad credential's socket was refused (`how`): that proves an auth decision only if this
        control was accepted; otherwise the negative test is not passed, and says why."""
        if not self.accepted:
            why = self.failure.detail if self.failure else "no control ran"
            pytest.skip(
                f"not judged: the socket was refused ({how}), but so was the logged-in user's valid token "
                f"({why}); a refusal proves no auth decision when every socket is refused"
            )
        allure.dynamic.description(f"refused: {how}")

    def require_the_user(self, login: Login) -> None:
        """The control's socket was accepted, and its welcome names the logged-in user."""
        if self.failure is not None:
            raise self.failure
        shown = (self.welcome or {}).get("user_id")
        if not user_matches(shown if isinstance(shown, str) else None, login.user_id):
            raise socket_auth_finding(
                "ws_wrong_user",
                f"the chat socket welcomed user {shown!r}, not the logged-in {login.user_id!r} "
                "(DEMO_MODE makes every socket 'demo-user-001'; its threads are then not the user's)",
                self.welcome or {},
            )


def is_side_endpoint(path: str) -> bool:
    """Readiness, database and socket health: they can say "not ready" while the service serves."""
    return path.startswith("/health/") or path.startswith("/ws/health")


def user_matches(shown: str | None, user_id: str) -> bool:
    """The welcome's user is the logged-in one; the real server shows 8 characters and "..."."""
    if not shown:
        return False
    prefix = shown[:-3] if shown.endswith("...") else shown
    return bool(prefix) and (user_id == prefix or (shown.endswith("...") and user_id.startswith(prefix)))


class Operations:
    def __init__(
        self,
        settings: Settings,
        breaker: Breaker,
        loop: LoopThread,
        watch: StartupWatch | None = None,
    ) -> None:
        self.settings = settings
        self.policy = RetryPolicy.from_settings(settings)
        self.breaker = breaker
        self.watch = watch  # the backend's startup record: it may settle a failure before the retries do
        self._loop = loop
        self._probe: HttpProbe | None = None

    # -- plumbing ---------------------------------------------------------------------------------
    def url(self, target: Target, path: str) -> str:
        base = self.settings.backend_url if target == "backend" else self.settings.auth_url
        return f"{base}{path}"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    def close(self) -> None:
        if self._probe is not None:
            self._run(self._probe.aclose())
            self._probe = None

    async def _client(self) -> HttpProbe:
        """The run's one client, created on the loop it will serve."""
        if self._probe is None:
            self._probe = HttpProbe.from_settings(self.settings)
        return self._probe

    async def _exchange(
        self, target: Target, path: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
        json: Any = None, attempt: int = 1, deadline_s: float | None = None,
    ) -> HttpEvidence:  # fmt: skip
        client = await self._client()
        url = self.url(target, path)
        ev = await client.request(
            method, url, headers=headers, json=json, attempt=attempt, deadline_s=deadline_s
        )
        if ev.status is not None:
            self.breaker.note_answered(_host(url))
        return ev

    def _terminal(self, url: str) -> Callable[[InfraFailure], bool]:
        """A refusal that backoff does not fix: DNS, TLS, refused, on a host silent all run long."""
        host = _host(url)
        return lambda failure: failure.kind in _TERMINAL_KINDS and not self.breaker.answered(host)

    async def _guarded(
        self,
        target: Target,
        describe: str,
        operation: Callable[[int], Awaitable[T]],
        *,
        url: str | None = None,
    ) -> T:
        """Breaker check, then retries (transient infra only); an exhausted budget, a target confirmed
        unreachable, or a failure the startup record settles opens the breaker."""
        await self._half_open(target)
        unreachable = self._terminal(url or self.url(target, ""))

        async def attempt(n: int) -> T:
            try:
                return await operation(n)
            except InfraFailure as failure:
                raise await self._settled(target, failure) from None

        try:
            return await retry_async(
                attempt,
                self.policy,
                describe=describe,
                terminal=lambda failure: failure.settled is not None or unreachable(failure),
            )
        except InfraFailure as failure:
            if failure.category.policy.opens_breaker:
                self.breaker.open(
                    new_trip(
                        target,
                        failure.category,
                        failure.detail,
                        failure.known_issue,
                        journal.current().nodeid,
                        failure.kind,
                    )
                )
            raise

    async def _settled(self, target: Target, failure: InfraFailure) -> InfraFailure:
        """The failure, settled when the backend's own record shows its startups dying: a gateway's page
        or a failed startup on the backend asks the record (read once per run, bounded, off the loop);
        no retry will see a dying backend come up, so the run stops spending its budget on it."""
        if target != "backend" or self.watch is None or failure.category not in SETTLED_BY_RECORD:
            return failure
        dying = await asyncio.to_thread(self.watch.dying)
        return failure.settled_by(str(dying)) if dying else failure

    async def _half_open(self, target: Target) -> None:
        """With the circuit open, one cheap probe decides: still down (fail now) or back (close it)."""
        trip = self.breaker.tripped(target)
        if trip is None:
            return
        deadline = min(HALF_OPEN_DEADLINE_S, self.settings.request_timeout_s)
        ev = await self._exchange(target, "/health", deadline_s=deadline)
        outcome = classify_http(ev, Expect(service=SERVICES[target]), target=target)
        if outcome.category is None or not outcome.category.is_infra:
            self.breaker.close(target)  # answering again: let the operation judge the product
            return
        if not outcome.category.policy.unanswered:
            return  # the service itself answers (starting, a dependency down): the operation decides
        raise E2EFailure.judged(
            outcome,
            f"{target} still down: {outcome.reason} — {ev.summary()} (not retried: the circuit opened in "
            f"{trip.opened_by}, which holds the full evidence)",
            ev.to_dict(),
            service=target,
            known_issue=trip.known_issue,
        )

    # -- HTTP ---------------------------------------------------------------------------------------
    def check(
        self, target: Target, path: str, expect: Expect | None = None, *, what: str | None = None,
        method: str = "GET", headers: Mapping[str, str] | None = None, json: Any = None,
    ) -> Any:  # fmt: skip
        """The parsed JSON of an exchange that met `expect` (default: 200 JSON from the target's service)."""
        return self._run(
            self._check(target, path, expect, what=what, method=method, headers=headers, json=json)
        )

    async def _check(
        self, target: Target, path: str, expect: Expect | None = None, *, what: str | None = None,
        method: str = "GET", headers: Mapping[str, str] | None = None, json: Any = None,
    ) -> Any:  # fmt: skip
        expect = expect or Expect(service=SERVICES[target])
        what = what or f"{target} {method} {path}"
        journal.current().note_operation(target, is_side_endpoint(path))

        async def attempt(n: int) -> Any:
            ev = await self._exchange(target, path, method=method, headers=headers, json=json, attempt=n)
            return judged(ev, expect, what, target)

        return await self._guarded(target, what, attempt)

    def wait_until_healthy(
        self, bound_s: float, interval_s: float, progress: Callable[[str], None] = lambda _: None
    ) -> tuple[Any, float]:
        """Poll backend /health until it is healthy or `bound_s` passes; return (body, seconds waited).

        Each poll is one plain exchange (no retry: the polling is the retry). A line goes to
        `progress` after every poll and at least every `PROGRESS_EVERY_S`, so a person sees the
        elapsed time and the last answer even while one poll hangs.
        """
        expect = Expect(service=BACKEND_SERVICE)
        journal.current().note_operation("backend")

        async def poll() -> tuple[Any, float]:
            started = time.monotonic()
            last = "no answer yet"
            ticker = asyncio.create_task(_tick(started, bound_s, lambda: last, progress))
            try:
                while True:
                    deadline = max(
                        0.5, min(self.settings.request_timeout_s, bound_s - (time.monotonic() - started))
                    )
                    ev = await self._exchange("backend", "/health", deadline_s=deadline)
                    elapsed = time.monotonic() - started
                    outcome = classify_http(ev, expect, target="backend")
                    if outcome.ok:
                        progress(f"backend healthy after {elapsed:.1f}s")
                        return ev.json, elapsed
                    status = f"{ev.status} {ev.content_type or ''}".strip() if ev.status else ev.error_type
                    seen, last = last, f"{status} ({outcome.category})"
                    if last != seen:  # a change is news; otherwise the ticker speaks every few seconds
                        progress(f"waiting for backend health: {elapsed:5.1f}s / {bound_s:g}s, last: {last}")
                    if elapsed + interval_s > bound_s:
                        raise failure_of(outcome, ev, f"backend not healthy within {bound_s:g}s", "backend")
                    await asyncio.sleep(interval_s)
            finally:
                ticker.cancel()

        return self._run(poll())

    def sample(self, target: Target, path: str, count: int, window_s: float) -> list[HttpEvidence]:
        """`count` plain exchanges spread evenly over `window_s` (concurrency and rate bounded by
        the settings): the raw material of an availability measurement, never retried."""
        journal.current().note_operation(target)

        async def spread() -> list[HttpEvidence]:
            start = time.monotonic()

            async def one(i: int) -> HttpEvidence:
                await asyncio.sleep(max(0.0, start + i * window_s / count - time.monotonic()))
                return await self._exchange(target, path, attempt=i + 1)

            return list(await asyncio.gather(*(one(i) for i in range(count))))

        return self._run(spread())

    def probe(self, target: Target, path: str) -> HttpEvidence:
        """One exchange, no retry, no breaker, never raises: raw evidence for reproduction tests."""
        journal.current().note_operation(target, is_side_endpoint(path))
        return self._run(self._exchange(target, path))

    # -- auth ---------------------------------------------------------------------------------------
    def login(self) -> Login:
        """The staging OAuth simulation: POST /auth/e2e/test-auth with the bypass key."""
        key = self.settings.oauth_simulation_key or ""
        body = self.check(
            "auth",
            "/auth/e2e/test-auth",
            Expect(keys=("access_token", "refresh_token"), auth_endpoint=True),
            what="login (POST /auth/e2e/test-auth)",
            method="POST",
            headers={BYPASS_KEY_HEADER: key},
            json={"email": self.settings.test_email},
        )
        register(body.get("access_token"), body.get("refresh_token"))
        user = body.get("user") or {}
        return Login(
            body["access_token"], body["refresh_token"], str(user.get("id", "")), str(user.get("email", ""))
        )

    # -- chat ---------------------------------------------------------------------------------------
    def chat(self, token: str, question: str, *, via: TokenVia = "header") -> Turn:
        """Ask one question on a new socket and collect the turn.

        A socket refused by transient infrastructure, or closed by the platform before the turn was
        done (1001 a server going away, 1006 dropped, 1012 a restart, 1013 try again later), is
        retried like a transient HTTP failure: a new socket, the question asked again (the test is
        then marked flaky); if it persists, the run says infrastructure."""

        async def attempt(_: int) -> Turn:
            socket = await self._socket(token, via, HANDSHAKE_GRACE_S)
            try:
                turn = await socket.ask(question, self.settings.agent_timeout_s)
            finally:
                await socket.close()
            failure = socket_failure(turn, question, "chat turn")
            if isinstance(failure, InfraFailure) and failure.category is Category.INFRA_WS:
                raise failure
            return turn

        async def turn() -> Turn:
            await self._serving()
            return await self._guarded(
                "backend", f"chat turn ({via})", attempt, url=self.settings.ws_url or ""
            )

        return self._run(turn())

    def welcome(self, token: str | None, *, via: TokenVia = "header") -> dict[str, Any]:
        """Open a chat socket, note its welcome, close it; raises the classified failure when refused."""

        async def once() -> dict[str, Any]:
            await self._serving()
            socket = await self._guarded(
                "backend",
                f"open chat socket ({via})",
                lambda _: self._socket(token, via, 0.0),
                url=self.settings.ws_url or "",
            )
            await socket.close()
            return socket.welcome

        return self._run(once())

    def expect_refused(self, token: str | None, *, via: TokenVia = "header") -> str:
        """A socket with bad credentials must be refused for authentication; return how.

        Accepting it is a product.auth finding; any other failure (the service failing, the
        infrastructure) is raised as it is: it is not a refusal.
        """
        try:
            welcome = self.welcome(token, via=via)
        except E2EFailure as failure:
            if failure.category is Category.PRODUCT_AUTH:
                return failure.detail
            raise
        raise socket_auth_finding(
            "ws_accepted_without_valid_token",
            f"the chat socket accepted the connection and welcomed user {welcome.get('user_id')!r}: "
            "authentication is not enforced (staging's RELAXED auth invents a user, DEMO_MODE makes every "
            "socket demo-user-001)",
            welcome,
        )

    async def _serving(self) -> None:
        """The precondition of every socket: the backend serves (its health, retried through a slow
        start); a socket refused by a backend that is still starting proves nothing about auth."""
        await self._check("backend", "/health", what="backend health before the chat socket")
        journal.current().note_operation("backend")

    async def _socket(self, token: str | None, via: TokenVia, handshake_grace_s: float) -> ChatSocket:
        """One socket, opened once (the caller retries), welcomed or raising its classified failure."""
        client = await self._client()
        return await open_socket(
            self.settings.ws_url or "",
            token,
            via=via,
            open_timeout_s=self.settings.request_timeout_s,
            deadline_s=self.settings.request_timeout_s,
            pacer=client.pacer,
            handshake_grace_s=handshake_grace_s,
        )


async def _tick(
    started: float, bound_s: float, last: Callable[[], str], progress: Callable[[str], None]
) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - started
            progress(f"waiting for backend health: {elapsed:5.1f}s / {bound_s:g}s, last: {last()}")


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return f"{parts.hostname}:{parts.port or ''}"


def socket_auth_finding(kind: str, reason: str, welcome: dict[str, Any]) -> E2EFailure:
    """A chat socket's auth finding (accepted without a valid token, welcomed as someone else),
    labelled by the known-issue catalogue."""
    accepted = Observation(channel="ws", target="backend", path="/ws", status=101, expected=True)
    outcome = finding(accepted, Category.PRODUCT_AUTH, kind, reason)
    return E2EFailure.judged(outcome, outcome.reason, {"welcome": welcome}, service="backend")


def failure_of(outcome: Judgement, ev: HttpEvidence, what: str, service: str) -> E2EFailure:
    """The classified failure of one exchange (its evidence redacted)."""
    return E2EFailure.judged(
        outcome, f"{what}: {outcome.reason} — {ev.summary()}", ev.to_dict(), service=service
    )


def judged(ev: HttpEvidence, expect: Expect, what: str, target: Target) -> Any:
    """The parsed JSON of a passing exchange; otherwise raise the classified `E2EFailure`.

    Evidence is noted into the current test record either way.
    """
    journal.current().note_evidence(ev.to_dict())
    outcome = classify_http(ev, expect, target=target)
    if outcome.ok:
        return ev.json
    raise failure_of(outcome, ev, what, target)
