"""Valid record envelopes (contract §1) for tests: ``make_alsfrs``, ``make_nasal``, ``make_dose``.

Each returns a fresh envelope with a new uuid4 ``id``; keyword overrides replace envelope fields and
``payload=`` entries are merged into the payload. Times default to a fixed moment so that tests are
repeatable; pass ``entered_at=`` to move them.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from shared.instruments import load_instrument

CST = timezone(timedelta(hours=8))
DEFAULT_ENTERED = datetime(2025, 3, 1, 9, 30, tzinfo=CST)
_seq = itertools.count(1)


def _ts(moment: datetime) -> str:
    return moment.isoformat()


def _envelope(rtype: str, participant: str, payload: dict[str, Any], entered: datetime,
              event: datetime, overrides: dict[str, Any]) -> dict[str, Any]:
    payload_over = overrides.pop("payload", {})
    env = {
        "id": str(uuid.uuid4()),
        "type": rtype,
        "schema_version": 1,
        "instrument_version": load_instrument(rtype).version_string("zh-CN"),
        "participant": participant,
        "respondent": "participant",
        "event_time": _ts(event),
        "entered_at": _ts(entered),
        "clock_offset_s": None,
        "device_seq": next(_seq),
        "payload": {**payload, **payload_over},
    }
    env.update(overrides)
    return env


def make_alsfrs(participant: str = "S-001", *, entered_at: datetime = DEFAULT_ENTERED,
                gastrostomy: bool = False, score: int = 4, **overrides: Any) -> dict[str, Any]:
    keys = ("1", "2", "3", "4", "5b" if gastrostomy else "5a", "6", "7", "8", "9", "10", "11", "12")
    payload = {"gastrostomy": gastrostomy, "items": {k: score for k in keys}}
    return _envelope("alsfrs_r", participant, payload, entered_at, entered_at, overrides)


def make_nasal(participant: str = "S-001", *, day: date | None = None,
               entered_at: datetime = DEFAULT_ENTERED, **overrides: Any) -> dict[str, Any]:
    from shared.vocab import NASAL_SYMPTOMS

    day = day or entered_at.date()
    payload = {"date": day.isoformat(), "symptoms": {name: 0 for name in NASAL_SYMPTOMS},
               "epistaxis_needed_help": False, "sought_medical_care": False}
    event = datetime.combine(day, datetime.min.time(), tzinfo=entered_at.tzinfo)
    return _envelope("nasal_symptoms", participant, payload, entered_at, event, overrides)


def make_dose(participant: str = "S-001", *, dose_number: int = 1, planned: date | None = None,
              entered_at: datetime = DEFAULT_ENTERED, given: bool = True,
              **overrides: Any) -> dict[str, Any]:
    planned = planned or entered_at.date()
    administered = entered_at - timedelta(minutes=10)
    nostril = ({"given": True, "volume": "full", "retained": True} if given
               else {"given": False, "volume": None, "retained": None})
    payload = {"dose_number": dose_number, "planned_date": planned.isoformat(), "given": given,
               "administered_at": _ts(administered) if given else None,
               "administered_by": "participant", "nostrils": {"left": dict(nostril), "right": dict(nostril)},
               "loss": [], "missed_reason": None if given else "forgot", "kit_number": "K-0001"}
    event = administered if given else datetime.combine(planned, datetime.min.time(), tzinfo=entered_at.tzinfo)
    return _envelope("dose_confirmation", participant, payload, entered_at, event, overrides)


def make_batch(participant: str, n: int, *, start: datetime = DEFAULT_ENTERED) -> list[dict[str, Any]]:
    """``n`` valid entries (nasal diaries and ALSFRS-R reports over consecutive days)."""
    out = []
    for i in range(n):
        when = start + timedelta(days=i // 2, minutes=i)
        out.append(make_nasal(participant, entered_at=when) if i % 2 == 0 else make_alsfrs(participant, entered_at=when))
    return out
