"""Recompute each active participant's compliance and overdue items from the shared schedule."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from server.clock import iso
from server.db import query, write_tx
from server.store.participants import participant_timeline
from shared.protocol import Protocol
from shared.schedule import Entry, compliance, compute_schedule, dlt_status


def recompute_compliance(db: Database, protocol: Protocol, now: datetime) -> dict[str, Any]:
    """Write ``participant_status`` for every active participant; returns counts."""
    participants = query(db, "SELECT * FROM participants WHERE status = 'active' ORDER BY id")
    overdue_total = 0
    for p in participants:
        entries = [Entry.from_envelope(json.loads(r["envelope"])) for r in query(
            db, "SELECT envelope FROM records WHERE participant_id = ?", [p["id"]])]
        timeline = participant_timeline(db, p)
        items = compute_schedule(protocol, timeline, now, entries)
        overdue = [it.as_dict() for it in items if it.status in ("late", "missed")]
        overdue_total += len(overdue)
        with write_tx(db):
            db.execute(
                "INSERT INTO participant_status (participant_id, computed_at, compliance, overdue, dlt)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(participant_id) DO UPDATE SET"
                " computed_at = excluded.computed_at, compliance = excluded.compliance,"
                " overdue = excluded.overdue, dlt = excluded.dlt",
                [p["id"], iso(now), json.dumps(compliance(items), sort_keys=True), json.dumps(overdue),
                 json.dumps(dlt_status(protocol, timeline, now).as_dict())])
    return {"participants": len(participants), "overdue_items": overdue_total}

