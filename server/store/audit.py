"""The audit trail: append-only rows, each hash-chained to the one before (AT-01..AT-03, AT-10).

``hash = sha256(prev_hash + canonical(row))`` where the canonical row is the JSON of every column
except ``hash`` and ``prev_hash`` (sorted keys, compact, UTF-8). SQLite triggers refuse UPDATE and
DELETE; :func:`verify_chain` finds a row altered outside the application, a row removed from the
middle, or a broken link. Writers hold the write lock (``write_tx``), so the chain head read here
cannot be stale.

No password, token or pairing code may appear in a row: :func:`write_audit` refuses details with
such keys.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from sqlite_utils import Database

import shared
from server.clock import iso, utc_now

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
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_no_secrets(detail: Any, path: str = "detail") -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if str(key).lower() in SECRET_KEYS:
                raise ValueError(f"audit {path}.{key}: secrets never go into the audit trail")
            _check_no_secrets(value, f"{path}.{key}")
    elif isinstance(detail, list):
        for value in detail:
            _check_no_secrets(value, path)


def row_hash(row: dict[str, Any]) -> str:
    body = {k: v for k, v in row.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256((row["prev_hash"] + _canonical(body)).encode("utf-8")).hexdigest()


def write_audit(db: Database, actor: Actor, action: str, *, entity: str | None = None,
                entity_id: Any = None, site_id: int | None = None,
                detail: dict[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Append one audit row. Call inside the mutation's ``write_tx``; returns the row written."""
    if not db.conn.in_transaction:
        raise RuntimeError("write_audit must run inside the mutation's transaction")
    detail = detail or {}
    _check_no_secrets(detail)
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    row = {
        "seq": seq, "at": iso(now or utc_now()), "actor_kind": actor.kind, "actor_id": actor.id,
        "action": action, "entity": entity, "entity_id": None if entity_id is None else str(entity_id),
        "site_id": site_id, "detail": _canonical(detail), "app_version": shared.__version__,
        "prev_hash": prev,
    }
    row["hash"] = row_hash(row)
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


def _rows(db: Database) -> Iterator[dict[str, Any]]:
    cur = db.execute("SELECT * FROM audit ORDER BY seq")
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values))


def verify_chain(db: Database) -> ChainReport:
    """Recompute every link; report the first row that does not match (AT-03)."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row in _rows(db):
        count += 1
        if row["seq"] != expected_seq:
            return ChainReport(False, count, expected_seq, f"row {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return ChainReport(False, count, row["seq"], "prev_hash does not match the row before")
        if row_hash(row) != row["hash"]:
            return ChainReport(False, count, row["seq"], "content does not match its hash")
        prev, expected_seq = row["hash"], expected_seq + 1
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
