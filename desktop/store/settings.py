"""Key/value settings and the pairing (who this device is, what it may know of the protocol)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from desktop.store.db import Part

DEFAULT_LIMITS = {"max_records": 500, "max_bytes": 2 * 1024 * 1024}


@dataclass
class Pairing:
    """What the pair response told this device (contract §2), plus where the token lives."""

    server_url: str
    device_id: str
    participant: str
    role: str                   # "participant" | "caregiver"
    originator: str
    device_name: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)   # participant-safe projection
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    paired_at: str = ""
    token_storage: str = "keyring"   # "keyring" | "file" (a visible warning is shown for "file")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Settings(Part):
    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            row = self.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       [key, json.dumps(value, ensure_ascii=False)])

    def update(self, values: dict[str, Any]) -> None:
        with self.tx():
            for key, value in values.items():
                self.set(key, value)

    def delete(self, *keys: str) -> None:
        with self.tx() as db:
            for key in keys:
                db.execute("DELETE FROM settings WHERE key = ?", [key])

    # --- pairing ----------------------------------------------------------------------------------
    def pairing(self) -> Pairing | None:
        data = self.get("pairing")
        return Pairing(**data) if data else None

    def save_pairing(self, pairing: Pairing) -> None:
        with self.tx():
            self.set("pairing", pairing.as_dict())
            self.delete("revoked", "cursor", "sync_failures", "next_sync_at", "timeline")

    def clear_pairing(self) -> None:
        self.delete("pairing", "revoked", "cursor", "sync_failures", "next_sync_at", "timeline",
                    "clock_offset_s", "last_server_time")

    def set_protocol(self, projection: dict[str, Any]) -> None:
        with self.tx():
            p = self.pairing()
            if p is not None:
                p.protocol = projection
                self.set("pairing", p.as_dict())
