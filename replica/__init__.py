"""A local replica of staging: real PostgreSQL, a TCP fault proxy, the auth service, the backend with
its deterministic startup, and a Cloud-Run-like front door, all real processes on 127.0.0.1."""
