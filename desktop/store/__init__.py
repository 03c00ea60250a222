"""The client's local store: plain Python over SQLite (sqlite-utils), no Qt.

``Store(data_dir)`` opens (creating) the database and exposes one part per aggregate:
``settings`` (pairing, cursor, clock offset…), ``drafts``, ``outbox`` (entries and their states),
``sync_log``, ``reminders`` and ``changes``. All parts share one connection and one lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

from desktop.store.changes import Changes
from desktop.store.db import DB_FILENAME, open_db
from desktop.store.drafts import Draft, Drafts
from desktop.store.migrations import migrate
from desktop.store.outbox import WAITING, Entry, Outbox, Outcome, Waiting
from desktop.store.reminders import ReminderState
from desktop.store.settings import DEFAULT_LIMITS, Pairing, Settings
from desktop.store.synclog import SyncLog

__all__ = ["Store", "Draft", "Entry", "Outcome", "Pairing", "WAITING", "Waiting", "DEFAULT_LIMITS",
           "DB_FILENAME"]


class Store:
    def __init__(self, data_dir: Path | str, key: bytes | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.encrypted = key is not None
        self.db = open_db(self.data_dir, key)
        migrate(self.db)
        self.lock = threading.RLock()
        self.settings = Settings(self.db, self.lock)
        self.drafts = Drafts(self.db, self.lock)
        self.outbox = Outbox(self.db, self.lock)
        self.sync_log = SyncLog(self.db, self.lock)
        self.reminders = ReminderState(self.db, self.lock)
        self.changes = Changes(self.db, self.lock)

    @property
    def path(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def device_id(self) -> str | None:
        p = self.settings.pairing()
        return p.device_id if p else None

    def close(self) -> None:
        with self.lock:
            self.db.close()
