"""Every `python -m harness.…` command a person may run says how to use it (`--help`, exit 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(
    {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__main__")
        for path in (ROOT / "harness").rglob("*.py")
        if path.name == "__main__.py" or 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")
    }
)


def test_the_commands_are_found() -> None:
    assert {"harness.settings", "harness.taxonomy", "harness.report.job_summary", "harness.nightly"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_has_help(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m {module}"), (
        done.stdout + done.stderr
    )
