"""Key/value settings and the pairing (who this device is, what it may know of the protocol)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from desktop.store.db import Part

DEFAULT_LIMITS = {"max_records": 500, "max_bytes": 2 * 1024 * 1024}

# Switch keys are stored as Qt key codes (plain ints, so the store needs no Qt)
KEY_SPACE, KEY_RETURN, KEY_ENTER = 0x20, 0x01000004, 0x01000005
SCAN_MODES = ("off", "one", "two")          # no scanning, one-switch auto-scan, two-switch step-scan
SCAN_INTERVAL_MS = (500, 5000, 1500)        # min, max, default
DWELL_MS = (500, 3000, 1500)                # min, max, default once dwell is switched on


def _clamp(value: Any, bounds: tuple[int, int, int]) -> int:
    lo, hi, default = bounds
    try:
        return max(lo, min(hi, int(value)))
    except (TypeError, ValueError):
        return default


@dataclass
class AccessPrefs:
    """Switch scanning, dwell selection and read-aloud (issue 14). Dwell is never on by default."""

    scan_mode: str = "off"
    scan_interval_ms: int = SCAN_INTERVAL_MS[2]
    select_keys: list[int] = field(default_factory=lambda: [KEY_SPACE, KEY_RETURN, KEY_ENTER])
    move_keys: list[int] = field(default_factory=lambda: [KEY_SPACE])     # two-switch: "next"
    step_select_keys: list[int] = field(default_factory=lambda: [KEY_RETURN, KEY_ENTER])
    dwell_ms: int = 0                       # 0 = off; else 500–3000
    read_aloud: bool = True                 # the "Read aloud" button on each question
    speak_highlight: bool = False           # speak each target as the scan reaches it

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "AccessPrefs":
        data = dict(data or {})
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        p = cls(**known)
        if p.scan_mode not in SCAN_MODES:
            p.scan_mode = "off"
        p.scan_interval_ms = _clamp(p.scan_interval_ms, SCAN_INTERVAL_MS)
        p.dwell_ms = 0 if not p.dwell_ms else _clamp(p.dwell_ms, DWELL_MS)
        for name in ("select_keys", "move_keys", "step_select_keys"):
            keys = [int(k) for k in getattr(p, name) or [] if isinstance(k, int)]
            setattr(p, name, keys or list(getattr(cls(), name)))
        if set(p.move_keys) & set(p.step_select_keys):   # two switches must differ
            p.move_keys, p.step_select_keys = cls().move_keys, cls().step_select_keys
        p.read_aloud, p.speak_highlight = bool(p.read_aloud), bool(p.speak_highlight)
        return p

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    # --- accessibility --------------------------------------------------------------------------
    def access(self) -> AccessPrefs:
        return AccessPrefs.from_dict(self.get("access"))

    def save_access(self, prefs: AccessPrefs) -> AccessPrefs:
        clean = AccessPrefs.from_dict(prefs.as_dict())
        self.set("access", clean.as_dict())
        return clean

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
