"""The audit trail: append-only rows, each hash-chained to the one before (AT-01..AT-03, AT-10).

``hash = sha256(prev_hash + canonical(row))`` where the canonical row is the JSON of every column
except ``hash`` and ``prev_hash`` (sorted keys, compact, UTF-8). SQLite triggers refuse UPDATE and
DELETE; :func:`verify_chain` finds a row altered outside the application, a row removed from the
middle, or a broken link. Writers hold the write lock (``write_tx``), so the chain head read here
cannot be stale.

**Keyed chain.** With an audit key configured (``ALS_EPRO_AUDIT_KEY``, kept in the env file, never
in the database) rows are chained with ``HMAC-SHA256(key, prev_hash + canonical(row))`` instead, so
someone who can write the database file but has not the key cannot rewrite a row and recompute the
chain. The switch is an *epoch* recorded in the chain itself: the first row written with a key is an
``audit.chain_keyed`` row (entity ``audit_chain``, entity_id the key's id — an HMAC of a constant,
never the key) and it and every later row are keyed; rows before it keep their plain sha256 links and
are pinned by the epoch row's ``prev_hash``. A new key (rotation) starts a new epoch; keys of earlier
epochs go in ``ALS_EPRO_AUDIT_KEY_PREVIOUS`` (comma-separated) so they still verify.

No password, token or pairing code may appear in a row: :func:`write_audit` refuses details with
such keys.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from sqlite_utils import Database

import shared
from server.clock import iso, utc_now
from server.db import CHUNK_ROWS, key_ordered_chunks, read_snapshot
from shared.canonical import canonical_json

GENESIS = "0" * 64
SECRET_KEYS = frozenset({"password", "token", "pairing_code", "secret", "password_hash",
                         "token_hash", "code_hash"})


@dataclass(frozen=True)
class Actor:
    """Who did something: a staff member, a device, the command line (OS user) or a system job."""

    kind: str
    id: str | None = None

    @classmethod
    def staff(cls, staff_id: int | str) -> "Actor":
        return cls("staff", str(staff_id))

    @classmethod
    def device(cls, device_id: str) -> "Actor":
        return cls("device", device_id)

    @classmethod
    def cli(cls) -> "Actor":
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls("cli", user)

    @classmethod
    def system(cls, name: str) -> "Actor":
        return cls("system", name)

    @classmethod
    def anonymous(cls, address: str | None = None) -> "Actor":
        return cls("anonymous", address)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind


def _canonical(value: Any) -> str:
    return canonical_json(value)


def _check_no_secrets(detail: Any, path: str = "detail") -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if str(key).lower() in SECRET_KEYS:
                raise ValueError(f"audit {path}.{key}: secrets never go into the audit trail")
            if isinstance(value, (dict, list)):   # a scalar holds no key (and needs no path made)
                _check_no_secrets(value, f"{path}.{key}")
    elif isinstance(detail, list):
        for value in detail:
            if isinstance(value, (dict, list)):
                _check_no_secrets(value, path)


def row_hash(row: dict[str, Any], key: bytes | None = None) -> str:
    """The link of ``row``: sha256 (un-keyed rows), or HMAC-SHA256 with ``key`` (keyed epochs)."""
    body = {k: v for k, v in row.items() if k not in ("hash", "prev_hash")}
    data = (row["prev_hash"] + _canonical(body)).encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


# --- the audit key (outside the database) ------------------------------------------------------------

KEY_EPOCH_ACTION = "audit.chain_keyed"
KEY_EPOCH_ENTITY = "audit_chain"
MIN_KEY_LENGTH = 32
_keys: dict[str, Any] = {"current": None, "previous": (), "configured": False}


def key_id(key: bytes) -> str:
    """A public name for a key (an HMAC of a constant): which key made an epoch, without the key."""
    return hmac.new(key, b"als-epro audit key id", hashlib.sha256).hexdigest()[:16]


def _as_key(value: Any) -> bytes | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) < MIN_KEY_LENGTH:
        raise ValueError(f"the audit key needs at least {MIN_KEY_LENGTH} characters "
                         "(e.g. `openssl rand -hex 32`)")
    return text.encode("utf-8")


def configure_keys(current: Any = None, previous: Any = None) -> None:
    """Set the process's audit key (and earlier keys, for verifying older epochs). Called by
    :func:`server.create_app` and the command line from their configuration (``AUDIT_KEY``,
    ``AUDIT_KEY_PREVIOUS``); ``None`` means an un-keyed chain."""
    prev = previous if isinstance(previous, (list, tuple)) else str(previous or "").split(",")
    _keys.update(current=_as_key(current), previous=tuple(k for k in (_as_key(p) for p in prev) if k),
                 configured=True)


def current_key() -> bytes | None:
    if not _keys["configured"]:  # a library caller that never configured: the environment decides
        import os

        configure_keys(os.environ.get("ALS_EPRO_AUDIT_KEY"), os.environ.get("ALS_EPRO_AUDIT_KEY_PREVIOUS"))
    return _keys["current"]


def known_keys() -> dict[str, bytes]:
    """Every configured key by its id (current and previous)."""
    current = current_key()
    keys = [k for k in (current, *_keys["previous"]) if k]
    return {key_id(k): k for k in keys}


def _epoch_key_id(db: Database) -> str | None:
    """The key id of the newest epoch in this database (None: the chain is un-keyed so far)."""
    row = db.execute("SELECT entity_id FROM audit WHERE entity = ? ORDER BY seq DESC LIMIT 1",
                     [KEY_EPOCH_ENTITY]).fetchone()
    return row[0] if row else None


def _epoch_still_there(db: Database, kid: str) -> bool:
    """Whether the epoch row remembered for this connection (``(key id, seq)``) is in the database as
    this connection sees it now."""
    kept = getattr(db, "_audit_epoch", None)
    if kept is None or kept[0] != kid:
        return False
    return db.execute("SELECT 1 FROM audit WHERE seq = ? AND entity = ? AND action = ? AND entity_id = ?",
                      [kept[1], KEY_EPOCH_ENTITY, KEY_EPOCH_ACTION, kid]).fetchone() is not None


def write_audit(db: Database, actor: Actor, action: str, *, entity: str | None = None,
                entity_id: Any = None, site_id: int | None = None,
                detail: dict[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Append one audit row. Call inside the mutation's ``write_tx``; returns the row written."""
    return write_audit_many(db, actor, [(action, entity, entity_id, site_id, detail)], now=now)[0]


def write_audit_many(db: Database, actor: Actor,
                     entries: list[tuple[str, str | None, Any, int | None, dict[str, Any] | None]], *,
                     now: datetime | None = None) -> list[dict[str, Any]]:
    """Append several audit rows, in order, as :func:`write_audit` would one by one: ``entries`` are
    ``(action, entity, entity_id, site_id, detail)``. One read of the chain head and one
    ``executemany``; every row is chained to the one before by :func:`row_hash` (the ingest writes a
    batch's rows this way). Call inside the mutation's ``write_tx``; returns the rows written."""
    if not db.conn.in_transaction:
        raise RuntimeError("write_audit must run inside the mutation's transaction")
    details = [detail or {} for *_, detail in entries]
    for detail in details:
        _check_no_secrets(detail)
    if not entries:
        return []
    key = current_key()
    if key is not None:
        kid = key_id(key)
        # the epoch row is searched once per connection and key (epochs are only ever added) and
        # remembered with its seq; each later write checks that row is still there (one primary-key
        # look-up), because it may have been written by an uncommitted transaction — or a grouped
        # job's savepoint (server.db.grouped_write) — that was then rolled back: written again then
        if not _epoch_still_there(db, kid):
            found = db.execute("SELECT seq, entity_id FROM audit WHERE entity = ? ORDER BY seq DESC LIMIT 1",
                               [KEY_EPOCH_ENTITY]).fetchone()
            if found is not None and found[1] == kid:
                db._audit_epoch = (kid, found[0])
            else:
                _insert(db, Actor.system("audit-key"), KEY_EPOCH_ACTION, KEY_EPOCH_ENTITY, kid, None,
                        {"scheme": "hmac-sha256", "key_id": kid,
                         "note": "rows from here on are chained with the audit key"}, now, key)
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    at = iso(now or utc_now())
    rows = []
    for (action, entity, entity_id, site_id, _detail), detail in zip(entries, details):
        row = _row(seq, at, actor, action, entity, entity_id, site_id, detail, prev, key)
        rows.append(row)
        seq, prev = seq + 1, row["hash"]
    db.conn.executemany(f"INSERT INTO audit ({', '.join(rows[0])}) VALUES ({', '.join('?' for _ in rows[0])})",
                        [list(r.values()) for r in rows])
    return rows


def ensure_epoch(db: Database) -> bool:
    """Open the configured key's epoch now if the chain has none for it (``init`` and server start
    call this, so a verify right after setting the key does not report a missing epoch). Returns
    whether a row was written."""
    key = current_key()
    if key is None:
        return False
    from server.db import write_tx

    with write_tx(db):
        if _epoch_key_id(db) == key_id(key):
            return False
        _insert(db, Actor.system("audit-key"), KEY_EPOCH_ACTION, KEY_EPOCH_ENTITY, key_id(key), None,
                {"scheme": "hmac-sha256", "key_id": key_id(key),
                 "note": "rows from here on are chained with the audit key"}, None, key)
    return True


def _row(seq: int, at: str, actor: Actor, action: str, entity: str | None, entity_id: Any,
         site_id: int | None, detail: dict[str, Any], prev: str, key: bytes | None) -> dict[str, Any]:
    """One audit row after ``prev`` (the hash of the row before), with its link."""
    row = {
        "seq": seq, "at": at, "actor_kind": actor.kind, "actor_id": actor.id,
        "action": action, "entity": entity, "entity_id": None if entity_id is None else str(entity_id),
        "site_id": site_id, "detail": _canonical(detail), "app_version": shared.__version__,
        "prev_hash": prev,
    }
    row["hash"] = row_hash(row, key)
    return row


def _insert(db: Database, actor: Actor, action: str, entity: str | None, entity_id: Any,
            site_id: int | None, detail: dict[str, Any], now: datetime | None,
            key: bytes | None) -> dict[str, Any]:
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    row = _row(seq, iso(now or utc_now()), actor, action, entity, entity_id, site_id, detail, prev, key)
    db.execute(
        f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    return row


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "first_bad_seq": self.first_bad_seq,
                "problem": self.problem}


def _rows(db: Database, chunk: int, after: int | None = None) -> Iterator[dict[str, Any]]:
    """Every audit row (after row ``after``), oldest first, ``chunk`` rows per read (memory flat in
    the chain's length)."""
    names = [r[1] for r in db.execute("PRAGMA table_info(audit)")]  # the columns of SELECT *, in order
    where, params = ("seq > ?", [after]) if after is not None else ("", [])
    for rows in key_ordered_chunks(db, "audit", "seq", where=where, params=params, chunk=chunk):
        for values in rows:
            yield dict(zip(names, values[1:]))


def verify_chain(db: Database, keys: dict[str, bytes] | None = None, *, chunk: int | None = None,
                 after: tuple[int, str] | None = None) -> ChainReport:
    """Recompute every link; report the first row that does not match (AT-03). The rows are read
    ``chunk`` at a time (default :data:`server.db.CHUNK_ROWS`), in one read transaction.

    ``after``: ``(seq, hash)`` of a row up to which this chain was verified already (a restore that
    verified the backup, then appended): only the rows after it are checked, chained to that hash;
    ``rows`` counts those.

    Rows from an ``audit.chain_keyed`` epoch on are checked with that epoch's key (``keys``: by key
    id, default :func:`known_keys`). With a key configured, a chain that has no epoch for it is not
    ok either: someone removed the keyed rows and re-chained the rest with plain sha256, or the
    server never wrote with this key (start it once, or run ``init``, to open the epoch)."""
    with read_snapshot(db):
        return _verify_chain(db, keys, CHUNK_ROWS if chunk is None else chunk, after)


def _verify_chain(db: Database, keys: dict[str, bytes] | None, chunk: int,
                  after: tuple[int, str] | None) -> ChainReport:
    default = keys is None
    keys = known_keys() if keys is None else keys
    prev, expected_seq, count, key = GENESIS, 1, 0, None
    epochs: list[str] = []
    if after is not None:
        (start, prev), expected_seq = after, after[0] + 1
        epochs = [r[0] for r in db.execute("SELECT entity_id FROM audit WHERE entity = ? AND action = ? AND seq <= ?"
                                           " ORDER BY seq", [KEY_EPOCH_ENTITY, KEY_EPOCH_ACTION, start])]
        if epochs and epochs[-1] not in keys:
            return ChainReport(False, 0, start, f"rows up to here are keyed with audit key {epochs[-1]}, "
                                                "which is not configured")
        key = keys[epochs[-1]] if epochs else None
    for row in _rows(db, chunk, None if after is None else after[0]):
        count += 1
        if row["seq"] != expected_seq:
            return ChainReport(False, count, expected_seq, f"row {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return ChainReport(False, count, row["seq"], "prev_hash does not match the row before")
        if row["entity"] == KEY_EPOCH_ENTITY and row["action"] == KEY_EPOCH_ACTION:
            kid = row["entity_id"]
            if kid not in keys:
                return ChainReport(False, count, row["seq"],
                                   f"rows from here are keyed with audit key {kid}, which is not configured")
            key = keys[kid]
            epochs.append(kid)
        if row_hash(row, key) != row["hash"]:
            return ChainReport(False, count, row["seq"],
                               "content does not match its hash" + (" (keyed)" if key else ""))
        prev, expected_seq = row["hash"], expected_seq + 1
    current = current_key() if default else None
    if current is not None and count and key_id(current) not in epochs:
        return ChainReport(False, count, None, "an audit key is configured but no row of the chain is keyed "
                           "with it (keyed rows removed and the chain recomputed, or no write since the key was set)")
    return ChainReport(True, count)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "detail": json.loads(row["detail"])}


def audit_for_entity(db: Database, entity: str, entity_id: Any) -> list[dict[str, Any]]:
    """Audit rows about one entity (e.g. ``("record", uuid)``), oldest first, detail decoded."""
    rows = db.query("SELECT * FROM audit WHERE entity = ? AND entity_id = ? ORDER BY seq",
                    [entity, str(entity_id)])
    return [_decode(r) for r in rows]


def audit_rows(db: Database, *, site_id: int | None = None, action: str | None = None,
               entity: str | None = None, actor_kind: str | None = None, start: str | None = None,
               end: str | None = None, limit: int = 100, offset: int = 0,
               newest_first: bool = True) -> list[dict[str, Any]]:
    """Filtered audit rows for review pages (AT-08); ``start``/``end`` are inclusive ISO bounds."""
    where, params = [], []
    for column, value in (("site_id", site_id), ("action", action), ("entity", entity),
                          ("actor_kind", actor_kind)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if start:
        where.append("at >= ?")
        params.append(start)
    if end:
        where.append("at <= ?")
        params.append(end)
    sql = "SELECT * FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ? OFFSET ?"
    return [_decode(r) for r in db.query(sql, [*params, limit, offset])]


def _participant_scope(participant_id: int, subject: str) -> tuple[str, list[Any]]:
    return ("(entity = 'participant' AND entity_id = ?) OR (entity = 'record' AND entity_id IN "
            "(SELECT id FROM records WHERE participant_id = ?))"), [subject, participant_id]


def count_audit_for_participant(db: Database, participant_id: int, subject: str) -> int:
    """How many audit rows are about one participant or one of its records."""
    where, params = _participant_scope(participant_id, subject)
    return db.execute(f"SELECT COUNT(*) FROM audit WHERE {where}", params).fetchone()[0]


def audit_for_participant(db: Database, participant_id: int, subject: str, *, limit: int = 50,
                          offset: int = 0) -> list[dict[str, Any]]:
    """Audit rows about one participant and its records, newest first, one page, detail decoded."""
    where, params = _participant_scope(participant_id, subject)
    rows = db.query(f"SELECT * FROM audit WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset])
    return [_decode(r) for r in rows]
