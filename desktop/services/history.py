"""Past entries for the History screen, and the ALSFRS-R series for its chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.scoring import AlsfrsScore, score_alsfrs_r

from desktop.store import Entry, Store


def event_date(entry: Entry) -> date:
    env = entry.envelope
    p = env.get("payload", {})
    if entry.type == "nasal_symptoms":
        return date.fromisoformat(p["date"])
    if entry.type == "dose_confirmation" and not p.get("given"):
        return date.fromisoformat(p["planned_date"])
    return datetime.fromisoformat(env["event_time"]).date()


@dataclass
class Week:
    start: date          # Monday
    entries: list[Entry]


def history(store: Store) -> tuple[list[Entry], list[Week]]:
    """(entries needing the site's attention, the rest grouped by week, newest first)."""
    entries = store.outbox.entries(store.device_id or "")
    attention = [e for e in entries if e.state == "needs_attention"]
    rest = sorted((e for e in entries if e.state != "needs_attention"),
                  key=lambda e: (event_date(e), e.envelope["entered_at"]), reverse=True)
    weeks: list[Week] = []
    for e in rest:
        d = event_date(e)
        start = d - timedelta(days=d.weekday())
        if not weeks or weeks[-1].start != start:
            weeks.append(Week(start, []))
        weeks[-1].entries.append(e)
    return attention, weeks


def alsfrs_series(store: Store) -> list[tuple[date, AlsfrsScore]]:
    """ALSFRS-R totals and domains over time (for the chart shown only when the protocol allows)."""
    out = []
    for e in store.outbox.entries(store.device_id or ""):
        if e.type == "alsfrs_r" and e.state != "needs_attention":
            out.append((event_date(e), score_alsfrs_r(e.envelope["payload"]["items"])))
    return sorted(out, key=lambda x: x[0])
