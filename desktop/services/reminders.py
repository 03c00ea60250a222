"""Reminders for dosing days, the nasal diary and the ALSFRS-R, delivered through a Qt-free notifier.

:class:`Notifier` always raises an in-app banner (through whatever the UI registered) and adds a tray
message where a tray exists. :meth:`ReminderService.check` shows every reminder whose time has come
today and that was not shown yet, so one missed while the program was closed appears at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Callable

from desktop.clock import Clock, utc_iso
from desktop.services.status import sync_status
from desktop.services.today import today_view
from desktop.store import Store

DEFAULT_TIMES = {"dose": "09:00", "diary": "20:00", "alsfrs": "10:00"}
KIND_REMINDER = {"dose_confirmation": "dose", "nasal_symptoms": "diary", "alsfrs_r": "alsfrs"}


@dataclass(frozen=True)
class Reminder:
    name: str                   # dose | diary | alsfrs | unsent
    key: str                    # one reminder per key (e.g. "dose:2@2026-03-13")
    message_key: str            # catalogue key for the banner text
    params: dict = field(default_factory=dict, hash=False, compare=False)


class Notifier:
    """Fan a reminder out to the in-app banner (always) and the system tray (if any)."""

    def __init__(self) -> None:
        self.banner_handlers: list[Callable[[Reminder], None]] = []
        self.tray: Callable[[Reminder], None] | None = None
        self.delivered: list[Reminder] = []

    def notify(self, reminder: Reminder) -> None:
        self.delivered.append(reminder)
        for handler in list(self.banner_handlers):
            handler(reminder)
        if self.tray is not None:
            self.tray(reminder)


def reminder_times(store: Store) -> dict[str, time]:
    raw = {**DEFAULT_TIMES, **(store.settings.get("reminder_times") or {})}
    return {k: time.fromisoformat(v) for k, v in raw.items()}


class ReminderService:
    def __init__(self, store: Store, clock: Clock, notifier: Notifier) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier

    def due(self, now: datetime) -> list[Reminder]:
        """Reminders whose time has passed today, whose item is still open, not yet shown."""
        if self.store.settings.pairing() is None:
            return []
        times = reminder_times(self.store)
        view = today_view(self.store, now)
        out: list[Reminder] = []
        for card in view.cards:
            name = KIND_REMINDER.get(card.kind)
            if name is None or card.status != "open" or now.timetz().replace(tzinfo=None) < times[name]:
                continue
            key = f"{card.key}@{view.today.isoformat()}"
            params = {"n": card.dose_number} if card.dose_number else {}
            out.append(Reminder(name, key, f"reminder.{name}", params))
        status = sync_status(self.store, now)
        if status.overdue and not status.revoked:
            out.append(Reminder("unsent", f"unsent@{view.today.isoformat()}", "reminder.unsent",
                                {"n": status.waiting}))
        return [r for r in out if self.store.reminders.shown_at(r.key) is None]

    def check(self) -> list[Reminder]:
        """Show every due reminder once. Safe to call from any thread and at any time."""
        now = self.clock.now()
        shown = []
        for reminder in self.due(now):
            self.store.reminders.mark(reminder.key, reminder.name, utc_iso(now))
            self.notifier.notify(reminder)
            shown.append(reminder)
        return shown
