"""The study protocol as data (``shared/protocols/*.toml``).

:class:`Protocol` reads the file; :meth:`Protocol.participant_projection` is the participant-safe
view a device receives (contract §2): schedule, windows, thresholds, neutral product wording and the
site phone, never a product name, concentration, part, cohort or arm.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

PROTOCOL_DIR = Path(__file__).parent / "protocols"
DEFAULT_PROTOCOL = "nct06598202"


@dataclass(frozen=True)
class WindowRule:
    """When an entry due on a day may be made: on time from ``day - before`` to ``day + after``,
    accepted and labelled late for ``late_days`` after that."""

    before: int = 0
    after: int = 0
    late_days: int = 0


@dataclass(frozen=True)
class TimeRange:
    """Dates as written from ``earliest`` to ``latest`` inclusive, UTC offsets within the bounds."""

    earliest: date
    latest: date
    min_offset_minutes: int
    max_offset_minutes: int

    @property
    def span_seconds(self) -> int:
        return int((self.latest - self.earliest).total_seconds()) + 86400


@dataclass(frozen=True)
class Protocol:
    data: dict[str, Any]
    source: str = ""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # --- identity ---------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def timezone(self) -> str:
        return self.data.get("timezone", "UTC")

    @property
    def show_scores_to_participant(self) -> bool:
        return bool(self.data.get("show_scores_to_participant", False))

    # --- dosing -----------------------------------------------------------------------------------
    @property
    def dose_days(self) -> list[int]:
        return list(self.data["dosing"]["days"])

    @property
    def dose_count(self) -> int:
        return len(self.dose_days)

    @property
    def dosing_location(self) -> str:
        return self.data["dosing"].get("location", "home")

    @property
    def dose_window(self) -> WindowRule:
        d = self.data["dosing"]
        return WindowRule(d.get("window_days_before", 0), d.get("window_days_after", 0), d.get("late_entry_days", 0))

    @property
    def dlt_window_days(self) -> int:
        return int(self.data["dlt"]["window_days"])

    # --- diary ------------------------------------------------------------------------------------
    @property
    def nasal(self) -> dict[str, Any]:
        return self.data["diary"]["nasal_symptoms"]

    @property
    def nasal_window(self) -> WindowRule:
        n = self.nasal
        return WindowRule(0, n.get("window_days_after", 0), n.get("late_entry_days", 0))

    @property
    def alsfrs(self) -> dict[str, Any]:
        return self.data["diary"]["alsfrs_r"]

    @property
    def alsfrs_window(self) -> WindowRule:
        a = self.alsfrs
        return WindowRule(a.get("window_days_before", 0), a.get("window_days_after", 0), a.get("late_entry_days", 0))

    def alsfrs_days(self) -> list[int]:
        """Study days on which a post-baseline ALSFRS-R self-report is due."""
        a = self.alsfrs
        days = list(a.get("weekly_days", []))
        start, last = a.get("every_28_days_from"), a.get("last_day", 0)
        if start:
            days.extend(range(start, last + 1, 28))
        return sorted(set(days))

    # --- flags, site ------------------------------------------------------------------------------
    @property
    def flags(self) -> dict[str, Any]:
        return dict(self.data.get("flags", {}))

    def threshold(self, name: str) -> Any:
        return self.data["flags"][name]

    @property
    def urgent_rules(self) -> dict[str, bool]:
        """``[flags.urgent]``: one key per flag rule id, true when the rule is urgent (issue 10)."""
        return {k: bool(v) for k, v in (self.data.get("flags", {}).get("urgent") or {}).items()}

    def is_urgent(self, rule: str) -> bool:
        return self.urgent_rules.get(rule, False)

    @property
    def enrolment(self) -> dict[str, Any]:
        """``[enrolment]``: onset-to-first-dose window in months (registry inclusion criterion)."""
        return dict(self.data.get("enrolment", {}))

    @property
    def site(self) -> dict[str, Any]:
        return dict(self.data.get("site", {}))

    @property
    def record_time_range(self) -> "TimeRange":
        """The valid range of every date and date-time in a record (``[record_times]``)."""
        r = self.data.get("record_times")
        return _time_range(tuple(sorted(r.items()))) if r else default_time_range()

    @property
    def assumptions(self) -> list[str]:
        return list(self.data.get("assumptions", {}).get("list", []))

    def participant_projection(self) -> dict[str, Any]:
        """What a device may see (contract §2). Built from an allow-list, never by deleting keys."""
        d = self.data
        return {
            "id": self.id,
            "version": self.version,
            "timezone": self.timezone,
            "show_scores_to_participant": self.show_scores_to_participant,
            "product": {"wording": dict(d["product"]["wording"]),
                        "volume_ml_per_nostril": d["product"]["volume_ml_per_nostril"]},
            "dosing": {k: d["dosing"][k] for k in
                       ("location", "days", "window_days_before", "window_days_after", "late_entry_days")
                       if k in d["dosing"]},
            "dlt": {"window_days": self.dlt_window_days},
            "diary": {"nasal_symptoms": dict(self.nasal), "alsfrs_r": dict(self.alsfrs)},
            "site": {"name": dict(self.site.get("name", {})), "phone": self.site.get("phone", ""),
                     "emergency": self.site.get("emergency", "120")},
            "flags": self.flags,
        }


@lru_cache(maxsize=8)
def _time_range(items: tuple) -> TimeRange:
    r = dict(items)
    return TimeRange(date.fromisoformat(r["earliest"]), date.fromisoformat(r["latest"]),
                     int(r["min_utc_offset_minutes"]), int(r["max_utc_offset_minutes"]))


@lru_cache(maxsize=1)
def default_time_range() -> TimeRange:
    """The record time range of the default protocol file: what validation uses without a protocol
    (a device validates with the file it ships, the server with the same file)."""
    return load_protocol(DEFAULT_PROTOCOL).record_time_range


def load_protocol(name_or_path: str | Path = DEFAULT_PROTOCOL) -> Protocol:
    """Load a protocol by file path or by name in ``shared/protocols``."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROTOCOL_DIR / f"{str(name_or_path).lower()}.toml"
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    check_urgent(data, str(path))
    return Protocol(data, source=str(path))


#: flag rules that are not records' flags but schedule facts (``server.store.reviews``)
SCHEDULE_FLAG_RULES = ("dose_not_confirmed", "day1_to_confirm")


def check_urgent(data: dict[str, Any], source: str = "protocol") -> None:
    """Refuse a ``[flags.urgent]`` table naming a rule that does not exist or marked with a non-boolean.

    A typo would silence an alert: ``respiratroy_critical = true`` leaves the real rule un-urgent.
    """
    from shared.flags import RULES

    urgent = (data.get("flags", {}) or {}).get("urgent") or {}
    if not isinstance(urgent, dict):
        raise ValueError(f"{source}: [flags.urgent] must be a table of rule id = true/false")
    known = {*RULES, *SCHEDULE_FLAG_RULES}
    unknown = sorted(set(urgent) - known)
    if unknown:
        raise ValueError(f"{source}: [flags.urgent] names unknown flag rules {unknown}; known: {sorted(known)}")
    not_bool = sorted(k for k, v in urgent.items() if not isinstance(v, bool))
    if not_bool:
        raise ValueError(f"{source}: [flags.urgent] values must be true or false: {not_bool}")


def protocol_from_projection(projection: dict[str, Any]) -> Protocol:
    """Rebuild a :class:`Protocol` on a device from the participant-safe projection it received."""
    return Protocol(dict(projection), source="projection")
