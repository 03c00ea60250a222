"""Answers that contradict each other (issue 10 §3). Pure: no clock, no database.

The desktop form refuses these before Submit with a plain message (``consistency.<code>`` in
``shared/messages/safety_rules.json``); the server still stores whatever arrives (nothing is lost)
and labels it with the code, and staff see an "inconsistent" marker on the record.

====================================  ============================================================
code (label)                          when
====================================  ============================================================
``inconsistent_epistaxis_help``       ``epistaxis_needed_help`` is true but the nosebleed grade is 0
``inconsistent_cough_without_dose``   a cough/choking-at-dosing grade of 1 or more on a diary date
                                      with no given dose (``administered_at`` on that local date)
``inconsistent_future_date``          the diary date starts (participant's zone) more than
                                      ``flags.future_diary_tolerance_seconds`` after ``entered_at``
====================================  ============================================================

A cough grade of 0 on a day without a dose says nothing wrong and is not labelled.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from shared.protocol import Protocol
from shared.schemas.fields import parse_aware

CODES = ("inconsistent_epistaxis_help", "inconsistent_cough_without_dose", "inconsistent_future_date")
DEFAULT_TOLERANCE_S = 300


def _dt(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_aware(value)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def tolerance_seconds(protocol: Protocol | None) -> float:
    flags = protocol.flags if protocol is not None else {}
    return float(flags.get("future_diary_tolerance_seconds", DEFAULT_TOLERANCE_S))


def given_dose_dates(records: Iterable[Mapping[str, Any]]) -> set[date]:
    """Local dates (at the dose time's own offset, as a diary date is device-local) of given doses."""
    out = set()
    for r in records:
        p = r.get("payload") or {}
        if r.get("type") == "dose_confirmation" and p.get("given") is True and p.get("administered_at"):
            out.add(_dt(p["administered_at"]).date())
    return out


def consistency_issues(record: Mapping[str, Any], protocol: Protocol | None,
                       dose_dates: Iterable[date] | None, tz: str | None = None) -> list[str]:
    """The codes (see the module docstring) a nasal diary breaks; ``[]`` for other record types.

    ``dose_dates``: the dates with a given dose (:func:`given_dose_dates`); ``None`` when they are not
    known (the cough rule is then not checked). ``tz``: the participant's zone, in which the diary
    date is a day (a device whose clock runs in another zone must not make today "future"); without
    it, the offset of ``entered_at``.
    """
    if record.get("type") != "nasal_symptoms":
        return []
    p = record.get("payload") or {}
    grades = p.get("symptoms") or {}
    out: list[str] = []
    if p.get("epistaxis_needed_help") is True and (grades.get("epistaxis") or 0) == 0:
        out.append("inconsistent_epistaxis_help")
    cough = grades.get("cough_choking_dosing")
    if dose_dates is not None and isinstance(cough, int) and cough >= 1 and p.get("date"):
        if _day(p["date"]) not in set(dose_dates):
            out.append("inconsistent_cough_without_dose")
    entered = record.get("entered_at")
    if p.get("date") and entered:
        moment = _dt(entered)
        starts = datetime.combine(_day(p["date"]), time(0, 0), tzinfo=ZoneInfo(tz) if tz else moment.tzinfo)
        if starts - moment > timedelta(seconds=tolerance_seconds(protocol)):
            out.append("inconsistent_future_date")
    return out
