"""`python -m replica.auth --port N`: the auth service (REPLICA_* environment, see replica/config.py)."""

from replica.auth_app import create_app
from replica.serve import serve


def main(argv: list[str] | None = None) -> None:
    serve("auth", create_app, argv)


if __name__ == "__main__":
    main()
