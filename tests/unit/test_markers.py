"""The suite's markers are declared once (harness/markers.py) and registered by its plugin: every
marker a suite test uses has a row, every row that reproduces an issue names one in the catalogue, and
pytest.ini declares none of them again."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from harness import known_issues
from harness.markers import MARKERS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYTEST_BUILTINS = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings", "xdist_group"}


def test_every_marker_the_suite_uses_has_a_row() -> None:
    used = {
        name
        for path in (ROOT / "tests" / "e2e_staging").glob("*.py")
        for name in re.findall(r"pytest\.mark\.([a-z_0-9]+)", path.read_text())
    }
    assert used - PYTEST_BUILTINS <= {m.name for m in MARKERS}


def test_a_reproduction_marker_names_a_catalogued_issue() -> None:
    for marker in MARKERS:
        if marker.reproduces is not None:
            assert known_issues.get(marker.reproduces) is not None, marker


def test_pytest_ini_does_not_declare_the_suites_markers_again() -> None:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    declared = {
        line.split(":", 1)[0].strip() for line in ini["pytest"]["markers"].splitlines() if line.strip()
    }
    assert not declared & {m.name for m in MARKERS}
