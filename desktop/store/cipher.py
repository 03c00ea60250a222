"""The client database encrypted at rest (PS-05): SQLCipher 4 with a random 256-bit raw key.

The key never touches a file: :mod:`desktop.store.keys` keeps it in the OS keyring. A raw key
(``PRAGMA key = "x'…'"``) skips SQLCipher's passphrase derivation, so opening stays fast; the
cipher itself (AES-256, per-page HMAC) is SQLCipher's default.

An existing plain database is encrypted once, in place (:func:`encrypt_in_place`):

1. the plain file is checkpointed and switched to a rollback journal (its ``-wal`` goes away);
2. ``sqlcipher_export`` copies everything into ``<name>.encrypting`` (mode 0600), which is synced;
3. the copy is opened with the key and checked (``integrity_check``, row counts of every table,
   ``user_version``);
4. only then ``os.replace`` puts it over the plain file, and the folder is synced.

A crash before step 4 leaves the plain file as it was (the next start removes the half copy and
starts again); a crash after it leaves the encrypted file and the key in the keyring. No point in
between has neither.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

import sqlcipher3

PLAIN_HEADER = b"SQLite format 3\x00"
KEY_BYTES = 32
TMP_SUFFIX = ".encrypting"

Hook = Callable[[str], None]


class WrongKey(Exception):
    """The file is not a database this key opens (wrong key, no key, or not a database)."""


def file_state(path: Path) -> str:
    """``"new"`` (missing or empty), ``"plain"`` (an SQLite header) or ``"encrypted"``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(PLAIN_HEADER))
    except FileNotFoundError:
        return "new"
    if not head:
        return "new"
    return "plain" if head == PLAIN_HEADER else "encrypted"


def _key_sql(key: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise ValueError("the database key has 32 bytes")
    return f"\"x'{key.hex()}'\""


def connect(path: Path, key: bytes, *, timeout: float = 30) -> sqlcipher3.Connection:
    """An SQLCipher connection keyed with ``key``; :class:`WrongKey` when it does not open the file."""
    conn = sqlcipher3.connect(str(path), check_same_thread=False, timeout=timeout)
    try:
        conn.execute(f"PRAGMA key = {_key_sql(key)}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        raise WrongKey(str(exc)) from None
    return conn


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _counts(conn) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if p.exists():
            p.unlink()


def encrypt_in_place(path: Path, key: bytes, hook: Hook | None = None) -> dict[str, int]:
    """Encrypt the plain database at ``path`` with ``key``; returns the row counts copied.

    ``hook`` is called with the name of each step just after it (``"journal"``, ``"exported"``,
    ``"verified"``, ``"replaced"``): the crash tests kill the process there.
    """
    hook = hook or (lambda _step: None)
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    _remove(tmp)
    plain = sqlite3.connect(str(path), timeout=30)
    try:
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        plain.execute("PRAGMA journal_mode=DELETE")
        counts = _counts(plain)
        version = plain.execute("PRAGMA user_version").fetchone()[0]
    finally:
        plain.close()
    hook("journal")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlcipher3.connect(str(path), timeout=30)     # no key: SQLCipher reads a plain file
    try:
        src.execute(f"ATTACH DATABASE ? AS enc KEY {_key_sql(key)}", [str(tmp)])
        src.execute("SELECT sqlcipher_export('enc')").fetchone()
        src.execute(f"PRAGMA enc.user_version = {int(version)}")
        src.execute("DETACH DATABASE enc")
    finally:
        src.close()
    _fsync(tmp)
    hook("exported")
    check = connect(tmp, key)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0]
        same = _counts(check) == counts
        same_version = check.execute("PRAGMA user_version").fetchone()[0] == version
    finally:
        check.close()
    if ok != "ok" or not same or not same_version:
        _remove(tmp)
        raise RuntimeError("the encrypted copy does not match the plain database; nothing was changed")
    hook("verified")
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if side.exists():           # empty after the checkpoint; must not meet the new file
            side.unlink()
    os.replace(tmp, path)
    _fsync(path.parent)
    hook("replaced")
    return counts


def clean_leftovers(path: Path) -> None:
    """Remove a half-made encrypted copy left by a crash (the plain file is still the database)."""
    _remove(Path(path).with_name(Path(path).name + TMP_SUFFIX))
