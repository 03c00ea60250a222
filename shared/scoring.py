"""ALSFRS-R scoring, ΔFS and this trial's eligibility rule (clinical.md §1.2–1.3).

Scores are 4 = normal down to 0 = complete loss. Exactly twelve items are scored: item 5 is 5a without
a gastrostomy and 5b with one. Domains are bulbar 1–3, fine motor 4–6, gross motor 7–9, respiratory
10–12, each 0–12; the total is 0–48.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Mapping

from shared.vocab import ALSFRS_ITEM_KEYS_5A, ALSFRS_ITEM_KEYS_5B, DOMAINS, RESPIRATORY_ITEMS

#: One documented month length for ΔFS and slopes: 365.25 / 12 days.
MONTH_DAYS = 30.4375
#: A month-only onset ("2025-03") is taken as the 15th of that month (contract §4).
MONTH_ONLY_ONSET_DAY = 15


@dataclass(frozen=True)
class AlsfrsScore:
    total: int
    bulbar: int
    fine_motor: int
    gross_motor: int
    respiratory: int
    scale: str  # "5a" or "5b": which item 5 was scored

    def as_dict(self) -> dict[str, int | str]:
        return {"total": self.total, "bulbar": self.bulbar, "fine_motor": self.fine_motor,
                "gross_motor": self.gross_motor, "respiratory": self.respiratory, "scale": self.scale}


def _item5_key(items: Mapping[str, int]) -> str:
    has_a, has_b = "5a" in items, "5b" in items
    if has_a == has_b:
        raise ValueError("exactly one of items 5a and 5b must be scored")
    return "5a" if has_a else "5b"


def score_alsfrs_r(items: Mapping[str, int]) -> AlsfrsScore:
    """Score twelve ALSFRS-R items given as ``{"1": 4, …, "5a" or "5b": 3, …, "12": 4}``."""
    k5 = _item5_key(items)
    expected = ALSFRS_ITEM_KEYS_5A if k5 == "5a" else ALSFRS_ITEM_KEYS_5B
    if set(items) != set(expected):
        missing = sorted(set(expected) - set(items), key=_order)
        extra = sorted(set(items) - set(expected), key=_order)
        raise ValueError(f"items must be exactly the twelve scored items (missing {missing}, extra {extra})")
    for key, value in items.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4:
            raise ValueError(f"item {key} must be an integer from 0 to 4, got {value!r}")

    def item(n: str) -> int:
        return items[k5] if n == "5" else items[n]

    domains = {name: sum(item(n) for n in nums) for name, nums in DOMAINS.items()}
    return AlsfrsScore(total=sum(domains.values()), scale=k5, **domains)


def _order(key: str) -> tuple[int, str]:
    m = re.match(r"(\d+)(\w*)", key)
    return (int(m.group(1)), m.group(2)) if m else (99, key)


def parse_onset(onset: str) -> tuple[date, str]:
    """Parse ``YYYY-MM`` or ``YYYY-MM-DD``; returns the date used and its precision ("month"/"day")."""
    if re.fullmatch(r"\d{4}-\d{2}", onset):
        y, m = map(int, onset.split("-"))
        return date(y, m, MONTH_ONLY_ONSET_DAY), "month"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", onset):
        return date.fromisoformat(onset), "day"
    raise ValueError("onset must be YYYY-MM or YYYY-MM-DD")


def months_between(start: date, end: date) -> float:
    return (end - start).days / MONTH_DAYS


def delta_fs(total: int, onset: str | date, assessed_on: date) -> float:
    """ΔFS = (48 − total) / months from symptom onset to the assessment (contract §4)."""
    onset_date = parse_onset(onset)[0] if isinstance(onset, str) else onset
    months = months_between(onset_date, assessed_on)
    if months <= 0:
        raise ValueError("the assessment must be after symptom onset")
    return (48 - total) / months


def slope_per_month(total_a: int, date_a: date, total_b: int, date_b: date) -> float:
    """Change in total per month between two assessments (negative = decline)."""
    months = months_between(date_a, date_b)
    if months == 0:
        raise ValueError("the two assessments are on the same day")
    return (total_b - total_a) / months


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    failing_items: tuple[str, ...]


def trial_eligibility(items: Mapping[str, int]) -> Eligibility:
    """NCT06598202: ≥ 2 on every item and 4 on items 10–12 (dyspnea, orthopnea, respiratory insufficiency)."""
    score_alsfrs_r(items)  # validates shape and range
    failing = [k for k, v in items.items() if v < 2 or (k in RESPIRATORY_ITEMS and v != 4)]
    return Eligibility(not failing, tuple(sorted(failing, key=_order)))


def tnss(symptoms: Mapping[str, int | None]) -> int:
    """Total Nasal Symptom Score: rhinorrhea + congestion + itching + sneezing, 0–12."""
    from shared.vocab import TNSS_SYMPTOMS
    return sum(int(symptoms[name] or 0) for name in TNSS_SYMPTOMS)
