"""Given doses against the protocol's planned dosing days (issue 10 §2). Pure: no clock, no database.

A dose confirmation says which dose it is (``dose_number``); this module also looks at *when* it was
given (``administered_at``) against the planned days in ``[dosing]`` of the protocol file, so that a
dose is judged by the schedule and not by its number alone. Findings never reject a record: the
server stores them as labels on the record (:mod:`server.store.dose_labels`) and the flag rule
``dose_off_schedule`` (:mod:`shared.flags`) shows them to staff.

Labels (one dose may carry several):

=====================  =========================================================================
``dose_early``         given before its own on-time window opens (planned day − ``window_days_before``)
``dose_late_given``    given after its own on-time window closes (planned day + ``window_days_after``)
``dose_too_close``     given less than ``min_interval_hours`` after the previous given dose
``dose_out_of_order``  given before a dose with a lower number, or after one with a higher number
``dose_same_day``      another given dose has the same local date (participant's zone)
=====================  =========================================================================

``matched_dose`` in :class:`DoseFinding` is the planned dose whose day is nearest to the day the dose
was given (ties go to the dose's own number), which staff see next to the number that was typed.
Dose 1 anchors study day 1, so it is never early or late here; a dose 1 given on another date than
planned is the ``day1_to_confirm`` schedule flag (staff confirm day 1 on the site page).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from shared.protocol import Protocol
from shared.schedule import Timeline
from shared.schemas.fields import parse_aware

LABELS = ("dose_early", "dose_late_given", "dose_too_close", "dose_out_of_order", "dose_same_day")


@dataclass
class DoseFinding:
    record_id: str
    dose_number: int
    administered_at: str
    study_day: int
    planned_day: int | None
    matched_dose: int | None
    labels: list[str] = field(default_factory=list)
    previous_record_id: str | None = None
    hours_since_previous: float | None = None
    same_day_record_ids: list[str] = field(default_factory=list)
    out_of_order_with: list[str] = field(default_factory=list)
    min_interval_hours: float | None = None

    def detail(self) -> dict[str, Any]:
        return {"dose_number": self.dose_number, "administered_at": self.administered_at,
                "study_day": self.study_day, "planned_day": self.planned_day,
                "matched_dose": self.matched_dose, "labels": list(self.labels),
                "previous_record_id": self.previous_record_id,
                "hours_since_previous": self.hours_since_previous,
                "same_day_record_ids": list(self.same_day_record_ids),
                "out_of_order_with": list(self.out_of_order_with),
                "min_interval_hours": self.min_interval_hours}


def _dt(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_aware(value)


def min_interval_hours(protocol: Protocol) -> float | None:
    value = protocol.data.get("dosing", {}).get("min_interval_hours")
    return None if value is None else float(value)


def given_keyed(records: Iterable[Mapping[str, Any]]) -> list[tuple[tuple, Mapping[str, Any]]]:
    """``((administered_at, entered_at, id), record)`` of the given doses, in that order; each time
    parsed once. :func:`dose_findings` takes them ready-made (``keyed=``; the ingest keeps them
    between batches)."""
    keyed = [((_dt(r["payload"]["administered_at"]), _dt(r["entered_at"]), str(r["id"])), r)
             for r in records if r.get("type") == "dose_confirmation"
             and (r.get("payload") or {}).get("given") is True and r["payload"].get("administered_at")]
    keyed.sort(key=lambda kr: kr[0])
    return keyed


def given_doses(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Dose confirmations with ``given`` true and a time, by (administered_at, entered_at, id)."""
    return [r for _, r in given_keyed(records)]


def dose_findings(protocol: Protocol, timeline: Timeline, records: Iterable[Mapping[str, Any]],
                  only: Iterable[str] | None = None, *, keyed: list | None = None,
                  lists: bool = True) -> dict[str, DoseFinding]:
    """A :class:`DoseFinding` for every given dose among ``records`` (any type; others are ignored),
    or only for the doses whose id is in ``only`` (still judged against all of ``records``: the
    ingest labels a batch this way without judging the participant's whole history again).

    Each time is parsed once and the other doses are found through per-number and per-date indexes,
    so the work grows with the number of doses (and of findings), not with its square.

    ``keyed``: the doses as :func:`given_keyed` returns them (then ``records`` is not read).
    ``lists=False``: ``out_of_order_with`` is left empty (the label is found the same way, by
    whether such a dose exists): what the ingest stores is the labels, and a long history out of
    order would otherwise make a list of every dose for each new one."""
    keyed = given_keyed(records) if keyed is None else keyed
    doses = [r for _, r in keyed]
    ats = [k[0] for k, _ in keyed]
    numbers = [int(r["payload"]["dose_number"]) for r in doses]
    local = [timeline.local_date(at) for at in ats]
    by_number: dict[int, list[int]] = {}     # dose number -> positions in ``doses`` (time order)
    by_date: dict[Any, list[int]] = {}
    for i, (m, d) in enumerate(zip(numbers, local)):
        by_number.setdefault(m, []).append(i)
        by_date.setdefault(d, []).append(i)
    number_times = {m: [ats[i] for i in idx] for m, idx in by_number.items()}
    wanted = None if only is None else {str(x) for x in only}
    days = protocol.dose_days
    w = protocol.dose_window
    interval = min_interval_hours(protocol)
    out: dict[str, DoseFinding] = {}
    for i, rec in enumerate(doses):
        if wanted is not None and str(rec["id"]) not in wanted:
            continue
        p = rec["payload"]
        n, at = numbers[i], ats[i]
        sday = timeline.study_day(local[i])
        planned = days[n - 1] if 1 <= n <= len(days) else None
        nearest = min(range(1, len(days) + 1), key=lambda k: (abs(days[k - 1] - sday), k != n)) if days else None
        f = DoseFinding(str(rec["id"]), n, str(p["administered_at"]), sday, planned, nearest,
                        min_interval_hours=interval)
        if planned is not None and n != 1:
            if sday < planned - w.before:
                f.labels.append("dose_early")
            elif sday > planned + w.after:
                f.labels.append("dose_late_given")
        if i > 0:
            prev = doses[i - 1]
            hours = (at - ats[i - 1]).total_seconds() / 3600
            f.previous_record_id, f.hours_since_previous = str(prev["id"]), round(hours, 2)
            if interval is not None and hours < interval:
                f.labels.append("dose_too_close")
        # a lower number given later, or a higher number given earlier (in time order, like ``doses``)
        if lists:
            disorder: list[int] = []
            for m, idx in by_number.items():
                if m < n:
                    disorder.extend(idx[bisect_right(number_times[m], at):])
                elif m > n:
                    disorder.extend(idx[:bisect_left(number_times[m], at)])
            f.out_of_order_with = [str(doses[j]["id"]) for j in sorted(disorder)]
            out_of_order = bool(disorder)
        else:
            out_of_order = any(bisect_right(times, at) < len(times) if m < n else bisect_left(times, at) > 0
                               for m, times in number_times.items() if m != n)
        f.same_day_record_ids = [str(doses[j]["id"]) for j in by_date[local[i]] if j != i]
        if out_of_order:
            f.labels.append("dose_out_of_order")
        if f.same_day_record_ids:
            f.labels.append("dose_same_day")
        out[f.record_id] = f
    return out
