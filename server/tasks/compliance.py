"""Recompute active participants' compliance and overdue items from the shared schedule.

Each row keeps the participant's data version and the moment it stays true until
(:func:`shared.schedule.next_change`), so a run recomputes only the participants whose records,
timeline or status moved, or whose statuses may have changed with the date (issue 13).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from server.clock import iso
from server.db import write_tx
from server.store.list_summaries import changed_rows, record_views
from server.store.participants import participant_timeline
from shared.protocol import Protocol
from shared.schedule import Entry, compliance, compute_schedule, dlt_status, next_change

#: rows written per transaction
BATCH = 50


def recompute_compliance(db: Database, protocol: Protocol, now: datetime) -> dict[str, Any]:
    """Write ``participant_status`` for every active participant whose row is not current; returns
    counts (active participants, how many were recomputed, overdue items over all of them)."""
    due = changed_rows(db, protocol, "participant_status", "p.status = 'active'", now)
    rows: list[list[Any]] = []
    for p, version in due:
        entries = [Entry.from_envelope(r["current"]) for r in record_views(db, p["id"])]
        timeline = participant_timeline(db, p)
        items = compute_schedule(protocol, timeline, now, entries)
        overdue = [it.as_dict() for it in items if it.status in ("late", "missed")]
        rows.append([p["id"], iso(now), json.dumps(compliance(items), sort_keys=True), json.dumps(overdue),
                     json.dumps(dlt_status(protocol, timeline, now).as_dict()), version,
                     iso(next_change(protocol, timeline, now))])
        if len(rows) >= BATCH:
            _write(db, rows)
    _write(db, rows)
    active, overdue_total = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(json_array_length(s.overdue)), 0) FROM participants p"
        " LEFT JOIN participant_status s ON s.participant_id = p.id WHERE p.status = 'active'").fetchone()
    return {"participants": active, "recomputed": len(due), "overdue_items": overdue_total}


def _write(db: Database, rows: list[list[Any]]) -> None:
    if not rows:
        return
    with write_tx(db):
        db.conn.executemany(
            "INSERT INTO participant_status (participant_id, computed_at, compliance, overdue, dlt, version,"
            " valid_until) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(participant_id) DO UPDATE SET"
            " computed_at = excluded.computed_at, compliance = excluded.compliance,"
            " overdue = excluded.overdue, dlt = excluded.dlt, version = excluded.version,"
            " valid_until = excluded.valid_until", rows)
    rows.clear()
