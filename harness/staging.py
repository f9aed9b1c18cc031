"""The operations the suite performs against a target, each one classified, retried only for
infrastructure failures, and guarded by the shared circuit breaker.

Tests stay short and declarative: they say what they expect; this module knows how to ask.
Every method is synchronous (one event loop per operation), so tests need no async plugin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from contract.identity import AUTH_SERVICE, BACKEND_SERVICE, BYPASS_KEY_HEADER
from harness import known_issues, record
from harness.breaker import Breaker
from harness.classify import Expect, check_http, classify_http
from harness.errors import E2EFailure, InfraFailure, ProductFailure
from harness.evidence import HttpEvidence
from harness.http import HttpProbe
from harness.redact import register
from harness.retry import RetryPolicy, retry_async
from harness.settings import Settings
from harness.taxonomy import Category
from harness.ws import ChatSession, Transport, Turn, open_chat

Target = Literal["backend", "auth"]
T = TypeVar("T")

SERVICES: dict[Target, str] = {"backend": BACKEND_SERVICE, "auth": AUTH_SERVICE}
HALF_OPEN_DEADLINE_S = 3.0
# Half-open probe answers that mean nothing of the service is reachable: fail fast on these only.
_NO_SERVICE = frozenset({Category.INFRA_UNREACHABLE, Category.INFRA_TIMEOUT, Category.INFRA_GATEWAY})


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


class Staging:
    def __init__(self, settings: Settings, breaker: Breaker | None = None) -> None:
        self.settings = settings
        self.policy = RetryPolicy.from_settings(settings)
        self.breaker = breaker or Breaker()

    # -- plumbing ---------------------------------------------------------------------------
    def url(self, target: Target, path: str) -> str:
        base = self.settings.backend_url if target == "backend" else self.settings.auth_url
        return f"{base}{path}"

    def _run(self, coro: Awaitable[T]) -> T:
        return asyncio.run(coro)  # type: ignore[arg-type]

    async def _exchange(
        self, target: Target, path: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
        json: Any = None, attempt: int = 1, deadline_s: float | None = None,
    ) -> HttpEvidence:  # fmt: skip
        async with HttpProbe.from_settings(self.settings) as probe:
            return await probe.request(
                method,
                self.url(target, path),
                headers=headers,
                json=json,
                attempt=attempt,
                deadline_s=deadline_s,
            )

    async def _guarded(self, target: Target, describe: str, operation: Callable[[int], Awaitable[T]]) -> T:
        """Breaker check, then retries (infra only); an exhausted budget opens the breaker."""
        await self._half_open(target)
        try:
            return await retry_async(operation, self.policy, describe=describe)
        except InfraFailure as failure:
            self.breaker.open(
                target, failure.category, failure.detail, failure.known_issue, record.current().nodeid
            )
            raise

    async def _half_open(self, target: Target) -> None:
        """With the circuit open, one cheap probe decides: still down (fail now) or back (close it)."""
        trip = self.breaker.tripped(target)
        if trip is None:
            return
        deadline = min(HALF_OPEN_DEADLINE_S, self.settings.request_timeout_s)
        ev = await self._exchange(target, "/health", deadline_s=deadline)
        outcome = classify_http(ev, Expect(service=SERVICES[target], target=target))
        if outcome.category is None or not outcome.category.is_infra:
            self.breaker.close(target)  # answering again: let the operation judge the product
            return
        if outcome.category not in _NO_SERVICE:
            return  # the service itself answers (starting, a dependency down): the operation decides
        issue = known_issues.match(target, ev, outcome.category)
        raise InfraFailure(
            outcome.category,
            f"{target} still down: {outcome.reason} — {ev.summary()} (not retried: the circuit opened in "
            f"{trip.opened_by}, which holds the full evidence)",
            evidence=ev.to_dict(),
            known_issue=issue.id if issue else trip.known_issue,
        )

    # -- HTTP -------------------------------------------------------------------------------
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
        expect = expect or Expect(service=SERVICES[target], target=target)
        what = what or f"{target} {method} {path}"

        async def attempt(n: int) -> Any:
            ev = await self._exchange(target, path, method=method, headers=headers, json=json, attempt=n)
            return check_http(ev, expect, what=what)

        return await self._guarded(target, what, attempt)

    def wait_until_healthy(
        self, bound_s: float, interval_s: float, progress: Callable[[str], None] = lambda _: None
    ) -> tuple[Any, float]:
        """Poll backend /health until it is healthy or `bound_s` passes; return (body, seconds waited).

        Each poll is one plain exchange (no retry: the polling is the retry), and every poll is
        reported through `progress`, so a person sees the elapsed time and the last answer.
        """
        expect = Expect(service=BACKEND_SERVICE, target="backend")

        async def poll() -> tuple[Any, float]:
            started = time.monotonic()
            while True:
                ev = await self._exchange("backend", "/health")
                elapsed = time.monotonic() - started
                outcome = classify_http(ev, expect)
                if outcome.ok:
                    progress(f"backend healthy after {elapsed:.1f}s")
                    return ev.json, elapsed
                status = f"{ev.status} {ev.content_type or ''}".strip() if ev.status else ev.error_type
                progress(
                    f"waiting for backend health: {elapsed:5.1f}s / {bound_s:g}s, last: {status} ({outcome.category})"
                )
                if elapsed + interval_s > bound_s:
                    issue = known_issues.match("backend", ev, outcome.category)
                    raise E2EFailure.of(
                        outcome.category or Category.INFRA_UNREACHABLE,
                        f"backend not healthy within {bound_s:g}s: {outcome.reason} — {ev.summary()}",
                        evidence=ev.to_dict(),
                        known_issue=issue.id if issue else None,
                    )
                await asyncio.sleep(interval_s)

        return self._run(poll())

    def sample(self, target: Target, path: str, count: int, window_s: float) -> list[HttpEvidence]:
        """`count` plain exchanges spread evenly over `window_s` (concurrency and rate bounded by
        the settings): the raw material of an availability measurement, never retried."""

        async def spread() -> list[HttpEvidence]:
            async with HttpProbe.from_settings(self.settings) as probe:
                start = time.monotonic()

                async def one(i: int) -> HttpEvidence:
                    await asyncio.sleep(max(0.0, start + i * window_s / count - time.monotonic()))
                    return await probe.request("GET", self.url(target, path), attempt=i + 1)

                return list(await asyncio.gather(*(one(i) for i in range(count))))

        return self._run(spread())

    def probe(self, target: Target, path: str) -> HttpEvidence:
        """One exchange, no retry, no breaker, never raises: raw evidence for reproduction tests."""
        return self._run(self._exchange(target, path))

    # -- auth -------------------------------------------------------------------------------
    def login(self) -> Login:
        """The staging OAuth simulation: POST /auth/e2e/test-auth with the bypass key."""
        key = self.settings.oauth_simulation_key or ""
        body = self.check(
            "auth",
            "/auth/e2e/test-auth",
            Expect(keys=("access_token", "refresh_token"), auth_endpoint=True, target="auth"),
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

    # -- chat -------------------------------------------------------------------------------
    def chat(self, token: str, question: str, *, transport: Transport = "header") -> Turn:
        """Connect (retrying infrastructure refusals), ask once, collect the turn until the agent deadline."""

        async def turn() -> Turn:
            session = await self._open(token, transport)
            try:
                await session.send_user_message(question)
                return await session.collect_turn(self.settings.agent_timeout_s)
            finally:
                await session.close()

        return self._run(turn())

    def handshake(self, token: str | None, *, transport: Transport = "header") -> None:
        """Open a chat socket and close it: raises the classified failure when it is refused."""

        async def once() -> None:
            session = await self._open(token, transport)
            await session.close()

        self._run(once())

    def expect_refused(self, token: str | None, *, transport: Transport = "header") -> str:
        """A socket with bad credentials must be refused; return how. Accepting it is product.auth."""
        try:
            self.handshake(token, transport=transport)
        except E2EFailure as failure:
            if failure.category is Category.PRODUCT_AUTH:
                return failure.detail
            raise
        raise ProductFailure(
            Category.PRODUCT_AUTH,
            "the chat socket accepted the connection and sent connection_established: authentication is not "
            "enforced (the real staging's 'relaxed' WebSocket auth invents a user instead of refusing)",
        )

    async def _open(self, token: str | None, transport: Transport) -> ChatSession:
        """Precondition first: the backend serves (its health, retried through a slow start);
        a socket refused by a backend that is still starting proves nothing about auth."""
        await self._check("backend", "/health", what="backend health before the chat socket")
        return await self._guarded(
            "backend",
            f"open chat socket ({transport})",
            lambda _: open_chat(
                self.settings.ws_url or "",
                token,
                transport=transport,
                open_timeout_s=self.settings.request_timeout_s,
                deadline_s=self.settings.request_timeout_s,
            ),
        )
