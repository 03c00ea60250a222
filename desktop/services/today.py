"""What the Today screen lists, computed offline from the stored protocol projection and the
entries made on this computer (``shared.schedule``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.protocol import Protocol, protocol_from_projection
from shared.schedule import Entry as ScheduleEntry, Timeline, compute_schedule, due_today

from desktop.store import Draft, Store

COUNTED_STATES = ("saved", "sent", "received")   # an entry the site must look at is not "done"
KIND_ORDER = {"dose_confirmation": 0, "nasal_symptoms": 1, "alsfrs_r": 2}


@dataclass
class Card:
    key: str                          # due item key ("dose:2") or "draft:<id>"
    kind: str                         # record type
    status: str                       # open | late | done | draft
    due_date: date | None = None
    dose_number: int | None = None
    draft: Draft | None = None
    record_ids: list[str] = field(default_factory=list)
    late_since: date | None = None

    def context(self) -> dict[str, Any]:
        """What a form started from this card needs to know."""
        ctx: dict[str, Any] = {"due_key": self.key}
        if self.kind == "dose_confirmation" and self.dose_number:
            ctx.update(dose_number=self.dose_number,
                       planned_date=self.due_date.isoformat() if self.due_date else None)
        if self.kind == "nasal_symptoms" and self.due_date:
            ctx["date"] = self.due_date.isoformat()
        return ctx


@dataclass
class TodayView:
    today: date
    cards: list[Card]
    timeline_known: bool
    all_done: bool
    study_day: int | None = None


def protocol_of(store: Store) -> Protocol | None:
    p = store.settings.pairing()
    return protocol_from_projection(p.protocol) if p and p.protocol else None


def _schedule_entries(store: Store) -> list[ScheduleEntry]:
    device = store.device_id or ""
    return [ScheduleEntry.from_envelope(e.envelope) for e in store.outbox.entries(device, COUNTED_STATES)]


def timeline_of(store: Store, protocol: Protocol | None = None) -> Timeline | None:
    """The participant's anchor dates, from the server (pairing or changes), with dose 1 as given
    here if this computer confirmed it."""
    raw = dict(store.settings.get("timeline") or {})
    if not raw and protocol is not None:
        raw = dict(protocol.data.get("participant") or protocol.data.get("schedule") or {})
    first = raw.get("first_dose_date")
    if not first:
        return None
    tz = raw.get("tz") or raw.get("timezone") or (protocol.timezone if protocol else "Asia/Shanghai")
    dose1 = raw.get("dose1_administered_at")
    dose1_at = datetime.fromisoformat(dose1) if isinstance(dose1, str) else None
    if dose1_at is None:
        for e in _schedule_entries(store):
            if e.type == "dose_confirmation" and e.dose_number == 1 and e.given:
                dose1_at = e.event_time
                break
    confirmed = raw.get("day1_confirmed")
    return Timeline(date.fromisoformat(first), tz, dose1_at,
                    date.fromisoformat(confirmed) if isinstance(confirmed, str) else None)


def is_dosing_day(store: Store, day: date) -> bool:
    """A planned dosing day, or a day with a dose confirmed as given on this computer."""
    protocol = protocol_of(store)
    timeline = timeline_of(store, protocol)
    if protocol is not None and timeline is not None:
        if any(timeline.date_of(d) == day for d in protocol.dose_days):
            return True
    for e in _schedule_entries(store):
        if e.type == "dose_confirmation" and e.given and timeline is not None:
            if timeline.local_date(e.event_time) == day:
                return True
        elif e.type == "dose_confirmation" and e.given and e.event_time.date() == day:
            return True
    return False


def planned_doses(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Every planned dose with its date and status, for choosing a dose to confirm."""
    protocol = protocol_of(store)
    timeline = timeline_of(store, protocol)
    if protocol is None or timeline is None:
        count = protocol.dose_count if protocol else 0
        return [{"dose_number": n, "planned_date": None, "status": "unknown"} for n in range(1, count + 1)]
    items = compute_schedule(protocol, timeline, now, _schedule_entries(store))
    return [{"dose_number": it.dose_number, "planned_date": it.due_date, "status": it.status}
            for it in items if it.kind == "dose_confirmation"]


def today_view(store: Store, now: datetime) -> TodayView:
    protocol = protocol_of(store)
    timeline = timeline_of(store, protocol)
    today = timeline.local_date(now) if timeline else now.date()
    drafts = store.drafts.all(store.device_id or "")
    by_due = {d.context.get("due_key"): d for d in drafts if d.context.get("due_key")}
    cards: list[Card] = []
    if protocol is not None and timeline is not None:
        for it in due_today(protocol, timeline, now, _schedule_entries(store)):
            card = Card(it.key, it.kind, "done" if it.status == "done" else it.status, it.due_date,
                        it.dose_number, by_due.pop(it.key, None), list(it.record_ids),
                        it.closes if it.status == "late" else None)
            cards.append(card)
    # unfinished drafts first (ux Part C), then by urgency: dose, diary, ALSFRS-R, late items
    loose = [Card(f"draft:{d.id}", d.type, "draft", None, d.context.get("dose_number"), d) for d in drafts
             if d.context.get("due_key") not in {c.key for c in cards}]
    cards.sort(key=lambda c: (c.draft is None, c.status == "done", c.status == "late",
                              KIND_ORDER.get(c.kind, 9), c.due_date or today))
    cards = loose + cards
    all_done = bool(cards) and all(c.status == "done" for c in cards)
    day = timeline.study_day(today) if timeline else None
    return TodayView(today, cards, timeline is not None, all_done, day)
