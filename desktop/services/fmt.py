"""Dates, times and receipts in the person's language (ux rule 26): always 24-hour, never 11/12/2026.

zh: ``2026年11月25日 星期三 09:12``, short ``11月25日 周三``; en: ``Wednesday 25 November 2026, 09:12``,
short ``Wed 25 Nov``.
"""

from __future__ import annotations

from datetime import date, datetime

from shared.messages import normalize_language

from desktop.services.i18n import tr as t

_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")
_ZH_DAYS = "一二三四五六日"


def weekday(d: date, lang: str, short: bool = False) -> str:
    if normalize_language(lang) == "zh-CN":
        return ("周" if short else "星期") + _ZH_DAYS[d.weekday()]
    name = _EN_DAYS[d.weekday()]
    return name[:3] if short else name


def long_date(d: date, lang: str) -> str:
    if normalize_language(lang) == "zh-CN":
        return f"{d.year}年{d.month}月{d.day}日 {weekday(d, lang)}"
    return f"{weekday(d, lang)} {d.day} {_EN_MONTHS[d.month - 1]} {d.year}"


def short_date(d: date, lang: str) -> str:
    if normalize_language(lang) == "zh-CN":
        return f"{d.month}月{d.day}日 {weekday(d, lang, short=True)}"
    return f"{weekday(d, lang, short=True)} {d.day} {_EN_MONTHS[d.month - 1][:3]}"


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def long_datetime(moment: datetime, lang: str) -> str:
    sep = " " if normalize_language(lang) == "zh-CN" else ", "
    return f"{long_date(moment.date(), lang)}{sep}{hhmm(moment)}"


def when(moment: datetime, now: datetime, lang: str) -> str:
    """A moment relative to now for the status line: "Monday 09:12", or "Wed 25 Nov 09:12" if older
    than a week; "today"/"yesterday" only next to the time (ux rule 26)."""
    local, here = moment.astimezone(now.tzinfo), now
    days = (here.date() - local.date()).days
    if days == 0:
        return t("when.today", lang, time=hhmm(local))
    if days == 1:
        return t("when.yesterday", lang, time=hhmm(local))
    if 0 < days < 7:
        return f"{weekday(local.date(), lang)} {hhmm(local)}"
    return f"{short_date(local.date(), lang)} {hhmm(local)}"


def check_code(sha256: str) -> str:
    """The first 8 hex digits of a sha256, in two groups of four, upper case: ``3F9A 21C0``."""
    h = (sha256 or "")[:8].upper()
    return f"{h[:4]} {h[4:]}".strip()


def receipt_line(receipt: dict, now: datetime, lang: str) -> str:
    """"Received 2026-11-25 09:14 · No. 1234 · check code 3F9A 21C0" (ux rule 21)."""
    try:
        at = datetime.fromisoformat(str(receipt.get("received_at", "")).replace("Z", "+00:00"))
        stamp = at.astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        stamp = str(receipt.get("received_at", ""))
    return t("receipt.line", lang, when=stamp, seq=receipt.get("server_seq", "?"),
             code=check_code(str(receipt.get("sha256", ""))))
