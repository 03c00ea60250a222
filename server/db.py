"""SQLite connections for the server: WAL, foreign keys, a busy timeout, and explicit write locks.

Use :func:`open_db` from the CLI, jobs and tests, and :func:`get_db` inside a request (one connection
per worker thread, kept between requests; see :func:`_thread_db`). Every mutation runs inside
:func:`write_tx`, which takes SQLite's write lock up front (``BEGIN IMMEDIATE``): concurrent writers
queue instead of reading a stale audit chain head or ``server_seq`` and failing later — threads of
one process on a Python lock per database file (woken the moment it is free), other processes on
SQLite's busy timeout.
Only this module touches ``flask.g``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database
from sqlite_utils.utils import dedupe_keys

DEFAULT_BUSY_TIMEOUT_MS = 10000


def open_db(path: str | Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) the database file with the server's connection settings.

    A new file is created readable by its owner only (0600) whatever the umask, before SQLite
    opens it; SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file."""
    _create_private(path)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, check_same_thread=False)
    db = Database(conn, execute_plugins=False)
    db.write_lock = _write_lock(path)
    with db.ensure_autocommit_on():
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db.execute("PRAGMA synchronous=FULL")
    return db


def _create_private(path: str | Path) -> None:
    text = str(path)
    if text == ":memory:" or text.startswith("file:"):
        return
    try:
        fd = os.open(text, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


_write_locks: dict[str, threading.RLock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: str | Path) -> threading.RLock:
    key = os.path.realpath(str(path))
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.RLock())


@contextmanager
def write_tx(db: Database) -> Iterator[Database]:
    """One write transaction holding the write lock from its first statement.

    Nested use becomes a savepoint of the outer transaction (sqlite-utils ``atomic``).
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    # SQLite's busy handler sleeps in growing steps while another connection writes; threads of this
    # process wait on a lock instead and start the moment the writer commits
    lock = getattr(db, "write_lock", None) or _write_lock(db.execute("PRAGMA database_list").fetchone()[2])
    with lock:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")


def file_identity(db: Database) -> tuple:
    """Which database file ``db`` is (path, device, inode): a key for caches of what a file holds, so
    a file replaced at the same path (a restore) is another database."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    try:
        st = os.stat(path)
        return (path, st.st_dev, st.st_ino)
    except OSError:
        return (path, None, None)


def query(db: Database, sql: str, params: tuple | list | dict = ()) -> list[dict]:
    """Rows of a read query as dicts.

    A plain ``SELECT`` (or ``WITH``) runs straight on the connection: sqlite-utils' ``query`` wraps
    every statement in a savepoint of its own, in case it turns out to write (two more statements
    for each read, about a third of those a one-record upload runs; issue 13). Anything else goes
    through ``db.query`` and its guard."""
    if not sql.lstrip()[:6].upper().startswith(("SELECT", "WITH")):
        return list(db.query(sql, params))
    cursor = db.conn.execute(sql, params)
    keys = dedupe_keys(d[0] for d in cursor.description)
    return [dict(zip(keys, row)) for row in cursor]


def query_one(db: Database, sql: str, params: tuple | list | dict = ()) -> dict | None:
    rows = query(db, sql, params)
    return rows[0] if rows else None


#: rows per statement when a whole table is read in key order (``audit verify``)
CHUNK_ROWS = 500


def key_ordered_chunks(db: Database | sqlite3.Connection, source: str, key: str, columns: str = "*", *,
                       where: str = "", params: tuple | list = (), chunk: int = CHUNK_ROWS) -> Iterator[list[tuple]]:
    """Every row of ``SELECT key, columns FROM source [WHERE where]`` in order of ``key`` (unique,
    indexed), read at most ``chunk`` rows per statement: each statement seeks past the last key read,
    so memory holds one chunk whatever the table's size. Each row starts with its key. Read the
    chunks inside one read transaction (:func:`read_snapshot`) to see one consistent state."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    conditions = [f"({where})"] if where else []
    first = " AND ".join(conditions) or "1"
    then = " AND ".join([*conditions, f"{key} > ?"])
    select = f"SELECT {key}, {columns} FROM {source} WHERE "
    rows = db.execute(f"{select}{first} ORDER BY {key} LIMIT ?", [*params, chunk]).fetchall()
    while rows:
        yield rows
        if len(rows) < chunk:
            return
        rows = db.execute(f"{select}{then} ORDER BY {key} LIMIT ?", [*params, rows[-1][0], chunk]).fetchall()


@contextmanager
def read_snapshot(db: Database | sqlite3.Connection) -> Iterator[Database | sqlite3.Connection]:
    """One read transaction: every query inside sees the database as it was at the first one, while
    writers go on (WAL). Inside a transaction already, that transaction is the snapshot. ``db``: a
    sqlite-utils ``Database`` or a plain ``sqlite3.Connection`` (the backup code verifies those)."""
    conn = getattr(db, "conn", db)
    if conn.in_transaction:
        yield db
        return
    conn.execute("BEGIN")
    try:
        yield db
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


# --- Flask glue --------------------------------------------------------------------------------

_held = threading.local()


def _thread_db(path: str, busy_timeout_ms: int) -> Database:
    """This worker thread's connection to ``path``, kept between requests.

    Opening a WAL database (four pragmas) and closing it (the last connection to close checkpoints)
    cost about as much as a one-record upload, so each thread keeps one connection. It is reopened
    when the thread is asked for another file, or when the file at ``path`` is no longer the one it
    opened (replaced by a restore while stopped, or a test's new file at the same path).
    """
    try:
        st = os.stat(path)
        identity = (path, busy_timeout_ms, st.st_dev, st.st_ino)
    except OSError:
        identity = None
    held = getattr(_held, "db", None)
    if held is not None and identity is not None and held[0] == identity:
        return held[1]
    if held is not None:
        held[1].close()
        _held.db = None
    db = open_db(path, busy_timeout_ms=busy_timeout_ms)
    if identity is None:
        st = os.stat(path)
        identity = (path, busy_timeout_ms, st.st_dev, st.st_ino)
    _held.db = (identity, db)
    return db


def get_db() -> Database:
    """The request's connection: this thread's kept connection to the configured database."""
    from flask import current_app, g

    if "db" not in g:
        g.db = _thread_db(str(current_app.config["DB"]), current_app.config["SQLITE_BUSY_TIMEOUT_MS"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """End of request: nothing may stay open in the kept connection (a failed handler's
    transaction is rolled back; ``write_tx`` normally did that already)."""
    from flask import g

    db = g.pop("db", None)
    if db is not None and db.conn.in_transaction:
        db.conn.rollback()


def init_app(app) -> None:
    app.teardown_appcontext(close_db)
