"""What is due, open, late, missed or done for a participant, offline or on the server (contract §4).

One function, :func:`compute_schedule`, serves the client's Today screen and the server's compliance
figures. Study day 1 is the local date (participant's zone) of dose 1 as given, or as planned until
dose 1 is confirmed (or the day staff confirmed, ``confirmed_day1``); there is no day 0. The DLT window
runs 14 × 24 h from dose 1's ``administered_at``. Nothing here reads the wall clock: ``now`` is always passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from shared.protocol import Protocol, WindowRule
from shared.schemas.fields import parse_aware

DUE = ("upcoming", "open", "late", "missed", "done")


@dataclass(frozen=True)
class Timeline:
    """A participant's anchor dates: the planned first dose and, once confirmed, dose 1 as given."""

    first_dose_date: date
    tz: str = "Asia/Shanghai"
    dose1_administered_at: datetime | None = None
    #: study day 1 as confirmed by staff on the site page (issue 10); wins over dose 1's date
    confirmed_day1: date | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    @property
    def day1(self) -> date:
        if self.confirmed_day1 is not None:
            return self.confirmed_day1
        if self.dose1_administered_at is not None:
            return self.local_date(self.dose1_administered_at)
        return self.first_dose_date

    def study_day(self, d: date) -> int:
        """Study day of a local date: day 1 is dose 1's date, the day before is day −1 (no day 0)."""
        delta = (d - self.day1).days
        return delta + 1 if delta >= 0 else delta

    def date_of(self, study_day: int) -> date:
        if study_day == 0:
            raise ValueError("there is no study day 0")
        return self.day1 + timedelta(days=study_day - 1 if study_day > 0 else study_day)

    def start_of(self, d: date) -> datetime:
        return datetime.combine(d, time(0, 0), tzinfo=self.zone)


@dataclass(frozen=True)
class DltStatus:
    state: str                 # "not_started" | "open" | "closed"
    day: int | None            # study day within the window (1..N) while open
    starts_at: datetime | None
    ends_at: datetime          # exclusive: start of study day N+1 in the participant's zone
    length_days: int

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "day": self.day, "length_days": self.length_days,
                "starts_at": self.starts_at.isoformat() if self.starts_at else None,
                "ends_at": self.ends_at.isoformat()}


def dlt_status(protocol: Protocol, timeline: Timeline, now: datetime) -> DltStatus:
    """The DLT window: ``window_days`` × 24 h from dose 1's ``administered_at`` ("2 weeks after the
    first drop"); until dose 1 is given, its end is counted from 00:00 of the planned day 1.
    ``day`` is the window's own day (1 in the first 24 h after dose 1, …, N in the last)."""
    n = protocol.dlt_window_days
    start = timeline.dose1_administered_at
    if start is None:
        return DltStatus("not_started", None, None, timeline.start_of(timeline.day1) + timedelta(days=n), n)
    ends = start + timedelta(days=n)
    if now < start:
        return DltStatus("not_started", None, start, ends, n)
    if now >= ends:
        return DltStatus("closed", None, start, ends, n)
    return DltStatus("open", int((now - start) // timedelta(days=1)) + 1, start, ends, n)


@dataclass
class DueItem:
    key: str                   # stable: "dose:2", "nasal:baseline", "nasal:day:5", "alsfrs:baseline", "alsfrs:day:8"
    kind: str                  # record type
    study_day: int
    due_date: date
    opens: date
    closes: date               # last on-time date
    late_until: date           # last date an entry is still accepted without being "missed"
    dose_number: int | None = None
    status: str = "upcoming"
    record_ids: list[str] = field(default_factory=list)
    late: bool = False         # a matched entry was made after ``closes``

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "study_day": self.study_day,
                "due_date": self.due_date.isoformat(), "opens": self.opens.isoformat(),
                "closes": self.closes.isoformat(), "late_until": self.late_until.isoformat(),
                "dose_number": self.dose_number, "status": self.status,
                "record_ids": list(self.record_ids), "late": self.late}


@dataclass(frozen=True)
class Entry:
    """What the schedule needs to know of a stored record."""

    id: str
    type: str
    event_time: datetime
    entered_at: datetime
    dose_number: int | None = None
    date: date | None = None
    given: bool | None = None

    @classmethod
    def from_envelope(cls, env: dict[str, Any]) -> "Entry":
        p = env.get("payload", {})
        d = p.get("date") or p.get("planned_date")
        return cls(id=env["id"], type=env["type"], event_time=_dt(env["event_time"]),
                   entered_at=_dt(env["entered_at"]), dose_number=p.get("dose_number"),
                   date=date.fromisoformat(d) if isinstance(d, str) else d, given=p.get("given"))


def _dt(v: Any) -> datetime:
    return v if isinstance(v, datetime) else parse_aware(v)


def _item(key: str, kind: str, tl: Timeline, day: int, w: WindowRule, dose: int | None = None) -> DueItem:
    due = tl.date_of(day)
    closes = due + timedelta(days=w.after)
    return DueItem(key, kind, day, due, due - timedelta(days=w.before), closes,
                   closes + timedelta(days=w.late_days), dose)


def planned_items(protocol: Protocol, timeline: Timeline) -> list[DueItem]:
    """Every scheduled entry for a participant, in date order, before any status is known."""
    tl, items = timeline, []
    for n, day in enumerate(protocol.dose_days, start=1):
        items.append(_item(f"dose:{n}", "dose_confirmation", tl, day, protocol.dose_window, n))
    nasal = protocol.nasal
    if nasal.get("pre_dose_baseline"):
        items.append(_item("nasal:baseline", "nasal_symptoms", tl, 1, WindowRule(0, 0, 0)))
    for day in range(nasal.get("first_day", 1), nasal.get("last_day", 0) + 1):
        items.append(_item(f"nasal:day:{day}", "nasal_symptoms", tl, day, protocol.nasal_window))
    before = int(protocol.alsfrs.get("baseline_days_before", 0))
    base = DueItem("alsfrs:baseline", "alsfrs_r", -1 if before else 1, tl.date_of(1) - timedelta(days=1),
                   tl.date_of(1) - timedelta(days=before), tl.date_of(1), tl.date_of(1))
    items.append(base)
    for day in protocol.alsfrs_days():
        items.append(_item(f"alsfrs:day:{day}", "alsfrs_r", tl, day, protocol.alsfrs_window))
    items.sort(key=lambda i: (i.due_date, i.kind, i.key))
    return items


def _entry_date(tl: Timeline, e: Entry) -> date:
    if e.type == "nasal_symptoms" and e.date is not None:
        return e.date
    return tl.local_date(e.event_time)


def _is_pre_dose(tl: Timeline, e: Entry) -> bool:
    return tl.dose1_administered_at is None or e.entered_at < tl.dose1_administered_at


def match_entries(protocol: Protocol, timeline: Timeline, entries: Iterable[Entry]) -> tuple[list[DueItem], list[Entry]]:
    """Assign entries to scheduled items. Returns the items and the entries that matched none."""
    items = planned_items(protocol, timeline)
    return items, match_into(timeline, items, entries)


def match_into(timeline: Timeline, items: list[DueItem], entries: Iterable[Entry]) -> list[Entry]:
    """Assign entries, in ``(entered_at, id)`` order, to ``items`` (changed in place); return the
    entries that matched none. ``items`` is :func:`planned_items` for a fresh matching, or the items
    of an earlier matching whose entries all sort before these (the matching continues)."""
    by_key = {i.key: i for i in items}
    unmatched: list[Entry] = []
    for e in sorted(entries, key=lambda x: (x.entered_at, x.id)):
        target: DueItem | None = None
        if e.type == "dose_confirmation":
            target = by_key.get(f"dose:{e.dose_number}")
            if target is not None and target.record_ids:
                target = None  # a repeated confirmation of the same dose: unmatched, labelled
        elif e.type == "nasal_symptoms":
            d = _entry_date(timeline, e)
            day = timeline.study_day(d)
            base = by_key.get("nasal:baseline")
            if base is not None and d == base.due_date and not base.record_ids and _is_pre_dose(timeline, e):
                target = base
            else:
                cand = by_key.get(f"nasal:day:{day}")
                target = cand if cand is not None and not cand.record_ids else None
        elif e.type == "alsfrs_r":
            d = _entry_date(timeline, e)
            base = by_key["alsfrs:baseline"]
            if base.opens <= d <= base.late_until and _is_pre_dose(timeline, e):
                target = base  # the last pre-dose report is the baseline; later ones replace it
                target.record_ids.clear()
            else:
                for it in items:
                    if (it.kind == "alsfrs_r" and it.key != "alsfrs:baseline" and not it.record_ids
                            and it.opens <= d <= it.late_until):
                        target = it
                        break
        if target is not None and target.kind != "alsfrs_r" and timeline.local_date(e.entered_at) > target.late_until:
            target = None  # made after the last accepted day: kept and labelled, not counted as done
        if target is None:
            unmatched.append(e)
            continue
        target.record_ids.append(e.id)
        if target.key != "alsfrs:baseline" and timeline.local_date(e.entered_at) > target.closes:
            target.late = True
    return unmatched


def compute_schedule(protocol: Protocol, timeline: Timeline, now: datetime,
                     entries: Iterable[Entry] = ()) -> list[DueItem]:
    """Every scheduled item with its status at ``now`` (upcoming, open, late, missed or done)."""
    items, _ = match_entries(protocol, timeline, entries)
    today = timeline.local_date(now)
    for it in items:
        if it.record_ids:
            it.status = "done"
        elif today < it.opens:
            it.status = "upcoming"
        elif today <= it.closes:
            it.status = "open"
        elif today <= it.late_until:
            it.status = "late"
        else:
            it.status = "missed"
    return items


def next_change(protocol: Protocol, timeline: Timeline, now: datetime, *, dlt: bool = True) -> datetime:
    """The first moment after ``now`` at which, for the same entries, :func:`compute_schedule` could
    give another status (statuses go by the participant's local date: 00:00 of the next day) or, with
    ``dlt``, :func:`dlt_status` another state or window day (dose 1 given, each 24 h after it, the
    window's end). Until then a figure computed from both at ``now`` stays true."""
    out = timeline.start_of(timeline.local_date(now) + timedelta(days=1))
    start = timeline.dose1_administered_at
    if dlt and start is not None:
        if now < start:
            out = min(out, start)
        elif now < start + timedelta(days=protocol.dlt_window_days):
            out = min(out, start + timedelta(days=int((now - start) // timedelta(days=1)) + 1))
    return out


def due_today(protocol: Protocol, timeline: Timeline, now: datetime,
              entries: Iterable[Entry] = ()) -> list[DueItem]:
    """What the Today screen lists: open and late items, and what was done today."""
    today = timeline.local_date(now)
    out = []
    for it in compute_schedule(protocol, timeline, now, entries):
        if it.status in ("open", "late") or (it.status == "done" and it.due_date == today):
            out.append(it)
    return out


def timing_labels(protocol: Protocol, timeline: Timeline, entry: Entry,
                  others: Iterable[Entry] = ()) -> list[str]:
    """Labels for one entry among the participant's others (never a reason to reject)."""
    return timing_labels_many(protocol, timeline, [entry], others)[entry.id]


def timing_labels_many(protocol: Protocol, timeline: Timeline, entries: Iterable[Entry],
                       others: Iterable[Entry] = ()) -> dict[str, list[str]]:
    """Labels for several new entries at once, from one matching pass over them and ``others``.

    Same rules as :func:`timing_labels`; the server labels a whole upload batch with this, so the
    cost does not grow with the square of the batch.
    """
    return timing_labels_after(protocol, timeline, planned_items(protocol, timeline), entries, others)


def timing_labels_after(protocol: Protocol, timeline: Timeline, items: list[DueItem],
                        entries: Iterable[Entry], others: Iterable[Entry] = ()) -> dict[str, list[str]]:
    """:func:`timing_labels_many` continuing a matching: ``items`` (changed in place) is
    :func:`planned_items`, or the items of an earlier matching of entries that all sort before
    ``others`` and ``entries`` by ``(entered_at, id)``. The labels are then the same as matching
    everything from the start; the server keeps the items between uploads so a new entry is not
    matched against the participant's whole history again."""
    entries = list(entries)
    unmatched = match_into(timeline, items, [*others, *entries])
    unmatched_ids = {e.id for e in unmatched}
    late_ids = {rid for it in items if it.late for rid in it.record_ids}
    filled = {it.key for it in items if it.record_ids}
    out: dict[str, list[str]] = {}
    for entry in entries:
        labels: list[str] = []
        if entry.type == "dose_confirmation":
            if entry.dose_number is not None and entry.dose_number > protocol.dose_count:
                labels.append("unscheduled_dose_number")
            elif entry.id in unmatched_ids:
                labels.append("repeated_dose_number")
        elif entry.id in unmatched_ids:
            day_key = f"nasal:day:{timeline.study_day(_entry_date(timeline, entry))}"
            second = entry.type == "nasal_symptoms" and day_key in filled
            labels.append("second_entry_same_day" if second else "outside_window")
        if entry.id in late_ids:
            labels.append("late")
        if entry.type in ("nasal_symptoms", "dose_confirmation") and _entry_date(timeline, entry) < timeline.day1:
            labels.append("before_first_dose")
        out[entry.id] = labels
    return out


def compliance(items: Iterable[DueItem]) -> dict[str, dict[str, int]]:
    """Counts per kind of done / expected-so-far (items whose window has closed or are done)."""
    out: dict[str, dict[str, int]] = {}
    for it in items:
        c = out.setdefault(it.kind, {"done": 0, "expected": 0, "missed": 0, "late": 0})
        if it.status in ("done", "missed", "late"):
            c["expected"] += 1
        c["done"] += it.status == "done"
        c["missed"] += it.status == "missed"
        c["late"] += it.status == "late"
    return out
