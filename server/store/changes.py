"""The changes feed a device pulls with ``GET /api/v1/sync/changes`` (contract §2).

Any area appends to it with :func:`add_change` inside its own transaction: timeline updates
(enrolment, first dose, dose 1 given, withdrawal), corrections of the participant's records, flag
acknowledgements. A device reads only its own participant's changes, in server order; the cursor
is opaque to it (base64 of ``c:<last seq>``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query
from shared.errors import EproError, FieldError

#: kinds a device understands; add one here when an area starts emitting it
KINDS = ("timeline", "correction", "flag_acknowledged", "protocol")


def add_change(db: Database, participant_id: int, kind: str, data: dict[str, Any], *,
               now: datetime | None = None) -> int:
    """Append a change for a participant's devices; call inside the caller's ``write_tx``."""
    if kind not in KINDS:
        raise ValueError(f"unknown change kind {kind!r}")
    if not db.conn.in_transaction:
        raise RuntimeError("add_change must run inside the caller's transaction")
    cur = db.execute("INSERT INTO changes (participant_id, kind, data, created_at) VALUES (?, ?, ?, ?)",
                     [participant_id, kind, json.dumps(data, ensure_ascii=False, sort_keys=True),
                      iso(now or utc_now())])
    return cur.lastrowid


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"c:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """``"0"`` (or nothing) is the start; anything else must be a cursor this server issued."""
    if cursor in (None, "", "0"):
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        seq = int(number)
        if prefix != "c" or not 0 <= seq < 2**63:     # SQLite's INTEGER range
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise EproError("sync.cursor_invalid", 400, errors=[
            FieldError("since", "format.cursor", "Not a cursor this server issued; start from 0.")]) from None
    return seq


def changes_since(db: Database, participant_id: int, since: int, *,
                  limit: int = 500) -> tuple[list[dict[str, Any]], int]:
    """Changes after ``since`` in server order, and the seq to continue from."""
    rows = query(db, "SELECT seq, kind, data, created_at FROM changes"
                     " WHERE participant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                 [participant_id, since, limit])
    out = [{"seq": r["seq"], "kind": r["kind"], "at": r["created_at"], "data": json.loads(r["data"])}
           for r in rows]
    return out, (rows[-1]["seq"] if rows else since)
