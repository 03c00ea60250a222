"""Safety flags as staff see them: the flags the records raise, and the staff's acknowledgements.

Flags are never stored: :func:`shared.flags.evaluate_flags` computes them from a participant's
accepted records (each with its *current* version's payload), so a correction re-evaluates them. What
is stored is the acknowledgement, keyed by the flag's stable ``key`` (``"{rule}:{record_id}"``), in the
append-only ``flag_reviews`` table, together with the record version and a hash of the flag as it was
acknowledged. A flag is then

- ``open``: never acknowledged;
- ``acknowledged``: the latest acknowledgement saw this record version and this flag detail;
- ``changed``: acknowledged, but the record (or the flag's detail, e.g. its baseline) changed since —
  it needs another look and counts as open.

Doses that were due and never confirmed at all are schedule facts, not records; they appear here as
flags of the rule :data:`DOSE_NOT_CONFIRMED` (key ``"dose_not_confirmed:<subject>:<dose number>"``),
computed with :func:`shared.schedule.compute_schedule` at ``now``.

Outcomes (clinical.md §2.3: a diary symptom is not an adverse event by itself; the investigator decides
and records AEs in the AE CRF, the ePRO keeps the traceability): :data:`OUTCOMES`.

Open-flag counts per participant are cached in ``flag_counts`` by :func:`recompute_flag_counts`, which
the scheduled jobs run and the pages call for the participant they show (same function, same figures).
Masking: nothing here reads or groups by anything but the participant.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query, query_one, write_tx
from server.store import list_summaries
from server.store.audit import Actor, write_audit
from server.store.changes import add_change
from server.store.participants import participant_by_id, participant_timeline
from server.store.versions import event_time_for
from shared.errors import EproError, FieldError
from shared.flags import FlagList, evaluate_flags
from shared.protocol import Protocol
from shared.schedule import Entry, Timeline, compute_schedule, next_change

OUTCOMES = ("not_ae", "ae_recorded", "participant_contacted")
STATES = ("open", "changed", "acknowledged")
NOTE_MAX = 2000
AE_NUMBER_MAX = 64
DOSE_NOT_CONFIRMED = "dose_not_confirmed"
DAY1_TO_CONFIRM = "day1_to_confirm"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode("utf-8")).hexdigest()


# --- current records ---------------------------------------------------------------------------------

#: keys :func:`current_records` adds to each envelope (not part of what the device sent)
EXTRA_KEYS = ("version", "version_at", "received_at", "server_seq", "labels", "drift_flag")


def envelope_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope (with its current payload) without the keys :func:`current_records` added."""
    return {k: v for k, v in record.items() if k not in EXTRA_KEYS}


def current_records(db: Database, participant_id: int) -> list[dict[str, Any]]:
    """A participant's accepted records as envelopes carrying the *current* payload, oldest event first.

    Each dict is the envelope plus ``version`` (current version number), ``version_at`` (when that
    version was made), ``received_at``, ``server_seq``, ``labels`` and ``drift_flag``.
    """
    rows = query(db, """
        SELECT r.envelope, r.received_at, r.server_seq, r.labels, r.drift_flag, v.version, v.payload,
               v.created_at AS version_at
        FROM records r JOIN record_versions v ON v.record_id = r.id
         AND v.version = (SELECT MAX(version) FROM record_versions x WHERE x.record_id = r.id)
        WHERE r.participant_id = ? ORDER BY r.event_time, r.server_seq""", [participant_id])
    out = []
    for r in rows:
        env = json.loads(r["envelope"])
        env["payload"] = json.loads(r["payload"])
        env["event_time"] = event_time_for(env)  # follows a corrected diary date or dose time
        env.update(version=r["version"], version_at=r["version_at"], received_at=r["received_at"],
                   server_seq=r["server_seq"], labels=json.loads(r["labels"]), drift_flag=r["drift_flag"])
        out.append(env)
    return out


def timeline_of(participant: Mapping[str, Any], records: Iterable[Mapping[str, Any]],
                confirmed_day1: Any = None) -> Timeline:
    """The participant's timeline from already-loaded records (dose 1 as given, else as planned),
    with study day 1 as staff confirmed it (``confirmed_day1``, :mod:`server.store.day1`)."""
    from datetime import date

    from server.clock import parse_iso
    given = [parse_iso(r["payload"]["administered_at"]) for r in records
             if r["type"] == "dose_confirmation" and r["payload"].get("dose_number") == 1
             and r["payload"].get("given") and r["payload"].get("administered_at")]
    return Timeline(date.fromisoformat(participant["first_dose_date"]), participant["tz"],
                    min(given) if given else None, confirmed_day1)


# --- acknowledgements ------------------------------------------------------------------------------------

def _decode_review(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "flag": json.loads(row["flag"])}


def flag_reviews(db: Database, participant_id: int) -> list[dict[str, Any]]:
    """Every acknowledgement of a participant's flags, oldest first."""
    return [_decode_review(r) for r in query(
        db, "SELECT * FROM flag_reviews WHERE participant_id = ? ORDER BY id", [participant_id])]


def _schedule_flags(protocol: Protocol, participant: Mapping[str, Any], timeline: Timeline,
                    records: list[Mapping[str, Any]], now: datetime) -> list["_ScheduleFlag"]:
    """Doses not confirmed at all once their on-time window has ended (``compute_schedule`` status
    late or missed: from the day after the window, issue 10), and study day 1 still to confirm."""
    if participant["status"] != "active":
        return []
    entries = [Entry.from_envelope(dict(r)) for r in records]
    out = [_ScheduleFlag(participant["subject"], item.dose_number, item.due_date.isoformat(),
                         item.late_until.isoformat())
           for item in compute_schedule(protocol, timeline, now, entries)
           if item.kind == "dose_confirmation" and item.status in ("late", "missed")]
    if timeline.dose1_administered_at is not None:
        dose1_day = timeline.local_date(timeline.dose1_administered_at)
        if timeline.confirmed_day1 is None or timeline.confirmed_day1 != dose1_day:
            out.append(_Day1Flag(participant["subject"], timeline, dose1_day))
    for f in out:
        f.urgent = protocol.is_urgent(f.rule)
    return out


class _ScheduleFlag:
    """A flag-like object for a dose never confirmed (not a record, so not a :class:`Flag`)."""

    severity = "medium"
    rule = DOSE_NOT_CONFIRMED
    record_id = None
    urgent = False

    def __init__(self, subject: str, dose_number: int | None, due_date: str, late_until: str) -> None:
        self.key = f"{DOSE_NOT_CONFIRMED}:{subject}:{dose_number}"
        self.detail = {"dose_number": dose_number, "due_date": due_date, "late_until": late_until}

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rule": self.rule, "record_id": None, "severity": self.severity,
                "detail": dict(self.detail)}


class _Day1Flag(_ScheduleFlag):
    """Dose 1 is given but staff have not confirmed study day 1 (or confirmed another date)."""

    rule = DAY1_TO_CONFIRM

    def __init__(self, subject: str, timeline: Timeline, dose1_day: Any) -> None:
        self.key = f"{DAY1_TO_CONFIRM}:{subject}"
        self.detail = {"dose1_administered_at": timeline.dose1_administered_at.isoformat(),
                       "dose1_date": dose1_day.isoformat(), "planned_date": timeline.first_dose_date.isoformat(),
                       "confirmed_day1": timeline.confirmed_day1.isoformat() if timeline.confirmed_day1 else None,
                       "differs_from_plan": dose1_day != timeline.first_dose_date}


def participant_flags(db: Database, protocol: Protocol, participant: Mapping[str, Any], *,
                      now: datetime | None = None, records: list[dict[str, Any]] | None = None
                      ) -> dict[str, Any]:
    """Every flag of one participant with its review state, plus the counts and the rule notes.

    Returns ``{"flags": [{"flag", "key", "rule", "record_id", "severity", "state", "review",
    "record_version", "acknowledged_version"}…], "counts": {...}, "notes": (...), "baseline": ...}``;
    ``flag`` is the :class:`shared.flags.Flag` (or a dose-not-confirmed flag), ``review`` the latest
    acknowledgement (or None).
    """
    now = now or utc_now()
    from server.store.day1 import confirmed_day1

    records = current_records(db, participant["id"]) if records is None else records
    timeline = timeline_of(participant, records, confirmed_day1(db, participant["id"]))
    flags: FlagList = evaluate_flags(protocol, timeline, records)
    versions = {r["id"]: r["version"] for r in records}
    latest: dict[str, dict[str, Any]] = {}
    for review in flag_reviews(db, participant["id"]):
        latest[review["flag_key"]] = review
    items = []
    for flag in [*flags, *_schedule_flags(protocol, participant, timeline, records, now)]:
        review = latest.get(flag.key)
        version = versions.get(flag.record_id) if flag.record_id else None
        if review is None:
            state = "open"
        elif review["record_version"] == version and review["flag_sha256"] == _sha(flag.as_dict()):
            state = "acknowledged"
        else:
            state = "changed"
        items.append({"flag": flag, "key": flag.key, "rule": flag.rule, "record_id": flag.record_id,
                      "severity": flag.severity, "state": state, "review": review,
                      "record_version": version,
                      "acknowledged_version": review["record_version"] if review else None})
    order = {s: i for i, s in enumerate(STATES)}
    items.sort(key=lambda i: (order[i["state"]], 0 if i["severity"] == "high" else 1))
    return {"flags": items, "counts": _counts(items), "notes": flags.notes, "baseline": flags.baseline,
            "timeline": timeline}


def _counts(items: list[dict[str, Any]]) -> dict[str, int]:
    open_ = [i for i in items if i["state"] in ("open", "changed")]
    return {"open": len(open_), "open_high": sum(i["severity"] == "high" for i in open_),
            "changed": sum(i["state"] == "changed" for i in items),
            "acknowledged": sum(i["state"] == "acknowledged" for i in items), "total": len(items)}


def _bad(field: str, rule: str, message: str) -> EproError:
    return EproError("validation.invalid", 400, errors=[FieldError(field, rule, message)])


def acknowledge_flag(db: Database, protocol: Protocol, participant_id: int, flag_key: str, *,
                     outcome: str, note: str = "", ae_number: str = "", actor: Actor,
                     staff_role: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Record that staff reviewed a flag: outcome, note, who, when — audited, in one transaction.

    ``outcome`` is one of :data:`OUTCOMES`; ``ae_recorded`` needs the adverse-event number. The flag
    must currently be raised (open, changed, or acknowledged again). The participant's devices hear
    of it through the changes feed (``flag_acknowledged``: record and rule only, never the note).
    """
    now = now or utc_now()
    note = (note or "").strip()
    ae_number = (ae_number or "").strip()
    problems = []
    if outcome not in OUTCOMES:
        problems.append(FieldError("outcome", "one_of", "Choose one of: " + ", ".join(OUTCOMES) + "."))
    if outcome == "ae_recorded" and not ae_number:
        problems.append(FieldError("ae_number", "required", "Give the adverse event number."))
    if len(ae_number) > AE_NUMBER_MAX:
        problems.append(FieldError("ae_number", "length", f"At most {AE_NUMBER_MAX} characters."))
    if len(note) > NOTE_MAX:
        problems.append(FieldError("note", "length", f"At most {NOTE_MAX} characters."))
    if outcome != "ae_recorded":
        ae_number = ""
    if problems:
        raise EproError("validation.invalid", 400, errors=problems)
    with write_tx(db):
        participant = participant_by_id(db, participant_id)
        current = participant_flags(db, protocol, participant, now=now)
        item = next((i for i in current["flags"] if i["key"] == flag_key), None)
        if item is None:
            raise EproError("flag.not_found", 404, detail=flag_key)
        flag_dict = item["flag"].as_dict()
        stamp = iso(now)
        cur = db.execute(
            "INSERT INTO flag_reviews (participant_id, flag_key, rule, record_id, record_version, flag,"
            " flag_sha256, outcome, ae_number, note, actor, staff_role, reviewed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [participant_id, flag_key, item["rule"], item["record_id"], item["record_version"],
             _canonical(flag_dict), _sha(flag_dict), outcome, ae_number or None, note, str(actor),
             staff_role, stamp])
        review_id = cur.lastrowid
        write_audit(db, actor, "flag.acknowledge", entity="flag", entity_id=flag_key,
                    site_id=participant["site_id"],
                    detail={"subject": participant["subject"], "review_id": review_id, "rule": item["rule"],
                            "record_id": item["record_id"], "record_version": item["record_version"],
                            "previous_state": item["state"], "outcome": outcome,
                            "ae_number": ae_number or None, "note": note}, now=now)
        add_change(db, participant_id, "flag_acknowledged",
                   {"record_id": item["record_id"], "rule": item["rule"], "acknowledged_at": stamp}, now=now)
        _store_counts(db, participant_id, participant_flags(db, protocol, participant, now=now)["counts"], now)
        list_summaries.keep(db, protocol, [participant_id], now)   # the participants list's row
    return _decode_review(query_one(db, "SELECT * FROM flag_reviews WHERE id = ?", [review_id]))


# --- counts cache (scheduled task + pages) -------------------------------------------------------------

def _store_counts(db: Database, participant_id: int, counts: Mapping[str, int], now: datetime, *,
                  version: str | None = None, valid_until: str | None = None) -> None:
    """Cache counts; without the data version they were made at (a write path) the scheduled task
    computes them again at its next run."""
    db.execute(
        "INSERT INTO flag_counts (participant_id, computed_at, open, open_high, changed, acknowledged, total,"
        " version, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(participant_id) DO UPDATE SET"
        " computed_at = excluded.computed_at, open = excluded.open, open_high = excluded.open_high,"
        " changed = excluded.changed, acknowledged = excluded.acknowledged, total = excluded.total,"
        " version = excluded.version, valid_until = excluded.valid_until",
        [participant_id, iso(now), counts["open"], counts["open_high"], counts["changed"],
         counts["acknowledged"], counts["total"], version, valid_until])


def refresh_flag_counts(db: Database, protocol: Protocol, participant_id: int, *,
                        now: datetime | None = None) -> dict[str, int]:
    """Recompute one participant's flag counts, cache them and return them (what a page calls)."""
    now = now or utc_now()
    participant = participant_by_id(db, participant_id)
    counts = participant_flags(db, protocol, participant, now=now)["counts"]
    with write_tx(db):
        _store_counts(db, participant_id, counts, now)
    return counts


def recompute_flag_counts(db: Database, protocol: Protocol, now: datetime | None = None, *,
                          site_id: int | None = None) -> dict[str, Any]:
    """Scheduled task: recompute and cache the open-flag counts of every participant (or one site's)
    whose cached counts are not current: made at another data version (records, corrections,
    acknowledgements, timeline, status) or before a local midnight that may have made a dose overdue
    (issue 13: every run recomputed everyone). Returns how many participants there are, how many
    were recomputed and how many flags are open over all of them."""
    now = now or utc_now()
    where, params = ("p.site_id = ?", [site_id]) if site_id is not None else ("1", [])
    due = list_summaries.changed_rows(db, protocol, "flag_counts", where, now, params)
    for participant, version in due:
        found = participant_flags(db, protocol, participant, now=now)
        until = next_change(protocol, participant_timeline(db, participant), now, dlt=False)
        with write_tx(db):
            _store_counts(db, participant["id"], found["counts"], now, version=version, valid_until=iso(until))
    n, total_open = db.execute(
        f"SELECT COUNT(*), COALESCE(SUM(c.open), 0) FROM participants p"
        f" LEFT JOIN flag_counts c ON c.participant_id = p.id WHERE {where}", params).fetchone()
    return {"participants": n, "recomputed": len(due), "open_flags": total_open}


def cached_flag_counts(db: Database, site_id: int) -> dict[int, dict[str, Any]]:
    """``{participant_id: counts}`` as last cached for a site's participants (missing: never computed)."""
    rows = query(db, "SELECT c.* FROM flag_counts c JOIN participants p ON p.id = c.participant_id"
                     " WHERE p.site_id = ?", [site_id])
    return {r["participant_id"]: r for r in rows}
