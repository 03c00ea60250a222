"""Per-participant figures for the participants list and the participant page's top strip.

No Flask. :func:`summarize` computes one participant's from the store; the list's rows
(:func:`list_rows`) take what does not move with the clock from :mod:`server.store.list_summaries`
(kept per participant, checked against its data version on every request) and compute the rest. Everything is derived from records as corrected (the latest version of each), the shared
schedule (:func:`shared.schedule.compute_schedule`) and the shared flag rules
(:func:`shared.flags.evaluate_flags`). Nothing here groups participants by anything but their own
state: no arm, cohort, dose level or kit grouping exists to group by (BL-02).

Urgency order (ux.md Part C): open high-severity flags, then DLT window open with any open flag,
then a device silent too long, then a missed or late dose, then diary completion under 80 %, then the
rest; each group by subject.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from sqlite_utils import Database

from server.db import write_tx
from server.store import list_summaries as kept_rows
from server.store.devices import devices_for_participant, devices_for_participants, devices_for_site
from server.store.list_summaries import record_views
from server.store.participants import participant_timeline
from server.store.records import open_seq_gaps
from server.staff.fmt import hours_since, percent
from shared.flags import Flag, FlagList, evaluate_flags
from shared.protocol import Protocol
from shared.schedule import DltStatus, DueItem, Entry, Timeline, compliance, compute_schedule, dlt_status

log = logging.getLogger("server.staff")

#: urgency groups, most urgent first (each has a message ``staff.urgency.<name>``)
URGENCY = ("high_flag", "dlt_flag", "silent_device", "dose_overdue", "diary_low", "none")
DIARY_LOW_PERCENT = 80


@dataclass
class DeviceView:
    row: dict[str, Any]
    last_heard: str | None
    silent_hours: float | None        # hours without contact when over the threshold, else None
    missing_seqs: list[int]

    @property
    def active(self) -> bool:
        return self.row["revoked_at"] is None


class _RowFigures:
    """What a list row and the participant page's top strip derive from a participant's figures;
    needs ``participant``, ``dlt``, ``doses``, ``diary``, ``devices``, ``open_count`` and
    ``open_high`` (how many flags are open, and of those how many of high severity)."""

    participant: dict[str, Any]
    dlt: DltStatus
    doses: dict[str, int]
    diary: dict[str, Any]
    devices: list[DeviceView]

    @property
    def subject(self) -> str:
        return self.participant["subject"]

    @property
    def highest(self) -> str | None:
        if not self.open_count:
            return None
        return "high" if self.open_high else "medium"

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
        if self.dlt.state == "open" and self.open_count:
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


@dataclass
class Summary(_RowFigures):
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
    def open_flags(self) -> list[Flag]:
        return [f for f in self.flags if f.key not in self.states]

    @property
    def open_count(self) -> int:
        return len(self.open_flags)

    @property
    def open_high(self) -> int:
        return sum(f.severity == "high" for f in self.open_flags)


def _device_views(db: Database, participant: dict[str, Any], threshold_hours: float, now: datetime,
                  rows: list[dict[str, Any]] | None = None, gapped: set[str] | None = None) -> list[DeviceView]:
    """The participant's devices (``rows``, oldest first, when already read) with silence and open
    seq gaps; ``gapped`` names the devices that have any gap recorded (the others have none open)."""
    out = []
    for row in devices_for_participant(db, participant["id"]) if rows is None else rows:
        heard = row["last_seen_at"] or row["created_at"]
        hours = hours_since(heard, now)
        silent = (row["revoked_at"] is None and participant["status"] == "active" and hours is not None
                  and hours > threshold_hours)
        gaps = row["revoked_at"] is None and (gapped is None or row["id"] in gapped)
        out.append(DeviceView(row, row["last_seen_at"], hours if silent else None,
                              open_seq_gaps(db, row["id"]) if gaps else []))
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
    refused = kept_rows.not_given(dose_items, {r["id"]: r["current"]["payload"] for r in records})
    doses = {"given": sum(i.status == "done" for i in dose_items) - refused,
             "not_given": refused,
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


@dataclass
class ListRow(_RowFigures):
    """A row of the participants list: its clock-free figures from ``list_summaries`` (made from the
    participant's data at the version kept with them), the rest computed for ``now``."""

    participant: dict[str, Any]
    timeline: Timeline
    today: date
    study_day: int
    dlt: DltStatus
    doses: dict[str, int]
    diary: dict[str, Any]
    devices: list[DeviceView]
    open_count: int
    open_high: int


def _row_from_body(protocol: Protocol, participant: dict[str, Any], body: list[Any], now: datetime,
                   devices: list[DeviceView]) -> ListRow:
    (_, _, _, _, given, refused, doses_total, diary_done, open_count, open_high,
     doses_undone, diary_undone) = body                 # kept_rows.make_body
    timeline = kept_rows.timeline_of(body)
    today = timeline.local_date(now)
    # an item without an entry counts as expected (late or missed) once its last on-time day is past
    doses_due = bisect_left(doses_undone, today.toordinal())
    diary_expected = diary_done + bisect_left(diary_undone, today.toordinal())
    return ListRow(
        participant=participant, timeline=timeline, today=today, study_day=timeline.study_day(today),
        dlt=dlt_status(protocol, timeline, now),
        doses={"given": given, "not_given": refused, "expected": given + refused + doses_due,
               "overdue": doses_due, "total": doses_total},
        diary={"done": diary_done, "expected": diary_expected, "percent": percent(diary_done, diary_expected)},
        devices=devices, open_count=open_count, open_high=open_high)


def list_rows(db: Database, protocol: Protocol, site_id: int, now: datetime) -> list[ListRow]:
    """The participants list's rows for a site, by subject.

    Each row's clock-free figures come from ``list_summaries`` when kept at the participant's current
    data version (:mod:`server.store.list_summaries`); the others are made from the records and kept,
    in one write, for the next request and the next process. The date-bound figures (statuses by
    date, study day, DLT window) and the devices are computed for ``now`` every time."""
    threshold = float(protocol.threshold("device_silent_hours"))
    devices, gapped = devices_for_site(db, site_id)
    out, made = [], []
    for row in kept_rows.site_rows(db, protocol, site_id):
        participant = row.participant
        body = kept_rows.kept_body(protocol, row)
        if body is None:
            body = kept_rows.make_body(db, protocol, participant)
            made.append((participant["id"], row.version, body))
        views = _device_views(db, participant, threshold, now, devices.get(participant["id"], []), gapped)
        out.append(_row_from_body(protocol, participant, body, now, views))
    _keep(db, protocol, made, now)
    return out


def _keep(db: Database, protocol: Protocol, made: list[tuple[int, str, list[Any]]], now: datetime) -> bool:
    """Keep rows the list made; False when the database would not take them (locked or read-only:
    the rows are shown, kept next time)."""
    if not made:
        return True
    try:
        with write_tx(db):
            kept_rows.store(db, protocol, made, now)
    except sqlite3.OperationalError:
        log.warning("participants list: %d rows made but not kept", len(made), exc_info=True)
        return False
    return True


SORTS: dict[str, Callable[[_RowFigures], Any]] = {
    "risk": lambda s: (s.rank, s.subject),
    "subject": lambda s: s.subject,
    "study_day": lambda s: (-s.study_day, s.subject),
    "last_sync": lambda s: (s.last_sync or "", s.subject),
    "flags": lambda s: (-s.open_count, s.subject),
}


def sort_summaries(summaries: list[ListRow], sort: str) -> list[ListRow]:
    return sorted(summaries, key=SORTS.get(sort, SORTS["risk"]))


def site_counts(summaries: list[ListRow]) -> dict[str, int]:
    """The summary line above the list."""
    return {
        "with_flags": sum(bool(s.open_count) for s in summaries),
        "silent_devices": sum(len(s.silent_devices) for s in summaries),
        "doses_overdue": sum(s.doses["overdue"] + s.doses["not_given"] for s in summaries),
        "dlt_open": sum(s.dlt.state == "open" for s in summaries),
    }


FILTERS: dict[str, Callable[[ListRow], bool]] = {
    "": lambda s: True,
    "flags": lambda s: bool(s.open_count),
    "dlt": lambda s: s.dlt.state == "open",
}


def _pager(total: int, page: int, pages: int, per_page: int) -> dict[str, Any]:
    return {"page": page, "pages": pages, "total": total, "first": (page - 1) * per_page + 1 if total else 0,
            "last": min(page * per_page, total)}


def participants_page(db: Database, protocol: Protocol, site_id: int, now: datetime, *, sort: str = "risk",
                      only: str = "", page: int = 1, per_page: int = 100
                      ) -> tuple[list[ListRow], dict[str, int], dict[str, Any]]:
    """One page of the participants list at ``now``: its rows, the counts over everyone (the line
    above the list) and the pager (``page``, ``pages``, ``total`` passing the filter, ``first``,
    ``last``). ``sort`` is a key of :data:`SORTS`, ``only`` of :data:`FILTERS`.

    SQLite sorts, filters, counts and pages the kept rows (:func:`kept_rows.site_page`), so only the
    page's rows are made into :class:`ListRow`; rows not current are made and kept first. Should they
    not be kept (a locked or read-only database) or move again meanwhile, every row is computed here
    and sorted in Python (:func:`list_rows`), which gives the same page."""
    sort = sort if sort in SORTS else "risk"
    only = only if only in FILTERS else ""
    threshold = float(protocol.threshold("device_silent_hours"))
    for attempt in range(3):
        found = kept_rows.site_page(db, protocol, site_id, now, sort=sort, only=only, page=page,
                                    per_page=per_page, silent_hours=threshold)
        if found is not None:
            ids = [r.participant["id"] for r in found.rows]
            devices, gapped = devices_for_participants(db, ids)
            rows = [_row_from_body(protocol, r.participant, json.loads(r.kept_body), now,
                                   _device_views(db, r.participant, threshold, now,
                                                 devices.get(r.participant["id"], []), gapped))
                    for r in found.rows]
            counts = {k: found.counts[k] for k in ("with_flags", "silent_devices", "doses_overdue", "dlt_open")}
            return rows, counts, _pager(found.total, found.page, found.pages, per_page)
        if attempt == 2:
            break
        # rows not current (uploads since the serve job last ran): made and kept, then sorted
        stale = kept_rows.stale_ids(db, protocol, site_id)
        made = [(pid, row.version, kept_rows.make_body(db, protocol, row.participant))
                for pid, row in kept_rows.rows_of(db, protocol, stale).items()]
        if not _keep(db, protocol, made, now):
            break
    return python_page(db, protocol, site_id, now, sort=sort, only=only, page=page, per_page=per_page)


def python_page(db: Database, protocol: Protocol, site_id: int, now: datetime, *, sort: str = "risk",
                only: str = "", page: int = 1, per_page: int = 100
                ) -> tuple[list[ListRow], dict[str, int], dict[str, Any]]:
    """:func:`participants_page` computed row by row in Python: every row made, sorted by
    :data:`SORTS`, counted by :func:`site_counts` and filtered by :data:`FILTERS`."""
    everyone = sort_summaries(list_rows(db, protocol, site_id, now), sort)
    counts = site_counts(everyone)
    passing = [s for s in everyone if FILTERS[only](s)]
    pages = max(1, -(-len(passing) // per_page))
    n = min(max(1, page), pages)
    return passing[(n - 1) * per_page:n * per_page], counts, _pager(len(passing), n, pages, per_page)
