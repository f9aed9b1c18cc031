"""Root conftest: wires the plugins into every run (explicit, like Starlette).

The harness's plugin always; the replica's only for E2E_ENV=local (the default), where it starts
the local replica of staging for a run of the suite. Against staging, no replica code is loaded.
"""

import os

pytest_plugins = ["harness.pytest_plugin"]
if (os.environ.get("E2E_ENV") or "local").strip().lower() == "local":
    pytest_plugins.append("replica.pytest_plugin")
