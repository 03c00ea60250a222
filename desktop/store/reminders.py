"""When each reminder was last shown, so a reminder missed while closed is shown once at start."""

from __future__ import annotations

from desktop.store.db import Part


class ReminderState(Part):
    def last(self, name: str) -> tuple[str | None, str | None]:
        rows = self.rows("SELECT last_shown, last_key FROM reminders WHERE name = ?", [name])
        return (rows[0]["last_shown"], rows[0]["last_key"]) if rows else (None, None)

    def mark(self, name: str, shown_at: str, key: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO reminders (name, last_shown, last_key) VALUES (?, ?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET last_shown = excluded.last_shown, "
                       "last_key = excluded.last_key", [name, shown_at, key])
