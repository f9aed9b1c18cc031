"""Ports handed out are reserved across processes, so two replicas starting side by side never share one
(an instance's port is unbound while it starts and between the restarts of a crash loop)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from replica import ports
from replica.ports import free_port, reserve

pytestmark = pytest.mark.replica


def test_a_port_handed_out_is_not_handed_out_again_while_its_owner_lives() -> None:
    port = free_port()
    assert reserve(port) is False  # held by this (live) process
    others = subprocess.run(
        [sys.executable, "-c", f"from replica.ports import reserve; print(reserve({port}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert others.stdout.strip() == "False"  # nor by another process


def test_a_reservation_whose_owner_is_gone_is_taken_over() -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    port = free_port()
    (ports.RESERVATIONS / str(port)).write_text(dead.stdout.strip())  # as if that process had reserved it
    assert reserve(port) is True
    assert (ports.RESERVATIONS / str(port)).read_text() == str(os.getpid())
