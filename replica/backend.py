"""`python -m replica.backend --port N`: the backend (REPLICA_* environment, see replica/config.py)."""

from replica.backend_app import create_app
from replica.serve import serve


def main(argv: list[str] | None = None) -> None:
    serve("backend", create_app, argv)


if __name__ == "__main__":
    main()
