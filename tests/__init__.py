"""The project's own tests, as packages (tests.unit, tests.replica, ...): pytest imports each module by
that one name (the repo root is on sys.path through the root conftest.py), so a sibling's helpers are
imported as `from tests.replica.lifecycle import ...`, the same module pytest collected, and mypy
resolves them too. tests/e2e_staging stays a plain directory: the suite is run on its own."""
