"""When each reminder was shown (one row per reminder occurrence, e.g. ``dose:2@2026-03-13``), so a
reminder missed while the program was closed is shown once at start and never twice."""

from __future__ import annotations

from desktop.store.db import Part


class ReminderState(Part):
    def shown_at(self, key: str) -> str | None:
        rows = self.rows("SELECT last_shown FROM reminders WHERE key = ?", [key])
        return rows[0]["last_shown"] if rows else None

    def mark(self, key: str, name: str, shown_at: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO reminders (key, name, last_shown) VALUES (?, ?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET last_shown = excluded.last_shown", [key, name, shown_at])
