"""Apply what ``GET /sync/changes`` returns: protocol and schedule updates, staff decisions.

Every change is kept as received (table ``changes``); the ones the client understands also update
its settings. A change the client does not understand is kept, never an error.
"""

from __future__ import annotations

from typing import Any

from desktop.store import Store


def _kind(change: dict[str, Any]) -> str:
    return str(change.get("kind") or change.get("type") or "unknown")


def apply_change(store: Store, device_id: str, change: dict[str, Any], now: str) -> None:
    kind = _kind(change)
    data = change.get("data") if isinstance(change.get("data"), dict) else change
    record_id = change.get("record_id") or data.get("record_id") or data.get("id") if kind != "protocol" else None
    if kind == "protocol" and isinstance(data.get("protocol"), dict):
        store.settings.set_protocol(data["protocol"])
    elif kind in ("schedule", "participant", "timeline"):
        timeline = {k: data.get(k) for k in ("first_dose_date", "tz", "timezone", "dose1_administered_at",
                                               "status") if data.get(k) is not None}
        if timeline:
            store.settings.set("timeline", {**(store.settings.get("timeline") or {}), **timeline})
    store.changes.add(device_id, kind, record_id if isinstance(record_id, str) else None, change, now)
