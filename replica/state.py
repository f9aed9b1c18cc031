"""The state file: how `up`, `status`, `fix`, `down` and the suite find a running replica."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically, readable by the owner only (it holds the local bypass key)."""
    path = run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state, out, indent=2)
    os.replace(tmp, path)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((run_dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None
