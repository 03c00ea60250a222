"""Data clarification queries (issue 12; REDCap's Data Resolution Workflow): a question on one record,
optionally on one field of it, assigned to the record's site, with a thread of messages.

States and who moves them (the staff pages check the permissions, this module the rules)::

    raise  (monitor, coordinator)            → open
    answer (investigator, coordinator)  open → answered      may link a correction (a new version)
    reopen (monitor)                answered → open          "not resolved yet"
    close  (monitor)          open, answered → closed
    cancel (who raised it, or a monitor)     → cancelled

Every message is an append-only ``query_messages`` row with who, role and when; the query's ``state``
follows its latest message. Each action writes its audit row (``query.<action>``) in the same
transaction. A correction made while answering goes through :func:`server.store.corrections.
request_correction` in that same transaction, and the answer names the new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlite_utils import Database

from server.clock import iso, parse_iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from shared.errors import EproError, FieldError
from shared.protocol import Protocol

STATES = ("open", "answered", "closed", "cancelled")
ACTIVE = ("open", "answered")
TEXT_MAX = 2000
#: action → (states it may start from, state it leads to, roles that may take it)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, frozenset[str]]] = {
    "answer": (("open",), "answered", frozenset({"investigator", "coordinator"})),
    "reopen": (("answered",), "open", frozenset({"monitor"})),
    "close": (ACTIVE, "closed", frozenset({"monitor"})),
    "cancel": (ACTIVE, "cancelled", frozenset({"monitor", "coordinator"})),
}
RAISE_ROLES = frozenset({"monitor", "coordinator"})


def _text(text: str | None, *, required: bool) -> str:
    value = (text or "").strip()
    if required and not value:
        raise EproError("validation.invalid", 400, errors=[FieldError("text", "required", "Write the question or answer.")])
    if len(value) > TEXT_MAX:
        raise EproError("validation.invalid", 400, errors=[FieldError("text", "length", f"At most {TEXT_MAX} characters.")])
    return value


def _fields_of(db: Database, record_id: str) -> list[str]:
    from server.store.corrections import record_for_correction

    rec = record_for_correction(db, record_id)
    return [f["path"] for f in rec["fields"]] if rec else []


def raise_query(db: Database, participant: Mapping[str, Any], record_id: str, field: str | None, text: str, *,
                staff: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    now = now or utc_now()
    if staff["role"] not in RAISE_ROLES:
        raise EproError("auth.forbidden", 403, detail="query_raise")
    body = _text(text, required=True)
    field = (field or "").strip() or None
    rec = query_one(db, "SELECT id, participant_id FROM records WHERE id = ?", [record_id])
    if rec is None or rec["participant_id"] != participant["id"]:
        raise EproError("validation.invalid", 400, errors=[FieldError("record_id", "exists", "Choose an entry of this participant.")])
    if field is not None and field not in _fields_of(db, record_id):
        raise EproError("validation.invalid", 400, errors=[FieldError("field", "enum", "Choose a field of this entry.")])
    with write_tx(db):
        cur = db.execute("INSERT INTO queries (site_id, participant_id, record_id, field, state, raised_by, raised_at,"
                         " updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)",
                         [participant["site_id"], participant["id"], record_id, field, staff["id"], iso(now), iso(now)])
        qid = cur.lastrowid
        _message(db, qid, "raise", body, staff, now)
        write_audit(db, Actor.staff(staff["id"]), "query.raise", entity="query", entity_id=str(qid),
                    site_id=participant["site_id"],
                    detail={"subject": participant["subject"], "record_id": record_id, "field": field, "text": body,
                            "state": "open"}, now=now)
    return get_query(db, qid)


def _message(db: Database, qid: int, action: str, body: str, staff: Mapping[str, Any], now: datetime,
             correction_version: int | None = None) -> None:
    db.execute("INSERT INTO query_messages (query_id, action, body, staff_id, staff_role, at, correction_version)"
               " VALUES (?, ?, ?, ?, ?, ?, ?)", [qid, action, body, staff["id"], staff["role"], iso(now), correction_version])


def act(db: Database, query_id: int, action: str, text: str | None, *, staff: Mapping[str, Any],
        protocol: Protocol | None = None, correction: Mapping[str, Any] | None = None,
        now: datetime | None = None) -> dict[str, Any]:
    """Answer, reopen, close or cancel a query (see the module docstring).

    ``correction`` (answers only): ``{"updates": {field: value}, "reason": str}`` — made in the same
    transaction through the corrections store, ``requested_by`` naming the query.
    """
    from server.store.corrections import request_correction

    now = now or utc_now()
    if action not in TRANSITIONS:
        raise EproError("validation.invalid", 400, errors=[FieldError("action", "enum", "answer, reopen, close or cancel")])
    starts, target, roles = TRANSITIONS[action]
    body = _text(text, required=action in ("answer", "reopen"))
    with write_tx(db):
        q = query_one(db, "SELECT * FROM queries WHERE id = ?", [query_id])
        if q is None:
            raise EproError("not_found", 404, detail=f"query {query_id}")
        if staff["role"] not in roles or (action == "cancel" and staff["role"] != "monitor"
                                          and q["raised_by"] != staff["id"]):
            raise EproError("auth.forbidden", 403, detail=f"query_{action}")
        if q["state"] not in starts:
            raise EproError("query.state", 409, detail=f"a {q['state']} query cannot be {action}ed")
        version = None
        if correction is not None:
            if action != "answer" or protocol is None:
                raise EproError("validation.invalid", 400, errors=[FieldError("correction", "answer_only", "Only an answer corrects.")])
            result = request_correction(db, q["record_id"], correction["updates"], reason=correction["reason"],
                                        requested_by=f"query {query_id}", actor=Actor.staff(staff["id"]),
                                        protocol=protocol, site_id=q["site_id"], now=now)
            version = result["version"]
        db.execute("UPDATE queries SET state = ?, updated_at = ? WHERE id = ?", [target, iso(now), query_id])
        _message(db, query_id, action, body, staff, now, version)
        write_audit(db, Actor.staff(staff["id"]), f"query.{action}", entity="query", entity_id=str(query_id),
                    site_id=q["site_id"], detail={"record_id": q["record_id"], "field": q["field"], "from": q["state"],
                                                  "to": target, "text": body, "correction_version": version}, now=now)
    return get_query(db, query_id)


# --- reading ---------------------------------------------------------------------------------------------

_SELECT = ("SELECT q.*, p.subject, r.type AS record_type, r.event_time, s.email AS raised_by_email,"
           " s.name AS raised_by_name, (SELECT COUNT(*) FROM query_messages m WHERE m.query_id = q.id) AS messages"
           " FROM queries q JOIN participants p ON p.id = q.participant_id JOIN records r ON r.id = q.record_id"
           " JOIN staff s ON s.id = q.raised_by")


def _with_age(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    row["age_days"] = max(0, (now - parse_iso(row["raised_at"])).days)
    return row


def get_query(db: Database, query_id: int, *, now: datetime | None = None) -> dict[str, Any] | None:
    row = query_one(db, _SELECT + " WHERE q.id = ?", [query_id])
    if row is None:
        return None
    row["thread"] = query(db, "SELECT m.*, s.email AS staff_email, s.name AS staff_name FROM query_messages m"
                              " JOIN staff s ON s.id = m.staff_id WHERE m.query_id = ? ORDER BY m.id", [query_id])
    return _with_age(row, now or utc_now())


def queries_for_site(db: Database, site_id: int, *, state: str | None = None,
                     now: datetime | None = None) -> list[dict[str, Any]]:
    """The site's queries, active ones first, oldest first within a state."""
    now = now or utc_now()
    sql, params = _SELECT + " WHERE q.site_id = ?", [site_id]
    if state in STATES:
        sql, params = sql + " AND q.state = ?", [*params, state]
    sql += " ORDER BY q.state NOT IN ('open', 'answered'), q.state = 'answered', q.raised_at, q.id"
    return [_with_age(r, now) for r in query(db, sql, params)]


def queries_for_participant(db: Database, participant_id: int, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utc_now()
    rows = query(db, _SELECT + " WHERE q.participant_id = ? ORDER BY q.state NOT IN ('open', 'answered'),"
                               " q.raised_at DESC, q.id DESC", [participant_id])
    return [_with_age(get_query(db, r["id"], now=now) or r, now) for r in rows]


def active_counts(db: Database, site_id: int) -> dict[int, dict[str, int]]:
    """``{participant_id: {"open": n, "answered": n}}`` for the participants list."""
    out: dict[int, dict[str, int]] = {}
    for r in query(db, "SELECT participant_id, state, COUNT(*) AS n FROM queries WHERE site_id = ?"
                       " AND state IN ('open', 'answered') GROUP BY participant_id, state", [site_id]):
        out.setdefault(r["participant_id"], {"open": 0, "answered": 0})[r["state"]] = r["n"]
    return out


def queries_for_export(db: Database, site_id: int) -> list[dict[str, Any]]:
    """Every query of a site with its whole thread, oldest first (exports)."""
    return [get_query(db, r["id"]) for r in query(db, "SELECT id FROM queries WHERE site_id = ? ORDER BY id", [site_id])]
