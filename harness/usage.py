"""What a person can get wrong when they start a run, found before anything starts: a marker in `-m`
(`MARKERS`) that no test carries, an argument of the suite's own markers that names nothing. A usage
error is not a verdict: the run writes `outcome: error` (exit 4, no diagnosis) and pytest prints the
error, plainly, last. Every message names what would have been valid."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import pytest

from harness.markers import SELECTABLE, WITH_ARGUMENTS
from harness.report.verdict import EXIT_USAGE, RunFacts, conclude, write_verdict


def markexpr_problem(expression: str | None, registered: Iterable[str]) -> str | None:
    """What is wrong with a `-m` expression: a syntax error, or a name that is no registered marker (a
    typo would otherwise select nothing, or everything but what was meant). `registered`: the ini's
    marker lines (`name(args): help`)."""
    if not expression:
        return None
    try:
        from _pytest.mark.expression import Expression, Scanner, TokenType
    except ImportError:  # pytest's parser moved: pytest itself still checks the syntax
        return None
    try:
        Expression.compile(expression)
        tokens = list(Scanner(expression).lex(expression))
    except SyntaxError as exc:
        return f"the marker expression -m {expression!r} does not parse: {exc.msg}"
    known = sorted({line.split(":", 1)[0].split("(", 1)[0].strip() for line in registered})
    names = [
        t.value
        for i, t in enumerate(tokens)
        if t.type is TokenType.IDENT
        and not (i + 1 < len(tokens) and tokens[i + 1].type is TokenType.EQUAL)
        and not (i > 0 and tokens[i - 1].type is TokenType.EQUAL)
    ]
    unknown = [name for name in names if name not in known]
    if not unknown:
        return None
    suite = sorted(set(known) & set(SELECTABLE))
    close = [m for name in unknown for m in difflib.get_close_matches(name, suite, n=1)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"unknown marker {', '.join(repr(n) for n in unknown)} in -m {expression!r} (MARKERS){hint}: "
        f"the suite's markers are {', '.join(suite)}"
    )


def marker_argument_problem(item: pytest.Item) -> str | None:
    """An argument of the suite's markers that names nothing (a typo would silently drop a capability
    from the coverage, or a gate from verify-fix)."""
    for name, valid in WITH_ARGUMENTS.items():
        for mark in item.iter_markers(name):
            if len(mark.args) != 1 or mark.args[0] not in valid:
                return (
                    f"{item.nodeid}: @pytest.mark.{name}{mark.args!r} names no known {name} argument; "
                    f"valid: {', '.join(sorted(valid))}"
                )
    return None


def write_usage_verdict(path: Path, message: str) -> None:
    """A run stopped by a usage error is concluded as every run is: outcome `error`, no diagnosis."""
    write_verdict(path, conclude(RunFacts(pytest_exit=EXIT_USAGE, usage_error=message)).body())
