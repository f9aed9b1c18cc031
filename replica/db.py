"""The backend's PostgreSQL schema and queries: the only module of the replica that holds SQL.

Rows come back as the wire models of `contract.rest`. A message's content is stored as its plain
text in every protocol era; the routes shape it on the way out (replica/protocol.py), so the agent's
history tool reads the same text whatever the era.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg

from contract.rest import Message, Thread

# Serialises schema creation: concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type.
_SCHEMA_LOCK_KEY = 1278

# What a database that is down, cut off or full raises (not a query's own error): endpoints answer
# these with 503 "Database unavailable", as the real backend does.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    OSError,
    TimeoutError,
)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    title TEXT,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_user_created ON threads (user_id, created_at DESC);
CREATE TABLE IF NOT EXISTS messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread_seq ON messages (thread_id, seq);
CREATE TABLE IF NOT EXISTS assistants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    assistant_id TEXT REFERENCES assistants(id),
    status TEXT NOT NULL DEFAULT 'queued',
    created_at BIGINT NOT NULL
);
"""
# The tables the real backend's database phase requires (the migration service creates them; the
# backend only checks), in the order its startup warning listed them when all were missing.
CRITICAL_TABLES: tuple[str, ...] = ("users", "assistants", "runs", "messages", "threads")


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Let JSONB columns travel as Python dicts."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, max_size: int) -> asyncpg.Pool:
    """A pool that opens one connection up front, so that creating it proves the database answers."""
    return await asyncpg.create_pool(url, min_size=1, max_size=max(1, max_size), init=_init_connection)


async def ping(
    conn: asyncpg.Connection | asyncpg.Pool, timeout_s: float | None = None, hold_s: float = 0.0
) -> None:
    """`SELECT 1`: the connectivity probe of every health check (holding the connection `hold_s`)."""
    if hold_s > 0:
        await conn.fetchval("SELECT 1 FROM pg_sleep($1)", hold_s, timeout=timeout_s)
    else:
        await conn.fetchval("SELECT 1", timeout=timeout_s)


async def ensure_schema(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
        await conn.execute(SCHEMA)


async def missing_tables(pool: asyncpg.Pool, names: tuple[str, ...]) -> list[str]:
    """Which of `names` are not tables of the database's current schema (in the order given)."""
    rows = await pool.fetch(
        """SELECT table_name FROM information_schema.tables
           WHERE table_schema = current_schema() AND table_name = ANY($1::text[])""",
        list(names),
    )
    present = {row["table_name"] for row in rows}
    return [name for name in names if name not in present]


async def set_login_password(conn: asyncpg.Connection, role: str, password: str) -> None:
    """Make `role` (a plain identifier) a login role with this password (hex: safe inside the quotes)."""
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    await conn.execute(f"{'ALTER' if exists else 'CREATE'} ROLE {role} LOGIN PASSWORD '{password}'")


async def ensure_database(conn: asyncpg.Connection, name: str) -> None:
    """Create the database `name` (a plain identifier), empty, unless it exists."""
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        await conn.execute(f"CREATE DATABASE {name}")


def _now() -> int:
    return int(time.time())


def _thread(row: asyncpg.Record) -> Thread:
    return Thread(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata=row["metadata"],
        message_count=row["message_count"],
    )


def _message(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        metadata=row["metadata"],
    )


async def create_thread(
    pool: asyncpg.Pool, user_id: str, email: str, title: str | None, metadata: dict[str, Any] | None = None
) -> Thread:
    """A new thread owned by `user_id` (the user row is created on first use)."""
    now = _now()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            user_id,
            email,
            now,
        )
        row = await conn.fetchrow(
            """INSERT INTO threads (id, user_id, title, metadata, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $5)
               RETURNING id, title, metadata, created_at, updated_at, 0 AS message_count""",
            f"thread_{uuid.uuid4().hex}",
            user_id,
            title,
            metadata or {},
            now,
        )
    return _thread(row)


async def list_threads(pool: asyncpg.Pool, user_id: str, limit: int, offset: int) -> list[Thread]:
    """The user's threads, newest first, each with its message count."""
    rows = await pool.fetch(
        """SELECT t.id, t.title, t.metadata, t.created_at, t.updated_at,
                  (SELECT count(*) FROM messages m WHERE m.thread_id = t.id)::int AS message_count
           FROM threads t WHERE t.user_id = $1
           ORDER BY t.created_at DESC, t.id LIMIT $2 OFFSET $3""",
        user_id,
        limit,
        offset,
    )
    return [_thread(r) for r in rows]


async def thread_owner(pool: asyncpg.Pool, thread_id: str) -> str | None:
    """The owning user's id, or None if the thread does not exist."""
    owner = await pool.fetchval("SELECT user_id FROM threads WHERE id = $1", thread_id)
    return str(owner) if owner is not None else None


async def add_message(
    pool: asyncpg.Pool, thread_id: str, role: str, content: str, metadata: dict[str, Any] | None = None
) -> Message:
    now = _now()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO messages (id, thread_id, role, content, metadata, created_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               RETURNING id, role, content, metadata, created_at""",
            f"msg_{uuid.uuid4().hex}",
            thread_id,
            role,
            content,
            metadata or {},
            now,
        )
        await conn.execute("UPDATE threads SET updated_at = $2 WHERE id = $1", thread_id, now)
    return _message(row)


async def list_messages(pool: asyncpg.Pool, thread_id: str, limit: int, offset: int) -> list[Message]:
    """The thread's messages, oldest first (the order they were stored in)."""
    rows = await pool.fetch(
        """SELECT id, role, content, metadata, created_at FROM messages
           WHERE thread_id = $1 ORDER BY seq LIMIT $2 OFFSET $3""",
        thread_id,
        limit,
        offset,
    )
    return [_message(r) for r in rows]


async def count_messages(pool: asyncpg.Pool, thread_id: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM messages WHERE thread_id = $1", thread_id))


async def messages_before(pool: asyncpg.Pool, thread_id: str, message_id: str) -> list[Message]:
    """The thread's messages stored before `message_id`, oldest first: the agent's view of history."""
    rows = await pool.fetch(
        """SELECT id, role, content, metadata, created_at FROM messages
           WHERE thread_id = $1 AND seq < (SELECT seq FROM messages WHERE id = $2)
           ORDER BY seq""",
        thread_id,
        message_id,
    )
    return [_message(r) for r in rows]
