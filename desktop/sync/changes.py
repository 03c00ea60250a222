"""Apply what ``GET /sync/changes`` returns (``{"seq", "kind", "at", "data"}`` items, server order):
``protocol`` (the participant-safe projection), ``timeline`` (first dose date, zone, dose 1 given,
status), and staff decisions on this device's records (``correction``, ``flag_acknowledged``).

Every change is kept as received (table ``changes``); a kind the client does not know is kept too,
never an error.
"""

from __future__ import annotations

from typing import Any

from desktop.store import Store

TIMELINE_KEYS = ("first_dose_date", "tz", "dose1_administered_at", "study_day1", "day1_confirmed", "status",
                 "withdrawn_at")


def _kind(change: dict[str, Any]) -> str:
    return str(change.get("kind") or change.get("type") or "unknown")


def apply_change(store: Store, device_id: str, change: dict[str, Any], now: str) -> None:
    kind = _kind(change)
    data = change.get("data") if isinstance(change.get("data"), dict) else change
    if kind == "protocol":
        projection = data.get("protocol") if isinstance(data.get("protocol"), dict) else data
        if isinstance(projection.get("dosing"), dict):
            store.settings.set_protocol(projection)
    elif kind in ("timeline", "schedule"):
        timeline = {k: data.get(k) for k in TIMELINE_KEYS if k in data}
        if timeline.get("first_dose_date"):
            store.settings.set("timeline", timeline)
    record_id = data.get("record_id") if kind not in ("protocol", "timeline") else None
    store.changes.add(device_id, kind, record_id if isinstance(record_id, str) else None, change, now)
