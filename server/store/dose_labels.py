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

import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping

from sqlite_utils import Database

from shared.consistency import consistency_issues
from shared.dose_schedule import dose_findings, given_keyed
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


class _KeptDoses:
    """Each participant's stored given doses, parsed and in time order (:func:`given_keyed`), as
    they were after the last batch this process stored for them, so the next batch of the same sync
    neither reads nor parses them again (issue 13: a 10,000-record backlog re-read every dose at
    each of its 20 requests).

    Used only while the database agrees: kept by file and participant (``where``, as
    :class:`server.store.records._MatchedCache` has it) under the participant's data stamp
    (:func:`server.store.records.stamp_and_top`: last ``server_seq`` and the audit link of that
    record's acceptance), read inside the batch's write transaction. A record added by anyone
    else, or a batch rolled back after it was kept, gives another stamp, and the doses are read from
    the database again. Bounded, thread-safe; the lists are never changed once kept."""

    def __init__(self, limit: int = 2_000) -> None:
        self.limit = limit
        self._kept: OrderedDict[tuple, tuple[tuple, list]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, where: tuple, stamp: tuple) -> list | None:
        with self._lock:
            kept = self._kept.get(where)
        return kept[1] if kept is not None and kept[0] == stamp else None

    def put(self, where: tuple, stamp: tuple, keyed: list) -> None:
        with self._lock:
            self._kept[where] = (stamp, keyed)
            self._kept.move_to_end(where)
            while len(self._kept) > self.limit:
                self._kept.popitem(last=False)

    def forget(self, where: tuple) -> None:
        with self._lock:
            self._kept.pop(where, None)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


KEPT_DOSES = _KeptDoses()


def _as_stored(record: Mapping[str, Any]) -> dict[str, Any]:
    """A new dose in the shape :func:`stored_doses` reads it back: the stored id (``parsed``, the
    lower-case key), the times as sent."""
    p = record["payload"]
    return {"id": record.parsed["id"], "type": "dose_confirmation", "entered_at": record["entered_at"],
            "payload": {"given": True, "administered_at": p["administered_at"], "dose_number": p["dose_number"]}}


def batch_labels(db: Database, protocol: Protocol, timeline: Timeline, participant_id: int,
                 new: Iterable[Mapping[str, Any]], *, where: tuple | None = None,
                 stamp: tuple | None = None) -> tuple[dict[str, list[str]], list | None]:
    """``{record id: [label, …]}`` for the batch's new (validated, not yet stored) envelopes, and
    the participant's given doses once the batch is stored (for :data:`KEPT_DOSES`, or None).

    ``where``, ``stamp``: the file and participant, and the participant's data stamp as read in the
    write transaction before the batch is stored; the doses kept for exactly that are used instead
    of reading them. The caller keeps the returned doses under the stamp after its insert, and only
    if every new record was stored (else it forgets them)."""
    new = list(new)
    new_doses = [str(r["id"]) for r in new if r["type"] == "dose_confirmation"]
    findings: dict = {}
    after = None
    if new_doses:
        # every stored dose through the (participant_id, type) index (m012), but findings made only
        # for the new ones: the work per batch grows with the doses, not with the whole history
        # squared (issue 16); the stored ones parsed once a sync, not once a batch (issue 13)
        stored = KEPT_DOSES.get(where, stamp) if where is not None else None
        if stored is None:
            stored = given_keyed(stored_doses(db, participant_id))
        mine = [r for r in new if r["type"] == "dose_confirmation"]
        doses = sorted(stored + given_keyed(dict(r) for r in mine), key=lambda kr: kr[0])
        findings = dose_findings(protocol, timeline, (), only=new_doses, keyed=doses, lists=False)
        after = sorted(stored + given_keyed(_as_stored(r) for r in mine), key=lambda kr: kr[0])
    elif where is not None:
        after = KEPT_DOSES.get(where, stamp)
    out: dict[str, list[str]] = {}
    for r in new:
        found = findings.get(str(r["id"]))
        # the cough-without-dose check needs doses that may arrive later from another device (the
        # caregiver's), so it is not stored; the staff pages show it from the current records
        out[str(r["id"])] = [*(found.labels if found else []), *consistency_issues(r, protocol, None, timeline.tz)]
    return out, after
