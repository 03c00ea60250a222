"""One row per sync run: when, what happened, what was sent and received."""

from __future__ import annotations

from typing import Any

from desktop.store.db import Part


class SyncLog(Part):
    def add(self, row: dict[str, Any]) -> None:
        with self.tx() as db:
            db["sync_log"].insert(row)
            # keep the log short: the last 500 runs
            db.execute("DELETE FROM sync_log WHERE id <= (SELECT MAX(id) - 500 FROM sync_log)")

    def last(self, n: int = 20) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM sync_log ORDER BY id DESC LIMIT ?", [n])
