"""Audit-trail review reports for risk-based review (AT-12, DC-03), one site at a time.

- :func:`changes_after_submission` — every correction (version ≥ 2): field, old, new, reason, who asked,
  who entered it, when, and the lag from the original entry;
- :func:`late_corrections` — those whose lag exceeds a threshold (default :data:`LATE_CORRECTION_DAYS`);
- :func:`late_entries` — entries labelled late on receipt, back-filled (entered on a later local day
  than the day they describe) or uploaded long after they were entered (more than the protocol's
  ``waiting_warning_hours``);
- :func:`clock_drift` — entries whose device clock disagreed with the server beyond the protocol's
  ``clock_drift_seconds`` (flagged on receipt, TM-02);
- :func:`outside_windows` — entries outside their schedule window, before the first dose, a second
  diary for a day, an unscheduled or repeated dose number (labels set on receipt);
- :func:`edits_by_user` — how many corrections each staff account made.

Rows are per record or per user; nothing is grouped by anything that could unblind (no kit, no cohort).
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from server.clock import parse_iso
from server.db import query
from shared.protocol import Protocol

LATE_CORRECTION_DAYS = 30
WINDOW_LABELS = ("outside_window", "before_first_dose", "second_entry_same_day", "unscheduled_dose_number",
                 "repeated_dose_number")


def _days(later: str, earlier: str) -> float:
    return round((parse_iso(later) - parse_iso(earlier)).total_seconds() / 86400, 2)


def _hours(later: str, earlier: str) -> float:
    return round((parse_iso(later) - parse_iso(earlier)).total_seconds() / 3600, 1)


def _bounds(sql: str, params: list[Any], column: str, start: str | None, end: str | None) -> str:
    if start:
        sql += f" AND {column} >= ?"
        params.append(start)
    if end:
        sql += f" AND {column} <= ?"
        params.append(end)
    return sql


def changes_after_submission(db: Database, site_id: int, *, start: str | None = None,
                             end: str | None = None) -> list[dict[str, Any]]:
    """One row per changed field of every correction at the site, newest correction first.

    ``start``/``end`` (inclusive, UTC ISO) bound the time of the correction."""
    params: list[Any] = [site_id]
    sql = _bounds("""
        SELECT v.record_id, v.version, v.created_at, v.created_by, v.requested_by, v.reason, v.changes,
               r.type, r.entered_at, r.received_at, p.subject
        FROM record_versions v JOIN records r ON r.id = v.record_id
        JOIN participants p ON p.id = r.participant_id
        WHERE v.version > 1 AND p.site_id = ?""", params, "v.created_at", start, end)
    out = []
    for row in query(db, sql + " ORDER BY v.created_at DESC, v.record_id, v.version", params):
        lag = _days(row["created_at"], row["entered_at"])
        for change in json.loads(row["changes"]):
            out.append({"subject": row["subject"], "record_id": row["record_id"], "type": row["type"],
                        "version": row["version"], "field": change["field"], "old": change["old"],
                        "new": change["new"], "reason": row["reason"], "requested_by": row["requested_by"],
                        "corrected_by": row["created_by"], "corrected_at": row["created_at"],
                        "entered_at": row["entered_at"], "received_at": row["received_at"],
                        "lag_days": lag})
    return out


def late_corrections(db: Database, site_id: int, *, threshold_days: float = LATE_CORRECTION_DAYS,
                     start: str | None = None, end: str | None = None) -> list[dict[str, Any]]:
    """Corrections made more than ``threshold_days`` after the original entry (DC-03), longest lag first."""
    rows = [r for r in changes_after_submission(db, site_id, start=start, end=end) if r["lag_days"] > threshold_days]
    return sorted(rows, key=lambda r: -r["lag_days"])


def _records(db: Database, site_id: int, start: str | None, end: str | None) -> list[dict[str, Any]]:
    params: list[Any] = [site_id]
    sql = _bounds("""
        SELECT r.id, r.type, r.event_time, r.entered_at, r.received_at, r.labels, r.drift_s, r.drift_flag,
               r.clock_offset_s, r.client_time, r.device_id, r.channel, p.subject, p.tz
        FROM records r JOIN participants p ON p.id = r.participant_id WHERE p.site_id = ?""",
                  params, "r.received_at", start, end)
    return [{**r, "labels": json.loads(r["labels"])} for r in query(db, sql + " ORDER BY r.server_seq", params)]


def _base(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("subject", "id", "type", "event_time", "entered_at", "received_at", "labels",
                              "device_id", "channel")}


def late_entries(db: Database, site_id: int, protocol: Protocol, *, start: str | None = None,
                 end: str | None = None) -> list[dict[str, Any]]:
    """Entries late, back-filled or uploaded late, with ``kinds`` saying which and the delays."""
    upload_hours = float(protocol.threshold("waiting_warning_hours"))
    out = []
    for r in _records(db, site_id, start, end):
        zone = ZoneInfo(r["tz"])
        event_day = parse_iso(r["event_time"]).astimezone(zone).date()
        entered_day = parse_iso(r["entered_at"]).astimezone(zone).date()
        backfill_days = (entered_day - event_day).days
        upload_delay = _hours(r["received_at"], r["entered_at"])
        kinds = []
        if "late" in r["labels"]:
            kinds.append("late")
        if backfill_days >= 1:
            kinds.append("backfilled")
        if upload_delay > upload_hours:
            kinds.append("late_upload")
        if kinds:
            out.append({**_base(r), "kinds": kinds, "backfill_days": backfill_days,
                        "upload_delay_hours": upload_delay})
    return out


def clock_drift(db: Database, site_id: int, *, start: str | None = None,
                end: str | None = None) -> list[dict[str, Any]]:
    """Entries whose device clock was off beyond the protocol threshold when received (TM-02)."""
    out = []
    for r in _records(db, site_id, start, end):
        if r["drift_flag"] or "clock_drift" in r["labels"]:
            ahead = round((parse_iso(r["entered_at"]) - parse_iso(r["received_at"])).total_seconds(), 1)
            out.append({**_base(r), "drift_s": r["drift_s"], "clock_offset_s": r["clock_offset_s"],
                        "client_time": r["client_time"], "entered_after_receipt_s": max(ahead, 0.0)})
    return out


def outside_windows(db: Database, site_id: int, *, start: str | None = None,
                    end: str | None = None) -> list[dict[str, Any]]:
    """Entries with a schedule label (outside the window, before dose 1, second diary, dose number)."""
    out = []
    for r in _records(db, site_id, start, end):
        hits = [label for label in r["labels"] if label in WINDOW_LABELS]
        if hits:
            out.append({**_base(r), "kinds": hits})
    return out


def edits_by_user(db: Database, site_id: int, *, start: str | None = None,
                  end: str | None = None) -> list[dict[str, Any]]:
    """Corrections per staff account at the site (most first): records touched, fields changed."""
    per: dict[str, dict[str, Any]] = {}
    for row in changes_after_submission(db, site_id, start=start, end=end):
        item = per.setdefault(row["corrected_by"], {"user": row["corrected_by"], "corrections": set(),
                                                    "fields": 0, "last_at": row["corrected_at"]})
        item["corrections"].add((row["record_id"], row["version"]))
        item["fields"] += 1
        item["last_at"] = max(item["last_at"], row["corrected_at"])
    out = [{**v, "corrections": len(v["corrections"])} for v in per.values()]
    return sorted(out, key=lambda v: (-v["corrections"], v["user"]))


def all_reports(db: Database, site_id: int, protocol: Protocol, *, late_after_days: float = LATE_CORRECTION_DAYS,
                start: str | None = None, end: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every report above for one site, keyed by report name."""
    return {
        "changes": changes_after_submission(db, site_id, start=start, end=end),
        "late_corrections": late_corrections(db, site_id, threshold_days=late_after_days, start=start, end=end),
        "late_entries": late_entries(db, site_id, protocol, start=start, end=end),
        "clock_drift": clock_drift(db, site_id, start=start, end=end),
        "outside_windows": outside_windows(db, site_id, start=start, end=end),
        "edits_by_user": edits_by_user(db, site_id, start=start, end=end),
    }

