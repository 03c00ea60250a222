"""SQLite connections for the server: WAL, foreign keys, a busy timeout, and explicit write locks.

Use :func:`open_db` from the CLI, jobs and tests, and :func:`get_db` inside a request (one connection
per request, closed at teardown). Every mutation runs inside :func:`write_tx`, which takes SQLite's
write lock up front (``BEGIN IMMEDIATE``): concurrent writers, in threads or other processes, queue on
the busy timeout instead of reading a stale audit chain head or ``server_seq`` and failing later.
Only this module touches ``flask.g``.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

DEFAULT_BUSY_TIMEOUT_MS = 10000


def open_db(path: str | Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) the database file with the server's connection settings."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, check_same_thread=False)
    db = Database(conn, execute_plugins=False)
    with db.ensure_autocommit_on():
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextmanager
def write_tx(db: Database) -> Iterator[Database]:
    """One write transaction holding the write lock from its first statement.

    Nested use becomes a savepoint of the outer transaction (sqlite-utils ``atomic``).
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        db.conn.execute("COMMIT")


def query(db: Database, sql: str, params: tuple | list | dict = ()) -> list[dict]:
    """Rows of a read query as dicts."""
    return list(db.query(sql, params))


def query_one(db: Database, sql: str, params: tuple | list | dict = ()) -> dict | None:
    rows = query(db, sql, params)
    return rows[0] if rows else None


# --- Flask glue --------------------------------------------------------------------------------

def get_db() -> Database:
    """The request's connection, opened on first use."""
    from flask import current_app, g

    if "db" not in g:
        g.db = open_db(current_app.config["DB"],
                       busy_timeout_ms=current_app.config["SQLITE_BUSY_TIMEOUT_MS"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    from flask import g

    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app) -> None:
    app.teardown_appcontext(close_db)
