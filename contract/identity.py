"""Names that identify services and carry credentials on the wire."""

BACKEND_SERVICE = "netra-ai-platform"
AUTH_SERVICE = "auth-service"
FRONTEND_SERVICE = "frontend"

BYPASS_KEY_HEADER = "X-E2E-Bypass-Key"
DEFAULT_TEST_EMAIL = "e2e-test@staging.netrasystems.ai"

JWT_ISSUER = "netra-auth-service"
JWT_AUDIENCE = "netra-platform"
JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TTL_S = 900

# Sec-WebSocket-Protocol entries that carry a token, in the order the backend looks for them.
TOKEN_SUBPROTOCOL_PREFIXES = ("jwt.", "jwt-auth.", "bearer.")
BARE_SUBPROTOCOLS = ("jwt-auth", "jwt", "bearer", "e2e-testing", "staging-auth", "agent_chat")
