"""Raise a ``device.silent`` audit row once per silence, for devices not heard from too long (SY-06)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from server.db import query_one, write_tx
from server.store.audit import Actor, write_audit
from server.store.devices import silent_devices

ACTOR = Actor.system("jobs")


def mark_silent_devices(db: Database, hours: float, now: datetime) -> dict[str, Any]:
    """Audit each device silent for more than ``hours`` unless already flagged for this silence."""
    flagged = []
    for d in silent_devices(db, hours, now):
        already = query_one(db, "SELECT seq FROM audit WHERE action = 'device.silent' AND entity = 'device'"
                                " AND entity_id = ? AND json_extract(detail, '$.last_heard') = ?",
                            [d["id"], d["last_heard"]])
        if already:
            continue
        with write_tx(db):
            write_audit(db, ACTOR, "device.silent", entity="device", entity_id=d["id"], site_id=d["site_id"],
                        detail={"subject": d["subject"], "last_heard": d["last_heard"], "hours": hours},
                        now=now)
        flagged.append(d["id"])
    return {"silent": flagged}
