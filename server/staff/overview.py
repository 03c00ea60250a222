"""Per-participant figures for the participants list: computed from the store on every request.

No Flask. Everything is derived from records as corrected (the latest version of each), the shared
schedule (:func:`shared.schedule.compute_schedule`) and the shared flag rules
(:func:`shared.flags.evaluate_flags`). Nothing here groups participants by anything but their own
state: no arm, cohort, dose level or kit grouping exists to group by (BL-02).

Urgency order (ux.md Part C): open high-severity flags, then DLT window open with any open flag,
then a device silent too long, then a missed or late dose, then diary completion under 80 %, then the
rest; each group by subject.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from server.db import file_identity
from server.store.devices import devices_for_participant
from server.store.participants import participant_timeline
from server.store.records import open_seq_gaps, record_versions, records_for_participant
from server.staff.fmt import hours_since, percent
from shared.flags import Flag, FlagList, evaluate_flags
from shared.protocol import Protocol
from shared.schedule import DltStatus, DueItem, Entry, Timeline, compliance, compute_schedule, dlt_status

#: urgency groups, most urgent first (each has a message ``staff.urgency.<name>``)
URGENCY = ("high_flag", "dlt_flag", "silent_device", "dose_overdue", "diary_low", "none")
DIARY_LOW_PERCENT = 80


def record_views(db: Database, participant_id: int) -> list[dict[str, Any]]:
    """A participant's records, oldest event first, each with ``current`` = envelope as corrected."""
    rows = records_for_participant(db, participant_id)
    for row in rows:
        payload = row["envelope"]["payload"]
        if (row.get("version") or 1) > 1:
            payload = record_versions(db, row["id"])[-1]["payload"]
        row["current"] = {**row["envelope"], "payload": payload}
    return rows


@dataclass
class DeviceView:
    row: dict[str, Any]
    last_heard: str | None
    silent_hours: float | None        # hours without contact when over the threshold, else None
    missing_seqs: list[int]

    @property
    def active(self) -> bool:
        return self.row["revoked_at"] is None


@dataclass
class Summary:
    participant: dict[str, Any]
    timeline: Timeline
    today: date
    study_day: int
    dlt: DltStatus
    items: list[DueItem]
    doses: dict[str, int]
    diary: dict[str, Any]
    devices: list[DeviceView]
    flags: FlagList
    states: dict[str, dict[str, Any]]
    records: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @property
    def subject(self) -> str:
        return self.participant["subject"]

    @property
    def open_flags(self) -> list[Flag]:
        return [f for f in self.flags if f.key not in self.states]

    @property
    def open_high(self) -> int:
        return sum(f.severity == "high" for f in self.open_flags)

    @property
    def highest(self) -> str | None:
        open_ = self.open_flags
        if not open_:
            return None
        return "high" if any(f.severity == "high" for f in open_) else "medium"

    @property
    def active_devices(self) -> list[DeviceView]:
        return [d for d in self.devices if d.active]

    @property
    def silent_devices(self) -> list[DeviceView]:
        return [d for d in self.active_devices if d.silent_hours is not None]

    @property
    def last_sync(self) -> str | None:
        seen = [d.row["last_seen_at"] for d in self.devices if d.row["last_seen_at"]]
        return max(seen) if seen else None

    @property
    def missing_entries(self) -> int:
        return sum(len(d.missing_seqs) for d in self.active_devices)

    @property
    def urgency(self) -> str:
        """The group that puts this participant where it is in the list (first that applies)."""
        for name in self.reasons:
            return name
        return "none"

    @property
    def reasons(self) -> list[str]:
        """Every urgency group that applies, most urgent first."""
        out = []
        if self.open_high:
            out.append("high_flag")
        if self.dlt.state == "open" and self.open_flags:
            out.append("dlt_flag")
        if self.silent_devices:
            out.append("silent_device")
        if self.doses["overdue"] or self.doses["not_given"]:
            out.append("dose_overdue")
        if self.diary["percent"] is not None and self.diary["percent"] < DIARY_LOW_PERCENT:
            out.append("diary_low")
        return out

    @property
    def rank(self) -> int:
        return URGENCY.index(self.urgency)


def _device_views(db: Database, participant: dict[str, Any], threshold_hours: float,
                  now: datetime) -> list[DeviceView]:
    out = []
    for row in devices_for_participant(db, participant["id"]):
        heard = row["last_seen_at"] or row["created_at"]
        hours = hours_since(heard, now)
        silent = (row["revoked_at"] is None and participant["status"] == "active" and hours is not None
                  and hours > threshold_hours)
        out.append(DeviceView(row, row["last_seen_at"], hours if silent else None,
                              open_seq_gaps(db, row["id"]) if row["revoked_at"] is None else []))
    return out


def summarize(db: Database, protocol: Protocol, participant: dict[str, Any], now: datetime, *,
              states: dict[str, dict[str, Any]] | None = None,
              records: list[dict[str, Any]] | None = None) -> Summary:
    """Everything the list row and the participant page's top strip show for one participant."""
    records = record_views(db, participant["id"]) if records is None else records
    current = [r["current"] for r in records]
    timeline = participant_timeline(db, participant)
    items = compute_schedule(protocol, timeline, now, [Entry.from_envelope(e) for e in current])
    counts = compliance(items)
    dose_items = [i for i in items if i.kind == "dose_confirmation"]
    payloads = {r["id"]: r["current"]["payload"] for r in records}
    not_given = sum(1 for i in dose_items if i.status == "done"
                    and payloads.get(i.record_ids[0], {}).get("given") is False)
    doses = {"given": sum(i.status == "done" for i in dose_items) - not_given,
             "not_given": not_given,
             "expected": sum(i.status in ("done", "late", "missed") for i in dose_items),
             "overdue": sum(i.status in ("late", "missed") for i in dose_items),
             "total": len(dose_items)}
    nasal = counts.get("nasal_symptoms", {"done": 0, "expected": 0})
    diary = {"done": nasal["done"], "expected": nasal["expected"],
             "percent": percent(nasal["done"], nasal["expected"])}
    today = timeline.local_date(now)
    return Summary(
        participant=participant, timeline=timeline, today=today, study_day=timeline.study_day(today),
        dlt=dlt_status(protocol, timeline, now), items=items, doses=doses, diary=diary,
        devices=_device_views(db, participant, float(protocol.threshold("device_silent_hours")), now),
        flags=evaluate_flags(protocol, timeline, current), states=states or {}, records=records)


class _SummaryCache:
    """The list page's summaries between requests (issue 13: the list summarised every participant's
    whole history on every request, seconds at a thousand participants).

    A summary is kept with the *data version* it was made from, read again on every request with
    indexed look-ups: the participant's row as it is now, the newest ``server_seq`` of its records,
    the newest entry of its changes feed (timeline moves, corrections, flag acknowledgements), the
    newest day-1 confirmation (a flag reads it), the protocol, and the participant's local date
    (item statuses are by date). Anything else a row shows that moves by the hour or with no record
    (the DLT window, devices heard from) is computed fresh each time; flag acknowledgements write
    to the changes feed. Kept without its
    records (memory); bounded; safe across threads; and correct across processes, since the
    version is read from the database."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._kept: OrderedDict[tuple, tuple[tuple, Summary]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def where(db: Database, participant_id: int) -> tuple:
        return (*file_identity(db), participant_id)

    @staticmethod
    def version(db: Database, protocol: Protocol, participant: dict[str, Any]) -> tuple:
        pid = participant["id"]
        one = lambda sql: db.execute(sql, [pid]).fetchone()[0]  # noqa: E731
        return (id(protocol), tuple(sorted(participant.items())),
                one("SELECT MAX(server_seq) FROM records WHERE participant_id = ?"),
                one("SELECT MAX(seq) FROM changes WHERE participant_id = ?"),
                one("SELECT MAX(id) FROM day1_confirmations WHERE participant_id = ?"))

    def get(self, where: tuple, version: tuple) -> Summary | None:
        with self._lock:
            kept = self._kept.get(where)
            if kept is None or kept[0] != version:
                return None
            self._kept.move_to_end(where)
            return kept[1]

    def put(self, where: tuple, version: tuple, summary: Summary) -> None:
        with self._lock:
            self._kept[where] = (version, replace(summary, records=[]))
            self._kept.move_to_end(where)
            while len(self._kept) > self.limit:
                self._kept.popitem(last=False)


_SUMMARIES = _SummaryCache()


def summarize_for_list(db: Database, protocol: Protocol, participant: dict[str, Any], now: datetime,
                       states: Callable[[], dict[str, dict[str, Any]]] = dict) -> Summary:
    """:func:`summarize` for a row of the participants list, from :class:`_SummaryCache` when the
    participant's data has not changed since (``records`` is then empty: the list shows none).
    ``states`` makes the flags' review states (:func:`server.staff.flag_states`), kept with the
    summary: they follow acknowledgements (the changes feed) and the date, as the summary does."""
    where = _SUMMARIES.where(db, participant["id"])
    # the timeline follows from what the version holds (the participant row, dose 1 among the
    # records, day-1 confirmations), so a kept summary's timeline is current
    version = (*_SUMMARIES.version(db, protocol, participant), now.astimezone(ZoneInfo(participant["tz"])).date())
    kept = _SUMMARIES.get(where, version)
    if kept is None:
        summary = summarize(db, protocol, participant, now, states=states())
        _SUMMARIES.put(where, version, summary)
        return summary
    return replace(kept, participant=participant, dlt=dlt_status(protocol, kept.timeline, now),
                   devices=_device_views(db, participant, float(protocol.threshold("device_silent_hours")), now))


SORTS: dict[str, Callable[[Summary], Any]] = {
    "risk": lambda s: (s.rank, s.subject),
    "subject": lambda s: s.subject,
    "study_day": lambda s: (-s.study_day, s.subject),
    "last_sync": lambda s: (s.last_sync or "", s.subject),
    "flags": lambda s: (-len(s.open_flags), s.subject),
}


def sort_summaries(summaries: list[Summary], sort: str) -> list[Summary]:
    return sorted(summaries, key=SORTS.get(sort, SORTS["risk"]))


def site_counts(summaries: list[Summary]) -> dict[str, int]:
    """The summary line above the list."""
    return {
        "with_flags": sum(bool(s.open_flags) for s in summaries),
        "silent_devices": sum(len(s.silent_devices) for s in summaries),
        "doses_overdue": sum(s.doses["overdue"] + s.doses["not_given"] for s in summaries),
        "dlt_open": sum(s.dlt.state == "open" for s in summaries),
    }
