"""Protocol visits, epochs and study identifiers for the exports, from the protocol file and the schedule.

- :func:`protocol_visits`: the pre-dose baseline and one visit per planned study day of any form
  (:func:`shared.schedule.planned_items`), named and numbered by the protocol file's ``[visits]``;
- :func:`record_visits`: which visit each of a participant's records fills, by the same matching the
  compliance figures use (:func:`shared.schedule.match_entries`); an entry that fills no planned item
  is UNSCHEDULED, numbered after the visit before it (``+ 0.01``);
- :func:`epoch`: SCREENING before dose 1 as given, TREATMENT to the protocol's ``treatment_last_day``,
  FOLLOW-UP after (CDISC CT EPOCH, C99079);
- :func:`study_ids`: STUDYID is the sponsor's protocol id; the registry (NCT) number is kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Iterable, Mapping

from server.exports.dataset import current_version, parse_time
from shared.protocol import DEFAULT_PROTOCOL, PROTOCOL_DIR, Protocol, load_protocol
from shared.schedule import Entry, Timeline, match_entries, planned_items


@dataclass(frozen=True)
class Visit:
    num: float
    name: str
    day: int | None          # planned study day (None: baseline / unscheduled)
    planned: bool = True

    @property
    def oid(self) -> str:
        if not self.planned:
            return "SE.UNSCHEDULED"
        return "SE.BASELINE" if self.day is None else f"SE.DAY{self.day:03d}" if self.day > 0 else f"SE.DAYM{-self.day:03d}"

    @property
    def num_text(self) -> str:
        return f"{self.num:g}"


@lru_cache(maxsize=8)
def protocol_for(protocol_id: str) -> Protocol:
    """The protocol file named by the dataset's protocol id, else the default one."""
    path = PROTOCOL_DIR / f"{protocol_id.lower()}.toml"
    return load_protocol(path if path.is_file() else DEFAULT_PROTOCOL)


def study_ids(study: Mapping[str, Any], protocol: Protocol) -> tuple[str, str]:
    """(STUDYID = sponsor protocol id, registry id): from the dataset, else from the protocol file."""
    section = protocol.data.get("study", {})
    sponsor = study.get("sponsor_protocol_id") or section.get("sponsor_protocol_id") or study["protocol_id"]
    registry = section.get("registry_id") or study["protocol_id"]
    return str(sponsor), str(registry)


def _settings(protocol: Protocol) -> dict[str, Any]:
    v = protocol.data.get("visits", {})
    return {"baseline_name": v.get("baseline_name", "BASELINE"), "baseline_num": v.get("baseline_num", 0),
            "day_name": v.get("day_name", "DAY {day}")}


_VISITS: dict[int, tuple[Protocol, tuple[Visit, ...]]] = {}


def protocol_visits(protocol: Protocol) -> tuple[Visit, ...]:
    """The protocol's visits in order: the baseline, then one per planned study day (cached per protocol)."""
    hit = _VISITS.get(id(protocol))
    if hit is not None and hit[0] is protocol:
        return hit[1]
    s = _settings(protocol)
    days = sorted({i.study_day for i in planned_items(protocol, Timeline(date(2000, 1, 1)))
                   if not i.key.endswith(":baseline")})
    out = [Visit(float(s["baseline_num"]), s["baseline_name"], None)]
    out += [Visit(float(d), s["day_name"].format(day=d), d) for d in days]
    _VISITS[id(protocol)] = (protocol, tuple(out))
    return tuple(out)


def _entry(rec: Mapping[str, Any]) -> Entry:
    p = current_version(rec)["payload"]
    d = p.get("date") or p.get("planned_date")
    return Entry(id=rec["id"], type=rec["type"], event_time=parse_time(rec["event_time"]),
                 entered_at=parse_time(rec["entered_at"]), dose_number=p.get("dose_number"),
                 date=date.fromisoformat(d) if isinstance(d, str) else None, given=p.get("given"))


def record_visits(protocol: Protocol, timeline: Timeline, records: Iterable[Mapping[str, Any]],
                  study_day_of: Mapping[str, int]) -> dict[str, Visit]:
    """``{record id: Visit}`` for one participant's records (``study_day_of``: each record's study day)."""
    records = list(records)
    items, _unmatched = match_entries(protocol, timeline, [_entry(r) for r in records])
    visits = protocol_visits(protocol)
    by_day = {v.day: v for v in visits if v.day is not None}
    baseline = visits[0]
    out: dict[str, Visit] = {}
    for it in items:
        visit = baseline if it.key.endswith(":baseline") else by_day[it.study_day]
        for rid in it.record_ids:
            out[rid] = visit
    for r in records:
        if r["id"] in out:
            continue
        day = study_day_of[r["id"]]
        before = [v for v in visits if v.day is not None and v.day <= day]
        prev = before[-1] if before else baseline
        num = round(prev.num + 0.01, 2)
        out[r["id"]] = Visit(num, f"UNSCHEDULED {num:g}", None, planned=False)
    return out


def epoch(protocol: Protocol, timeline: Timeline, moment: datetime | date) -> str:
    """SCREENING / TREATMENT / FOLLOW-UP of a moment (a date alone: by its study day)."""
    last = int(protocol.data.get("epochs", {}).get("treatment_last_day", protocol.dlt_window_days))
    dose1 = timeline.dose1_administered_at
    if isinstance(moment, datetime):
        if dose1 is None or moment < dose1:
            return "SCREENING"
        day = timeline.study_day(timeline.local_date(moment))
    else:
        day = timeline.study_day(moment)
        if dose1 is None or day < 1:
            return "SCREENING"
    return "TREATMENT" if day <= last else "FOLLOW-UP"


def local_dtc(value: str | datetime, timeline: Timeline) -> str:
    """ISO 8601 date-time in the participant's zone, with its UTC offset (``2026-03-02T09:00:00+08:00``)."""
    return parse_time(value).astimezone(timeline.zone).isoformat(timespec="seconds")


__all__ = ["Visit", "protocol_for", "study_ids", "protocol_visits", "record_visits", "epoch", "local_dtc"]
