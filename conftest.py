"""Root conftest: wires the plugins into every run (explicit, like Starlette).

The harness's plugin always; the replica's only for the profile whose targets the replica provides
(E2E_ENV=local, the default: `harness.settings.replica_plugin_wanted` decides), where it starts the
local replica of staging for a run of the suite. Against staging, no replica code is loaded.
"""

from harness.settings import replica_plugin_wanted

pytest_plugins = ["harness.pytest_plugin"]
if replica_plugin_wanted():
    pytest_plugins.append("replica.pytest_plugin")
