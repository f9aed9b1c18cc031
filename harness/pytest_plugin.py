"""The harness's pytest plugin (hooks are filled in by the suite issue)."""
