"""Submitted entries: the outbox and their history (saved → sent → received, or needs_attention).

An entry is written once, at Submit, in one transaction with its gap-free ``device_seq``; its envelope
is never changed afterwards. Only its delivery state, receipt and the server's message change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from shared.schemas import load_record

from desktop.store.db import Part

WAITING = ("saved", "sent")


@dataclass
class Entry:
    id: str
    type: str
    device_id: str
    participant: str
    device_seq: int
    envelope: dict[str, Any]
    sha256: str
    state: str
    created_at: str
    updated_at: str
    receipt: dict[str, Any] | None = None
    server_status: str | None = None
    server_message: str | None = None
    server_errors: list[dict[str, str]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    attempts: int = 0
    sent_at: str | None = None
    received_at: str | None = None

    @property
    def waiting(self) -> bool:
        return self.state in WAITING

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> "Entry":
        return cls(
            id=r["id"], type=r["type"], device_id=r["device_id"], participant=r["participant"] or "",
            device_seq=r["device_seq"], envelope=json.loads(r["envelope"]), sha256=r["sha256"],
            state=r["state"], created_at=r["created_at"], updated_at=r["updated_at"],
            receipt=json.loads(r["receipt"]) if r["receipt"] else None,
            server_status=r["server_status"], server_message=r["server_message"],
            server_errors=json.loads(r["server_errors"]) if r["server_errors"] else [],
            labels=json.loads(r["labels"]) if r["labels"] else [], attempts=r["attempts"] or 0,
            sent_at=r["sent_at"], received_at=r["received_at"])


@dataclass
class Waiting:
    """A waiting entry as the sync engine sends it: the envelope's JSON text exactly as stored at
    Submit (UTF-8 bytes), parsed only if someone asks for :attr:`envelope`."""

    id: str
    sha256: str
    device_seq: int
    text: bytes
    _envelope: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def envelope(self) -> dict[str, Any]:
        if self._envelope is None:
            self._envelope = json.loads(self.text)
        return self._envelope


@dataclass(frozen=True)
class Outcome:
    """One per-record result of a sync response, as the engine decided to record it."""

    id: str
    state: str                       # "received" | "needs_attention" | "saved" (leave waiting)
    server_status: str
    receipt: dict[str, Any] | None = None
    message: str | None = None
    errors: tuple[dict[str, str], ...] = ()
    labels: tuple[str, ...] = ()


class Outbox(Part):
    def submit(self, envelope: dict[str, Any], draft_id: str | None, now: str) -> Entry:
        """Save one entry: assign ``device_seq``, validate, insert, drop its draft — all or nothing.

        ``envelope`` has every field but ``device_seq``. Raises ``marshmallow.ValidationError`` (and
        stores nothing) when the finished envelope does not pass ``shared.schemas.load_record``.
        """
        with self.tx() as db:
            existing = self._get(envelope["id"])
            if existing is not None:
                return existing  # Submit pressed twice: the first one won
            device_id = self._device_of(envelope)
            seq = db.execute("SELECT COALESCE(MAX(device_seq), 0) + 1 FROM entries WHERE device_id = ?",
                             [device_id]).fetchone()[0]
            env = dict(envelope)
            env["device_seq"] = seq
            record = load_record(env)
            db["entries"].insert({
                "id": env["id"], "type": env["type"], "device_id": device_id,
                "participant": env["participant"], "device_seq": seq,
                "envelope": json.dumps(env, ensure_ascii=False), "sha256": record.sha256,
                "state": "saved", "labels": json.dumps(record.labels), "attempts": 0,
                "created_at": now, "updated_at": now,
            })
            if draft_id is not None:
                db.execute("DELETE FROM drafts WHERE id = ?", [draft_id])
        entry = self._get(env["id"])
        assert entry is not None
        return entry

    def _device_of(self, envelope: dict[str, Any]) -> str:
        row = self.db.execute("SELECT value FROM settings WHERE key = 'pairing'").fetchone()
        return json.loads(row[0])["device_id"] if row else ""

    def _get(self, entry_id: str) -> Entry | None:
        rows = list(self.db.query("SELECT * FROM entries WHERE id = ?", [entry_id]))
        return Entry.from_row(rows[0]) if rows else None

    def get(self, entry_id: str) -> Entry | None:
        with self.lock:
            return self._get(entry_id)

    def entries(self, device_id: str | None = None, states: Iterable[str] | None = None) -> list[Entry]:
        """Entries in ``device_seq`` order, optionally of one device and in some states."""
        sql, params = "SELECT * FROM entries WHERE 1=1", []
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        if states is not None:
            states = list(states)
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        return [Entry.from_row(r) for r in self.rows(sql + " ORDER BY device_id, device_seq", params)]

    def waiting(self, device_id: str | None = None) -> list[Entry]:
        return self.entries(device_id, WAITING)

    def waiting_texts(self, device_id: str | None = None) -> list[Waiting]:
        """The waiting entries in ``device_seq`` order, as :meth:`waiting`, without parsing a thing:
        id, sha256, device_seq and the stored envelope text as UTF-8 bytes."""
        sql = ("SELECT id, sha256, device_seq, CAST(envelope AS BLOB) FROM entries "
               f"WHERE state IN ({','.join('?' * len(WAITING))})")
        params: list[Any] = list(WAITING)
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        with self.lock:
            rows = self.db.execute(sql + " ORDER BY device_id, device_seq", params).fetchall()
        return [Waiting(*row) for row in rows]

    def mark_sending(self, ids: list[str], now: str) -> None:
        with self.tx() as db:
            db.conn.executemany("UPDATE entries SET state = 'sent', sent_at = ?, updated_at = ?, "
                                "attempts = attempts + 1 WHERE id = ? AND state IN ('saved', 'sent')",
                                [(now, now, entry_id) for entry_id in ids])

    def mark_unsent(self, ids: list[str], now: str) -> None:
        """The request failed before any answer: the entries are waiting again."""
        if not ids:   # the usual case after an answer: no transaction (and no commit) for nothing
            return
        with self.tx() as db:
            db.conn.executemany("UPDATE entries SET state = 'saved', updated_at = ? "
                                "WHERE id = ? AND state = 'sent'", [(now, entry_id) for entry_id in ids])

    def record(self, outcomes: list[Outcome], now: str) -> None:
        """Store a response's outcomes in one transaction. A received entry never changes again."""
        if not outcomes:
            return
        rows = []
        for o in outcomes:
            received_at = (o.receipt or {}).get("received_at") if o.state == "received" else None
            labels = json.dumps(list(o.labels))
            rows.append((o.state, o.server_status, json.dumps(o.receipt) if o.receipt else None, o.message,
                         json.dumps(list(o.errors), ensure_ascii=False) if o.errors else None,
                         labels, labels, received_at, now, o.id))
        with self.tx() as db:
            db.conn.executemany(
                "UPDATE entries SET state = ?, server_status = ?, receipt = COALESCE(?, receipt), "
                "server_message = ?, server_errors = ?, labels = CASE WHEN ? = '[]' THEN labels "
                "ELSE ? END, received_at = COALESCE(?, received_at), updated_at = ? "
                "WHERE id = ? AND state IN ('saved', 'sent')", rows)

    def counts(self, device_id: str | None = None) -> dict[str, int]:
        sql = "SELECT state, COUNT(*) AS n FROM entries"
        params: list[str] = []
        if device_id is not None:
            sql += " WHERE device_id = ?"
            params.append(device_id)
        out = {s: 0 for s in ("saved", "sent", "received", "needs_attention")}
        out.update({r["state"]: r["n"] for r in self.rows(sql + " GROUP BY state", params)})
        return out
