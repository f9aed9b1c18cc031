"""One run of the suite per reports directory at a time.

A run's verdict, circuit breaker and Allure results live in its reports directory; two runs sharing
one would read each other's breaker and overwrite each other's verdict (a `make verify-fix` beside a
`make reproduce-1278` once left the #1278 run's directory holding FIXED). The first run holds an
exclusive lock on `<reports>/.run.lock` for as long as it lives; a second run is refused at once,
before it touches anything there, saying who holds it and how to run beside it (a reports directory
of its own). The operating system releases the lock when its holder ends, however it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO

LOCK_NAME = ".run.lock"


class ReportsBusy(Exception):
    """Another run holds the reports directory (the message says who, and the way out)."""


class ReportsLock:
    """The held lock of one run on its reports directory."""

    def __init__(self, directory: Path, handle: IO[str]) -> None:
        self.directory = directory
        self._handle = handle

    @classmethod
    def take(cls, directory: Path) -> ReportsLock:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / LOCK_NAME).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read()
            handle.close()
            raise ReportsBusy(_busy(directory, holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "since": time.time(), "argv": sys.argv[1:8]}))
        handle.flush()
        return cls(directory, handle)

    def clear(self, *paths: Path) -> None:
        """Remove a previous run's files the new run writes again, once the lock is held: a file, or a
        directory's contents (the directory stays: Allure's writer may already hold its path)."""
        for path in paths:
            if path.is_dir():
                for child in path.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            else:
                path.unlink(missing_ok=True)

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def _busy(directory: Path, holder: str) -> str:
    try:
        who = json.loads(holder)
        since = time.strftime("%H:%M:%S", time.localtime(float(who["since"])))
        by = f"pid {who['pid']}, since {since}: pytest {' '.join(map(str, who['argv']))}"
    except (ValueError, KeyError, TypeError):
        by = "another process"
    return (
        f"another run of the suite is using {directory}/ ({by}): its verdict, breaker and Allure results "
        f"live there. Wait for it to end, or give this run a reports directory of its own: "
        f"REPORTS={directory}-2 make … (pytest: --verdict {directory}-2/verdict.json --alluredir "
        f"{directory}-2/allure-results)"
    )
