"""Valid envelopes for tests, built the way a client builds them (contract §1)."""

from __future__ import annotations

import copy
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from shared.instruments import load_instrument
from shared.vocab import ALSFRS_ITEM_KEYS_5A, ALSFRS_ITEM_KEYS_5B, NASAL_SYMPTOMS

ENTERED = "2026-03-10T09:30:00+08:00"


def _base(rtype: str, **over: Any) -> dict[str, Any]:
    env = {
        "id": str(uuid.uuid4()),
        "type": rtype,
        "schema_version": 1,
        "instrument_version": load_instrument(rtype).version_string(over.pop("lang", "en")),
        "participant": "001-001",
        "respondent": "participant",
        "event_time": ENTERED,
        "entered_at": ENTERED,
        "clock_offset_s": 0.0,
        "device_seq": 1,
    }
    env.update(over)
    return env


def alsfrs(score: int | dict[str, int] = 4, gastrostomy: bool = False, **over: Any) -> dict[str, Any]:
    keys = ALSFRS_ITEM_KEYS_5B if gastrostomy else ALSFRS_ITEM_KEYS_5A
    items = dict(score) if isinstance(score, dict) else {k: score for k in keys}
    env = _base("alsfrs_r", **over)
    env["event_time"] = env["entered_at"]
    env["payload"] = {"gastrostomy": gastrostomy, "items": items}
    return env


def nasal(day: str = "2026-03-10", grades: dict[str, int | None] | None = None, **over: Any) -> dict[str, Any]:
    env = _base("nasal_symptoms", **over)
    offset = env["entered_at"][-6:]
    env["event_time"] = f"{day}T00:00:00{offset}"
    symptoms: dict[str, int | None] = {name: 0 for name in NASAL_SYMPTOMS}
    symptoms.update(grades or {})
    env["payload"] = {"date": day, "symptoms": symptoms, "epistaxis_needed_help": False,
                      "sought_medical_care": False, "notes": ""}
    return env


def dose(n: int = 1, planned: str = "2026-03-10", given: bool = True,
         administered_at: str | None = "2026-03-10T09:00:00+08:00", **over: Any) -> dict[str, Any]:
    env = _base("dose_confirmation", respondent="caregiver", **over)
    side = ({"given": True, "volume": "full", "retained": True} if given
            else {"given": False, "volume": None, "retained": None})
    payload = {
        "dose_number": n, "planned_date": planned, "given": given,
        "administered_at": administered_at if given else None,
        "administered_by": "caregiver",
        "nostrils": {"left": dict(side), "right": dict(side)},
        "loss": [], "missed_reason": None if given else "forgot",
        "kit_number": "K-0042",
    }
    env["payload"] = payload
    offset = env["entered_at"][-6:]
    env["event_time"] = payload["administered_at"] if given else f"{planned}T00:00:00{offset}"
    return env


def mutate(env: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy ``env`` and set a dotted path (``payload.items.5a``); ``...`` deletes the key."""
    out = copy.deepcopy(env)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out
