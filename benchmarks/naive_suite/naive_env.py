"""Targets and constants of the naive suite, read from the same variables as our suite's."""

import os

TIMEOUT = 30
BACKEND_URL = os.environ["E2E_BACKEND_URL"].rstrip("/")
AUTH_URL = os.environ["E2E_AUTH_URL"].rstrip("/")
WS_URL = os.environ["E2E_WS_URL"].rstrip("/")
BYPASS_KEY = os.environ.get("E2E_OAUTH_SIMULATION_KEY", "")
JWT_SECRET = os.environ.get("E2E_JWT_SECRET", "")
TEST_EMAIL = os.environ.get("E2E_TEST_EMAIL", "e2e-test@staging.netrasystems.ai")
QUESTION = "What is 17 + 25, and which database stores this golden path conversation?"
FIVE_EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
