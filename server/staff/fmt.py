"""Dates, times and small values as staff read them, in English or Simplified Chinese (ux.md rule 26).

Pure functions, no Flask. Times are always 24-hour; a local time carries its zone as ``(UTC+8)``;
audit and signature views show UTC as well. Relative words ("3 hours ago") only ever stand next to
an absolute time.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from server.clock import parse_iso
from shared.messages import t

MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def to_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return parse_iso(str(value))
    except ValueError:
        return None


def offset_label(tz: str, at: datetime | None = None) -> str:
    """``UTC+8`` for Asia/Shanghai (``UTC+5:30`` where minutes matter)."""
    moment = (at or datetime.now(timezone.utc)).astimezone(ZoneInfo(tz))
    seconds = int(moment.utcoffset().total_seconds())
    sign = "+" if seconds >= 0 else "−"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


def fmt_date(d: date | None, lang: str, *, weekday: bool = True, year: bool = True) -> str:
    """``Wed 25 Nov 2026`` / ``2026年11月25日 周三``."""
    if d is None:
        return "—"
    if lang == "zh-CN":
        text = (f"{d.year}年" if year else "") + f"{d.month}月{d.day}日"
        return f"{text} {WEEKDAYS_ZH[d.weekday()]}" if weekday else text
    text = f"{d.day} {MONTHS_EN[d.month - 1]}" + (f" {d.year}" if year else "")
    return f"{WEEKDAYS_EN[d.weekday()]} {text}" if weekday else text


def fmt_local(value: Any, lang: str, tz: str, *, zone: bool = True, weekday: bool = True,
              year: bool = True) -> str:
    """A stored or received time in ``tz``: ``Wed 25 Nov 2026 09:12 (UTC+8)``."""
    moment = to_datetime(value)
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(tz))
    text = f"{fmt_date(local.date(), lang, weekday=weekday, year=year)} {local:%H:%M}"
    return f"{text} ({offset_label(tz, moment)})" if zone else text


def fmt_utc(value: Any) -> str:
    """``2026-11-25 01:12:03 UTC`` (audit and signature views)."""
    moment = to_datetime(value)
    if moment is None:
        return "—"
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def fmt_relative(value: Any, now: datetime, lang: str) -> str:
    """``3 hours ago`` / ``3 小时前``; for the future, ``in 3 hours``."""
    moment = to_datetime(value)
    if moment is None:
        return t("staff.time.never", lang)
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return t("staff.time.just_now", lang)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return t(f"staff.time.{'in' if future else 'ago'}.{unit}", lang, n=n)
    return t("staff.time.just_now", lang)  # pragma: no cover - the loop always returns


def hours_since(value: Any, now: datetime) -> float | None:
    moment = to_datetime(value)
    return None if moment is None else (now - moment).total_seconds() / 3600


def study_day_label(day: int | None, lang: str) -> str:
    """``Day 6`` / ``第 6 天``; the day before day 1 is ``Day −1`` (there is no day 0)."""
    if day is None:
        return "—"
    shown = str(day) if day > 0 else f"−{abs(day)}"
    return t("staff.study_day", lang, n=shown)


def check_code(sha256: str | None) -> str:
    """The first 8 hex digits of a hash, grouped in fours, as on the client's receipt."""
    if not sha256:
        return "—"
    return f"{sha256[:4].upper()} {sha256[4:8].upper()}"


def percent(done: int, expected: int) -> int | None:
    return None if expected <= 0 else round(100 * done / expected)
