"""Participants and their caregivers (IA-01). Withdrawal stops collection and deletes nothing (PS-10).

A participant is keyed by the study subject id; no name, phone or other direct identifier is stored
(PS-02). Caregivers are named identities of their own, linked to one participant, so a caregiver's
entries carry the caregiver as originator. Timeline changes (first dose, withdrawal) are announced
to the participant's devices through the changes feed.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

from server.clock import iso, parse_iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from server.store.sites import get_site
from shared.errors import EproError, FieldError
from shared.ids import check_subject
from shared.schedule import Timeline
from shared.scoring import parse_onset

DEFAULT_TZ = "Asia/Shanghai"


def _bad(field: str, rule: str, message: str) -> EproError:
    return EproError("validation.invalid", 400, errors=[FieldError(field, rule, message)])


def _parse_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _bad(field, "format.date", "Use YYYY-MM-DD.") from None


def _check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad("tz", "format.timezone", "Not a known time zone (e.g. Asia/Shanghai).") from None
    return tz


def _require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise _bad("reason", "reason_required", "A reason is required.")
    return reason.strip()


def get_participant(db: Database, subject: str) -> dict[str, Any]:
    row = query_one(db, "SELECT * FROM participants WHERE subject = ?", [subject])
    if row is None:
        raise EproError("participant.not_found", 404, detail=subject)
    return row


def participant_by_id(db: Database, participant_id: int) -> dict[str, Any]:
    row = query_one(db, "SELECT * FROM participants WHERE id = ?", [participant_id])
    if row is None:
        raise EproError("participant.not_found", 404, detail=str(participant_id))
    return row


def participants_for_site(db: Database, site_id: int) -> list[dict[str, Any]]:
    """Every participant of a site with record, device and quarantine counts, by subject."""
    return query(db, """
        SELECT p.*,
          (SELECT COUNT(*) FROM records r WHERE r.participant_id = p.id) AS record_count,
          -- the last record stored (one look-up in records_participant_seq, not a read of every row)
          (SELECT r.received_at FROM records r WHERE r.participant_id = p.id ORDER BY r.server_seq DESC LIMIT 1)
             AS last_received_at,
          (SELECT COUNT(*) FROM devices d WHERE d.participant_id = p.id AND d.revoked_at IS NULL)
             AS active_devices,
          (SELECT MAX(d.last_seen_at) FROM devices d WHERE d.participant_id = p.id) AS last_seen_at,
          (SELECT COUNT(*) FROM quarantine q WHERE q.participant_id = p.id) AS quarantined
        FROM participants p WHERE p.site_id = ? ORDER BY p.subject
    """, [site_id])


#: the times dose 1 was given, from a participant's accepted confirmations: read by
#: :func:`dose1_administered_at` (``{participant}`` a parameter) and inside :data:`_WITH_TIMELINE_SQL`
_DOSE1_TIMES_SQL = """
    SELECT json_extract(envelope, '$.payload.administered_at') AS at FROM records
    WHERE participant_id = {participant} AND type = 'dose_confirmation'
      AND json_extract(envelope, '$.payload.dose_number') = 1
      AND json_extract(envelope, '$.payload.given') = 1"""


def _earliest(texts: list[str | None]) -> datetime | None:
    times = [parse_iso(t) for t in texts if t]
    return min(times) if times else None


def dose1_administered_at(db: Database, participant_id: int) -> datetime | None:
    """Dose 1 as given: the earliest accepted confirmation of dose 1 with ``given`` true.

    No ``ORDER BY`` (the earliest is taken here, as instants): ordering by ``entered_at`` made SQLite
    walk every record of the participant in ``records_participant``; without it the look-up seeks the
    participant's dose confirmations in ``records_participant_type`` (every submit asks this)."""
    return _earliest([r["at"] for r in query(db, _DOSE1_TIMES_SQL.format(participant="?"), [participant_id])])


#: a participant row with what :func:`participant_timeline` reads (dose 1 as given, the confirmed
#: study day 1), in one statement: ``_dose1`` is a JSON array of dose 1's ``administered_at``
#: texts, ``_day1`` the latest confirmation's day (the same look-ups as
#: :func:`dose1_administered_at` and :func:`server.store.day1.latest_confirmation`)
_WITH_TIMELINE_SQL = f"""
    SELECT p.*,
      (SELECT json_group_array(at) FROM ({_DOSE1_TIMES_SQL.format(participant="p.id")}))
        AS _dose1,
      (SELECT day1 FROM day1_confirmations c WHERE c.participant_id = p.id ORDER BY c.id DESC LIMIT 1) AS _day1
    FROM participants p WHERE p.id = ?"""


def participant_with_timeline(db: Database, participant_id: int) -> tuple[dict[str, Any], Timeline]:
    """:func:`participant_by_id` and :func:`participant_timeline` in one statement (each upload
    reads both inside its write transaction: three statements there before, issue 13)."""
    try:
        row = query_one(db, _WITH_TIMELINE_SQL, [participant_id])
    except sqlite3.OperationalError as exc:    # a database migrated only part of the way (before m009)
        if "no such table" not in str(exc):
            raise
        participant = participant_by_id(db, participant_id)
        return participant, participant_timeline(db, participant)
    if row is None:
        raise EproError("participant.not_found", 404, detail=str(participant_id))
    dose1 = _earliest(json.loads(row.pop("_dose1")))
    day1 = row.pop("_day1")
    return row, Timeline(date.fromisoformat(row["first_dose_date"]), row["tz"], dose1,
                         date.fromisoformat(day1) if day1 else None)


def participant_timeline(db: Database, participant: dict[str, Any]) -> Timeline:
    from server.store.day1 import confirmed_day1

    return Timeline(date.fromisoformat(participant["first_dose_date"]), participant["tz"],
                    dose1_administered_at(db, participant["id"]), confirmed_day1(db, participant["id"]))


def timeline_change(db: Database, participant: dict[str, Any]) -> dict[str, Any]:
    """The ``timeline`` change a device receives: anchor dates and the participant's status."""
    tl = participant_timeline(db, participant)
    return {
        "subject": participant["subject"],
        "first_dose_date": participant["first_dose_date"],
        "tz": participant["tz"],
        "dose1_administered_at": tl.dose1_administered_at.isoformat() if tl.dose1_administered_at else None,
        "study_day1": tl.day1.isoformat(),
        "day1_confirmed": tl.confirmed_day1.isoformat() if tl.confirmed_day1 else None,
        "status": participant["status"],
        "withdrawn_at": participant["withdrawn_at"],
    }


def _announce_timeline(db: Database, participant_id: int, now: datetime | None) -> None:
    from server.store.changes import add_change

    add_change(db, participant_id, "timeline", timeline_change(db, participant_by_id(db, participant_id)),
               now=now)


def check_onset_window(onset_date: date, first: date, protocol: Any = None) -> None:
    """Registry inclusion: onset to the first dose within the protocol's ``[enrolment]`` months
    (6–24), and never an onset after the first dose. 400 naming the field and the rule otherwise."""
    from shared.protocol import load_protocol
    from shared.scoring import months_between

    window = (protocol or load_protocol()).enrolment
    lo, hi = window.get("onset_to_first_dose_months_min"), window.get("onset_to_first_dose_months_max")
    if onset_date > first:
        raise _bad("onset", "onset_after_first_dose", "Symptom onset cannot be after the first dose.")
    months = months_between(onset_date, first)
    if (lo is not None and months < lo) or (hi is not None and months > hi):
        raise _bad("onset", "onset_to_first_dose_window",
                   f"Symptom onset to first dose must be {lo}–{hi} months (protocol); it is {months:.1f}.")


def enroll(db: Database, subject: str, site_code: str, onset: str, first_dose: str, *,
           tz: str = DEFAULT_TZ, actor: Actor, now: datetime | None = None, protocol: Any = None) -> dict[str, Any]:
    subject = check_subject(subject)
    try:
        onset_date, precision = parse_onset(onset)
    except ValueError:
        raise _bad("onset", "format.onset", "Use YYYY-MM or YYYY-MM-DD.") from None
    first = _parse_date(first_dose, "first_dose")
    check_onset_window(onset_date, first, protocol)
    _check_tz(tz)
    with write_tx(db):
        site = get_site(db, site_code)
        if query_one(db, "SELECT id FROM participants WHERE subject = ?", [subject]):
            raise EproError("participant.exists", 409, detail=subject)
        cur = db.execute(
            "INSERT INTO participants (subject, site_id, onset, onset_precision, first_dose_date, tz,"
            " status, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?)",
            [subject, site["id"], onset, precision, first.isoformat(), tz, iso(now or utc_now())])
        pid = cur.lastrowid
        write_audit(db, actor, "participant.enroll", entity="participant", entity_id=subject,
                    site_id=site["id"], detail={"onset": onset, "first_dose_date": first.isoformat(),
                                                "tz": tz}, now=now)
        _announce_timeline(db, pid, now)
    return get_participant(db, subject)


def set_first_dose(db: Database, subject: str, new_date: str, *, reason: str, actor: Actor,
                   now: datetime | None = None) -> dict[str, Any]:
    reason = _require_reason(reason)
    new = _parse_date(new_date, "first_dose")
    with write_tx(db):
        p = get_participant(db, subject)
        old = p["first_dose_date"]
        stamp = iso(now or utc_now())
        db.execute("UPDATE participants SET first_dose_date = ? WHERE id = ?", [new.isoformat(), p["id"]])
        db.execute("INSERT INTO first_dose_changes (participant_id, old_date, new_date, reason,"
                   " changed_at, changed_by) VALUES (?, ?, ?, ?, ?, ?)",
                   [p["id"], old, new.isoformat(), reason, stamp, str(actor)])
        write_audit(db, actor, "participant.set_first_dose", entity="participant", entity_id=subject,
                    site_id=p["site_id"], detail={"old": old, "new": new.isoformat(), "reason": reason},
                    now=now)
        _announce_timeline(db, p["id"], now)
    return get_participant(db, subject)


def withdraw(db: Database, subject: str, *, reason: str, actor: Actor,
             now: datetime | None = None) -> dict[str, Any]:
    """Stop collection from now on; everything already received stays (PS-10)."""
    reason = _require_reason(reason)
    with write_tx(db):
        p = get_participant(db, subject)
        if p["status"] == "withdrawn":
            raise EproError("participant.already_withdrawn", 409, detail=subject)
        db.execute("UPDATE participants SET status = 'withdrawn', withdrawn_at = ?,"
                   " withdrawal_reason = ? WHERE id = ?", [iso(now or utc_now()), reason, p["id"]])
        write_audit(db, actor, "participant.withdraw", entity="participant", entity_id=subject,
                    site_id=p["site_id"], detail={"old": p["status"], "new": "withdrawn",
                                                  "reason": reason}, now=now)
        _announce_timeline(db, p["id"], now)
    return get_participant(db, subject)


def participant_status(db: Database, participant_id: int) -> dict[str, Any] | None:
    """Compliance, overdue items and DLT window as last computed by the scheduled job (or None)."""
    rows = query(db, "SELECT * FROM participant_status WHERE participant_id = ?", [participant_id])
    if not rows:
        return None
    r = rows[0]
    return {"computed_at": r["computed_at"], "compliance": json.loads(r["compliance"]),
            "overdue": json.loads(r["overdue"]), "dlt": json.loads(r["dlt"])}


# --- caregivers --------------------------------------------------------------------------------

def add_caregiver(db: Database, subject: str, name: str, *, actor: Actor,
                  now: datetime | None = None) -> dict[str, Any]:
    name = name.strip()
    if not name or len(name) > 200:
        raise _bad("name", "length", "A caregiver name has 1 to 200 characters.")
    with write_tx(db):
        p = get_participant(db, subject)
        cur = db.execute("INSERT INTO caregivers (participant_id, name, created_at) VALUES (?, ?, ?)",
                         [p["id"], name, iso(now or utc_now())])
        cid = cur.lastrowid
        write_audit(db, actor, "caregiver.create", entity="caregiver", entity_id=cid,
                    site_id=p["site_id"], detail={"subject": subject}, now=now)
    return {"caregiver_id": cid, "subject": subject, "name": name}


def get_caregiver(db: Database, participant_id: int, caregiver_id: int) -> dict[str, Any]:
    row = query_one(db, "SELECT * FROM caregivers WHERE id = ? AND participant_id = ?",
                    [caregiver_id, participant_id])
    if row is None:
        raise EproError("caregiver.not_found", 404, detail=str(caregiver_id))
    return row


def caregivers_for(db: Database, participant_id: int) -> list[dict[str, Any]]:
    return query(db, "SELECT * FROM caregivers WHERE participant_id = ? ORDER BY id", [participant_id])
