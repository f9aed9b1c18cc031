"""Root conftest: wires the harness's pytest plugin into every run (explicit, like Starlette)."""

pytest_plugins = ["harness.pytest_plugin"]
