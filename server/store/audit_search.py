"""The audit trail in human-readable form for a site (AT-08): filter and export as CSV.

Filters (all optional, combined with AND): participant (``subject``: rows about the participant, its
records, its devices, or naming it in ``detail.subject``), ``record_id``, ``user`` (``"staff:3"``,
``"device:D-…"``, ``"cli:name"``, ``"system:jobs"`` or a staff e-mail), ``action`` (exact, or a prefix
ending in ``.`` such as ``"record."``) and an inclusive date range of local dates in the site's zone.
Only rows stamped with the site's id are visible to the site's staff.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from server.clock import iso, parse_iso
from server.db import query, query_one
from shared.csv_safe import spreadsheet_csv
from shared.errors import EproError, FieldError

MAX_LIMIT = 1000


def _day_bounds(start: str | None, end: str | None, tz: str) -> tuple[str | None, str | None]:
    zone = ZoneInfo(tz)
    out: list[str | None] = []
    for name, value, last in (("start", start, False), ("end", end, True)):
        if not value:
            out.append(None)
            continue
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise EproError("validation.invalid", 400, errors=[
                FieldError(name, "format.date", "Use YYYY-MM-DD.")]) from None
        moment = datetime.combine(day + timedelta(days=1) if last else day, time(0), tzinfo=zone)
        if last:
            moment -= timedelta(milliseconds=1)
        out.append(iso(moment))
    return out[0], out[1]


def resolve_user(db: Database, user: str | None) -> str | None:
    """``"staff:3"`` for a staff e-mail, else the actor string as given (None for empty)."""
    user = (user or "").strip()
    if not user:
        return None
    if "@" in user and ":" not in user:
        row = query_one(db, "SELECT id FROM staff WHERE email = ?", [user])
        return f"staff:{row['id']}" if row else "staff:unknown"
    return user


def search_audit(db: Database, site_id: int, *, subject: str | None = None, record_id: str | None = None,
                 user: str | None = None, action: str | None = None, start: str | None = None,
                 end: str | None = None, tz: str = "Asia/Shanghai", limit: int = 200,
                 offset: int = 0) -> dict[str, Any]:
    """``{"rows": [...], "total": n}`` newest first; each row's ``detail`` is decoded."""
    where = ["a.site_id = :site_id"]
    if subject:
        where.append("""(
            (a.entity = 'participant' AND a.entity_id = :subject)
            OR (a.entity = 'record' AND a.entity_id IN (SELECT r.id FROM records r JOIN participants p
                ON p.id = r.participant_id WHERE p.subject = :subject))
            OR (a.entity = 'device' AND a.entity_id IN (SELECT d.id FROM devices d JOIN participants p
                ON p.id = d.participant_id WHERE p.subject = :subject))
            OR json_extract(a.detail, '$.subject') = :subject)""")
    if record_id:
        where.append("""((a.entity = 'record' AND a.entity_id = :record_id)
            OR json_extract(a.detail, '$.record_id') = :record_id)""")
    actor = resolve_user(db, user)
    if actor:
        kind, _, ident = actor.partition(":")
        where.append("a.actor_kind = :actor_kind" + (" AND a.actor_id = :actor_id" if ident else ""))
    if action:
        where.append("a.action LIKE :action_like ESCAPE '\\'" if action.endswith(".") else "a.action = :action")
    lo, hi = _day_bounds(start, end, tz)
    if lo:
        where.append("a.at >= :lo")
    if hi:
        where.append("a.at <= :hi")
    named = {"subject": subject, "record_id": record_id, "actor_kind": actor.partition(":")[0] if actor else None,
             "actor_id": actor.partition(":")[2] if actor else None, "action": action,
             "action_like": (action or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",
             "lo": lo, "hi": hi, "site_id": site_id}
    clause = " AND ".join(where)
    limit = max(1, min(int(limit), MAX_LIMIT))
    total = query_one(db, f"SELECT COUNT(*) AS n FROM audit a WHERE {clause}", named)["n"]
    rows = query(db, f"SELECT a.* FROM audit a WHERE {clause} ORDER BY a.seq DESC LIMIT :limit OFFSET :offset",
                 {**named, "limit": limit, "offset": max(0, int(offset))})
    names = actor_names(db)
    out = []
    for r in rows:
        actor_str = f"{r['actor_kind']}:{r['actor_id']}" if r["actor_id"] else r["actor_kind"]
        out.append({**r, "detail": json.loads(r["detail"]), "actor": actor_str,
                    "actor_name": names.get(actor_str, ""),
                    "at_local": parse_iso(r["at"]).astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")})
    return {"rows": out, "total": total, "limit": limit, "offset": offset}


def actor_names(db: Database) -> dict[str, str]:
    """``{"staff:3": "inv@site", "device:D-…": "participant device of 001-002"}`` for display."""
    out = {f"staff:{r['id']}": r["email"] for r in query(db, "SELECT id, email FROM staff")}
    for r in query(db, "SELECT d.id, d.role, p.subject FROM devices d JOIN participants p ON p.id = d.participant_id"):
        out[f"device:{r['id']}"] = f"{r['role']} device of {r['subject']}"
    return out


def distinct_actions(db: Database, site_id: int) -> list[str]:
    return [r["action"] for r in query(db, "SELECT DISTINCT action FROM audit WHERE site_id = ? ORDER BY action",
                                       [site_id])]


CSV_COLUMNS = ("seq", "at", "at_local", "actor", "actor_name", "action", "entity", "entity_id", "detail",
               "app_version", "hash")


def audit_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text (UTF-8 BOM is the caller's; spreadsheets open it directly). Every cell is
    quoted and defused against formula injection (:func:`shared.csv_safe.spreadsheet_csv`)."""
    return spreadsheet_csv(CSV_COLUMNS, (
        [r["seq"], r["at"], r["at_local"], r["actor"], r["actor_name"], r["action"], r["entity"] or "",
         r["entity_id"] or "", json.dumps(r["detail"], ensure_ascii=False, sort_keys=True), r["app_version"],
         r["hash"]] for r in rows))
