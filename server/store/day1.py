"""Study day 1 as confirmed by staff on the site page (issue 10 §2).

Day 1 is the local date of dose 1 as given. A dose-1 time typed on a device could be wrong, so day 1
is *confirmed* by staff: :func:`confirm_day1` appends a row to ``day1_confirmations`` (append-only,
audited, announced to the devices). Until then, the schedule flag ``day1_to_confirm``
(:mod:`server.store.reviews`) asks for it, and says when dose 1's date differs from the planned one.
A confirmed day 1 is what :class:`shared.schedule.Timeline` uses (``confirmed_day1``).
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query_one, write_tx
from server.store.audit import Actor, write_audit
from shared.errors import EproError, FieldError

REASON_MAX = 500


def latest_confirmation(db: Database, participant_id: int) -> dict[str, Any] | None:
    try:
        return query_one(db, "SELECT * FROM day1_confirmations WHERE participant_id = ? ORDER BY id DESC LIMIT 1",
                         [participant_id])
    except sqlite3.OperationalError as exc:   # a database migrated only part of the way (before m009)
        if "no such table" in str(exc):
            return None
        raise


def confirmed_day1(db: Database, participant_id: int) -> date | None:
    row = latest_confirmation(db, participant_id)
    return date.fromisoformat(row["day1"]) if row else None


def confirm_day1(db: Database, subject: str, day1: str, *, reason: str = "", actor: Actor,
                 now: datetime | None = None) -> dict[str, Any]:
    """Record the study day 1 staff confirmed (400 with the field and rule when it is not a date)."""
    from server.store.participants import _announce_timeline, dose1_administered_at, get_participant

    try:
        day = date.fromisoformat((day1 or "").strip())
    except ValueError:
        raise EproError("validation.invalid", 400,
                        errors=[FieldError("day1", "format.date", "Use YYYY-MM-DD.")]) from None
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise EproError("validation.invalid", 400,
                        errors=[FieldError("reason", "length", f"At most {REASON_MAX} characters.")])
    with write_tx(db):
        p = get_participant(db, subject)
        dose1 = dose1_administered_at(db, p["id"])
        if dose1 is not None and dose1.astimezone(ZoneInfo(p["tz"])).date() != day and not reason:
            raise EproError("validation.invalid", 400, errors=[FieldError(
                "reason", "reason_required", "Day 1 differs from dose 1's date: give a reason.")])
        stamp = iso(now or utc_now())
        old = latest_confirmation(db, p["id"])
        db.execute("INSERT INTO day1_confirmations (participant_id, day1, dose1_administered_at, reason,"
                   " confirmed_at, confirmed_by) VALUES (?, ?, ?, ?, ?, ?)",
                   [p["id"], day.isoformat(), dose1.isoformat() if dose1 else None, reason, stamp, str(actor)])
        write_audit(db, actor, "participant.confirm_day1", entity="participant", entity_id=subject,
                    site_id=p["site_id"], detail={"old": old["day1"] if old else None, "new": day.isoformat(),
                                                  "dose1_administered_at": dose1.isoformat() if dose1 else None,
                                                  "reason": reason}, now=now)
        _announce_timeline(db, p["id"], now)
    return latest_confirmation(db, p["id"])
