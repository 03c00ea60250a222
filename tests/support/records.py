"""Valid record envelopes (contract §1) for server and end-to-end tests.

Thin wrappers over ``tests.shared.factories`` that add what a device stream needs: a participant,
``datetime`` times and a fresh ``device_seq`` per envelope (counting from 1 per :class:`SeqCounter`,
or globally by default).
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from typing import Any

from tests.shared import factories

CST = timezone(timedelta(hours=8))
DEFAULT_ENTERED = datetime(2025, 3, 1, 9, 30, tzinfo=CST)
_seq = itertools.count(1)


def make_alsfrs(participant: str = "S-001", *, entered_at: datetime = DEFAULT_ENTERED,
                score: int = 4, gastrostomy: bool = False, **over: Any) -> dict[str, Any]:
    over.setdefault("device_seq", next(_seq))
    return factories.alsfrs(score, gastrostomy, participant=participant,
                            entered_at=entered_at.isoformat(), **over)


def make_nasal(participant: str = "S-001", *, day: date | None = None,
               entered_at: datetime = DEFAULT_ENTERED, **over: Any) -> dict[str, Any]:
    over.setdefault("device_seq", next(_seq))
    return factories.nasal((day or entered_at.date()).isoformat(), participant=participant,
                           entered_at=entered_at.isoformat(), **over)


def make_dose(participant: str = "S-001", *, dose_number: int = 1, planned: date | None = None,
              entered_at: datetime = DEFAULT_ENTERED, given: bool = True, **over: Any) -> dict[str, Any]:
    over.setdefault("device_seq", next(_seq))
    administered = (entered_at - timedelta(minutes=10)).isoformat()
    return factories.dose(dose_number, (planned or entered_at.date()).isoformat(), given,
                          administered_at=administered, participant=participant,
                          entered_at=entered_at.isoformat(), **over)


def make_batch(participant: str, n: int, *, start: datetime = DEFAULT_ENTERED,
               first_seq: int = 1) -> list[dict[str, Any]]:
    """``n`` valid entries (nasal diaries and ALSFRS-R reports) with device_seq ``first_seq``…"""
    out = []
    for i in range(n):
        when = start + timedelta(hours=12 * i)
        make = make_nasal if i % 2 == 0 else make_alsfrs
        out.append(make(participant, entered_at=when, device_seq=first_seq + i))
    return out
