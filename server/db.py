"""SQLite connections for the server: WAL, foreign keys, a busy timeout, and explicit write locks.

Use :func:`open_db` from the CLI, jobs and tests, and :func:`get_db` inside a request (one connection
per worker thread, kept between requests; see :func:`_thread_db`). Every mutation runs inside
:func:`write_tx`, which takes SQLite's write lock up front (``BEGIN IMMEDIATE``): concurrent writers
queue instead of reading a stale audit chain head or ``server_seq`` and failing later — threads of
one process on a Python lock per database file (woken the moment it is free), other processes on
SQLite's busy timeout.
:func:`grouped_write` (the upload path) goes further: writers of one file that queue behind each
other are committed together, one ``COMMIT`` (one fsync of the WAL) for the group, each job in its own
savepoint, every caller answered only once that ``COMMIT`` succeeded (group commit).
Only this module touches ``flask.g``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

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
    file_identity(db)    # the file this connection opened, taken now (see file_identity)
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
    lock = getattr(db, "write_lock", None) or _write_lock(main_path(db))
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


def main_path(db: Database) -> str:
    """The file of the connection's main database ("" in memory or a temporary one). A connection's
    main database never changes, so it is asked once (``PRAGMA database_list``) and kept on ``db``."""
    path = getattr(db, "_main_path", None)
    if path is None:
        path = db.execute("PRAGMA database_list").fetchone()[2]
        db._main_path = path
    return path


# --- group commit ------------------------------------------------------------------------------

T = TypeVar("T")

#: most jobs one group commits (the upload endpoint has one job a request; ``serve`` runs 16 threads)
GROUP_MAX_JOBS = 64


class _Job:
    """One caller's work in a group: run by the group's leader, answered through ``wake``."""

    __slots__ = ("fn", "wake", "done", "result", "error")

    def __init__(self, fn: Callable[[Database], Any]) -> None:
        self.fn, self.wake, self.done = fn, threading.Event(), False
        self.result: Any = None
        self.error: BaseException | None = None


class _Group:
    """The queue of one database file. Invariant: the queue is not empty only while a leader exists
    (``leader``); the leader is the first job of the queue when it takes its batch."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.queue: deque[_Job] = deque()
        self.leader: _Job | None = None


_groups: dict[str, _Group] = {}
_group_of_path: dict[str, _Group] = {}    # the path as given -> its file's group (realpath once)


def _group(path: str) -> _Group:
    group = _group_of_path.get(path)
    if group is None:
        key = os.path.realpath(path)   # a few system calls: once per path, not at every upload
        with _write_locks_guard:
            group = _group_of_path[path] = _groups.setdefault(key, _Group())
    return group


class GroupAborted(sqlite3.OperationalError):
    """A grouped job ended the group's transaction itself (``COMMIT``/``ROLLBACK``, or an error after
    which SQLite rolled the whole transaction back): nothing of the group is known committed, so every
    job of it gets this error (each caller retries; an idempotent upload makes that safe)."""


def grouped_write(db: Database, job: Callable[[Database], T]) -> T:
    """Run ``job(tx_db)`` in a write transaction shared with other threads' jobs for the same file
    (group commit) and return its result, only once that transaction is committed.

    While one thread (the leader) holds the file's write lock, the jobs of other threads queue; the
    leader takes up to :data:`GROUP_MAX_JOBS` of them and runs them in order in one
    ``BEGIN IMMEDIATE … COMMIT`` on *its* connection (``tx_db``), each inside its own savepoint. A job
    that raises is rolled back to its savepoint and only its caller gets the exception; the others
    still commit. If the ``COMMIT`` fails, every caller of the group gets that error and nothing of
    the group is stored. ``synchronous`` stays as the connection has it (``FULL``): an answer is never
    given for data not durably committed.

    ``job`` may run on another thread than its caller: it must use only ``tx_db`` and what it was
    given (no ``flask.g``, no request context), and change nothing outside the database that a
    rolled-back savepoint or a failed commit would leave wrong.

    Inside an open transaction it is a savepoint of that transaction (as :func:`write_tx`); a
    database in memory (or a temporary one) is never grouped: the job runs in a transaction of its own.
    """
    path = main_path(db)
    if db.conn.in_transaction or not path:
        with write_tx(db):
            return job(db)
    group = _group(path)
    me = _Job(job)
    with group.mutex:
        group.queue.append(me)
        lead = group.leader is None
        if lead:
            group.leader = me
    if not lead:
        me.wake.wait()            # set when done, or when made the next leader
        if not me.done:
            lead = True
    if lead:
        _lead(db, group, me)
    if me.error is not None:
        raise me.error
    return me.result


def _lead(db: Database, group: _Group, me: _Job) -> None:
    """As the group's leader: take the queued jobs (``me`` first: the leader is the head of the
    queue), run and commit them, answer each, then hand the lead to the first job still waiting."""
    batch: list[_Job] = []
    try:
        with getattr(db, "write_lock", None) or _write_lock(main_path(db)):
            with group.mutex:     # jobs queued while the lock was awaited join this group
                while group.queue and len(batch) < GROUP_MAX_JOBS:
                    batch.append(group.queue.popleft())
            _run_group(db, batch)
    except BaseException as exc:  # the lock failed, or a ROLLBACK did: nobody's work is known stored
        for job in batch or [me]:
            job.result, job.error = None, exc
    finally:
        with group.mutex:
            if not batch:         # never taken: leave the queue
                group.queue.remove(me)
            nxt = group.queue[0] if group.queue else None
            group.leader = nxt
        me.done = True
        for job in batch:
            job.done = True
            if job is not me:
                job.wake.set()
        if nxt is not None:
            nxt.wake.set()


def _run_group(db: Database, batch: list[_Job]) -> None:
    """One transaction for ``batch``: each job in a savepoint, then one ``COMMIT``. Sets each job's
    result or error; a failed ``BEGIN``/``COMMIT`` (or a job that ended the transaction) becomes every
    job's error, with the transaction rolled back. A job alone needs no savepoint: if it fails, the
    transaction is rolled back (as :func:`write_tx` would)."""
    conn = db.conn
    alone = len(batch) == 1
    conn.execute("BEGIN IMMEDIATE")
    try:
        for job in batch:
            if not alone:
                conn.execute("SAVEPOINT grouped_job")
            try:
                job.result = job.fn(db)
            except Exception as exc:
                if alone:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    job.result, job.error = None, exc
                    return
                if not conn.in_transaction:
                    raise GroupAborted(f"a grouped job's error ended the transaction: {exc!r}") from exc
                conn.execute("ROLLBACK TO grouped_job")
                conn.execute("RELEASE grouped_job")
                job.result, job.error = None, exc
                continue
            if not conn.in_transaction:
                raise GroupAborted("a grouped job ended the transaction itself")
            if not alone:
                conn.execute("RELEASE grouped_job")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for job in batch:
            job.result, job.error = None, exc


def file_identity(db: Database) -> tuple:
    """Which database file ``db`` is (path, device, inode): a key for caches of what a file holds, so
    a file replaced at the same path (a restore) is another database. An open connection keeps
    reading the file it opened, whatever is put at its path later, so the identity is taken once
    (at the first call) and kept on ``db``: one ``stat`` a connection, not one an upload."""
    kept = getattr(db, "_file_identity", None)
    if kept is not None:
        return kept
    path = main_path(db)
    try:
        st = os.stat(path)
        identity = (path, st.st_dev, st.st_ino)
    except OSError:
        return (path, None, None)
    db._file_identity = identity
    return identity


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
