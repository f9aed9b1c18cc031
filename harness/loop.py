"""One event loop per process, in a background thread, for every operation of a run.

Why: the run's one HTTP client (its connection pool, its concurrency bound and its request pacer)
is bound to the loop it was created on. `asyncio.run` per operation would need a new client each
time, and then `E2E_MAX_CONCURRENCY` and `E2E_MAX_RPS` would bound nothing across operations.
Tests stay synchronous: `run(coro)` blocks until the coroutine ends, and the coroutine runs in a copy
of the caller's context, so the bound test record follows it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an event loop until `stop()`."""

    def __init__(self, name: str = "e2e-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop in a copy of the caller's context and wait for its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from its own loop: await the coroutine instead")
        context = contextvars.copy_context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            task = self._loop.create_task(coro, context=context)
            task.add_done_callback(lambda done: _settle(done, result))

        self._loop.call_soon_threadsafe(start)
        try:
            return result.result()
        except BaseException:
            if not result.done():  # interrupted while waiting (Ctrl-C, a pytest-timeout): stop the task
                self._loop.call_soon_threadsafe(_cancel_all, self._loop)
            raise

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


def _settle(task: asyncio.Task[T], result: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        result.cancel()
        return
    error = task.exception()
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(task.result())


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
