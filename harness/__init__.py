"""The validation harness: settings, an HTTP client that never crashes on a body, a classifier,
retries for infrastructure only, a WebSocket chat client, and the pytest plugin that turns
outcomes into Allure results, a verdict file and a terminal summary."""
