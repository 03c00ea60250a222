"""Labels the ingest adds to new records from the participant's doses (issue 10 §2, §3).

One call per stored batch (:meth:`server.store.records._Batch.store`): the participant's dose
confirmations as stored plus the batch's, judged against the protocol's planned dosing days
(:func:`shared.dose_schedule.dose_findings`: ``dose_early``, ``dose_late_given``, ``dose_too_close``,
``dose_out_of_order``, ``dose_same_day``), and each new diary checked for answers that contradict
each other (:func:`shared.consistency.consistency_issues`: ``inconsistent_epistaxis_help`` and
``inconsistent_future_date``; the cough-without-dose check depends on doses another device may send
later, so the staff pages compute it live, :mod:`server.staff.safety_views`). Labels never reject a
record; the record is stored as sent.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from sqlite_utils import Database

from shared.consistency import consistency_issues
from shared.dose_schedule import dose_findings
from shared.protocol import Protocol
from shared.schedule import Timeline


#: a participant's stored doses that were given, with only what :func:`dose_findings` reads (SQLite's
#: JSON functions pick the fields: no envelope is parsed in Python, issue 13); doses not given or
#: without a time are never judged, here or in ``dose_findings``
DOSES_SQL = ("SELECT id, entered_at, json_extract(envelope, '$.payload.administered_at'),"
             " json_extract(envelope, '$.payload.dose_number') FROM records"
             " WHERE participant_id = ? AND type = 'dose_confirmation'"
             " AND json_type(envelope, '$.payload.given') = 'true'"
             " AND json_extract(envelope, '$.payload.administered_at') IS NOT NULL")


def stored_doses(db: Database, participant_id: int) -> list[dict[str, Any]]:
    """The participant's given doses as stored, in the shape :func:`dose_findings` reads."""
    return [{"id": rid, "type": "dose_confirmation", "entered_at": entered,
             "payload": {"given": True, "administered_at": at, "dose_number": number}}
            for rid, entered, at, number in db.execute(DOSES_SQL, [participant_id]).fetchall()]


def batch_labels(db: Database, protocol: Protocol, timeline: Timeline, participant_id: int,
                 new: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{record id: [label, …]}`` for the batch's new (validated, not yet stored) envelopes."""
    new = list(new)
    new_doses = [str(r["id"]) for r in new if r["type"] == "dose_confirmation"]
    findings: dict = {}
    if new_doses:
        # every stored dose through the (participant_id, type) index (m012), but findings made only
        # for the new ones: the work per batch grows with the doses, not with the whole history
        # squared (issue 16)
        doses = stored_doses(db, participant_id) + [dict(r) for r in new if r["type"] == "dose_confirmation"]
        findings = dose_findings(protocol, timeline, doses, only=new_doses)
    out: dict[str, list[str]] = {}
    for r in new:
        found = findings.get(str(r["id"]))
        # the cough-without-dose check needs doses that may arrive later from another device (the
        # caregiver's), so it is not stored; the staff pages show it from the current records
        out[str(r["id"])] = [*(found.labels if found else []), *consistency_issues(r, protocol, None, timeline.tz)]
    return out
