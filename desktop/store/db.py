"""Open the client's local SQLite database: WAL, ``synchronous=FULL``, readable only by the user.

A commit returns only after the write-ahead log reached the disk, so "Saved" can be shown the moment
a submit transaction commits. One connection is shared by the UI thread and background jobs; every
access goes through :class:`Part`, which serialises them with one lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

DB_FILENAME = "als-epro.sqlite"


def secure_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and make sure only the user can enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def secure_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 (never briefly world-readable), or tighten it."""
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        os.chmod(path, 0o600)
    return path


class StoreEncrypted(Exception):
    """The database is encrypted and no key (or the wrong one) was given."""


def open_db(data_dir: Path | str, key: bytes | None = None) -> Database:
    """Open (creating) the database in ``data_dir`` with the durability settings the client needs.

    With ``key`` the file is SQLCipher-encrypted (a plain one is encrypted in place first, see
    :mod:`desktop.store.cipher`); without it the file is plain SQLite, which only a site's explicit
    setting allows in the program (:mod:`desktop.store.keys`).
    """
    from desktop.store import cipher

    folder = secure_dir(Path(data_dir))
    path = folder / DB_FILENAME
    state = cipher.file_state(path)
    if key is None and state == "encrypted":
        raise StoreEncrypted(str(path))
    if key is not None and state == "plain":
        cipher.encrypt_in_place(path, key)
    cipher.clean_leftovers(path)
    secure_file(path)
    # SQLite gives the -wal and -shm files the main file's permissions.
    if key is None:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    else:
        try:
            conn = cipher.connect(path, key)
        except cipher.WrongKey:
            raise StoreEncrypted(str(path)) from None
    db = Database(conn)
    db.execute("PRAGMA journal_mode=WAL;")
    db.execute("PRAGMA synchronous=FULL;")
    db.execute("PRAGMA foreign_keys=ON;")
    return db


class Part:
    """Base for one aggregate's store: a database, a lock shared by all parts, and transactions."""

    def __init__(self, db: Database, lock: threading.RLock) -> None:
        self.db = db
        self.lock = lock

    @contextlib.contextmanager
    def tx(self) -> Iterator[Database]:
        """One write transaction (``BEGIN IMMEDIATE``): everything in it commits, or nothing does."""
        with self.lock:
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                conn.rollback()
                raise
            conn.execute("COMMIT")

    def rows(self, sql: str, params: tuple | list | dict = ()) -> list[dict]:
        with self.lock:
            return list(self.db.query(sql, params))
