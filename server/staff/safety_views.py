"""Staff pages for the safety rules of issue 10: confirm study day 1 on the site page, and the
"inconsistent" marker on a record (a template global). Loaded by :mod:`server.staff`
(``OPTIONAL_MODULES``); the participant page shows these through small includes
(``staff/safety/_dlt_line.html``, ``staff/safety/_day1_action.html``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, redirect, request, url_for

from server.auth import staff_required
from server.db import query
from server.staff import bp, participant_or_403, protocol, web
from server.store.audit import Actor
from shared.consistency import consistency_issues, given_dose_dates
from shared.errors import EproError


def _dose_dates(participant_id: int):
    cache = g.setdefault("safety_dose_dates", {})
    if participant_id not in cache:
        rows = query(web.get_db(), """
            SELECT r.envelope, (SELECT v.payload FROM record_versions v WHERE v.record_id = r.id
                                ORDER BY v.version DESC LIMIT 1) AS payload
            FROM records r WHERE r.participant_id = ? AND r.type = 'dose_confirmation'""", [participant_id])
        cache[participant_id] = given_dose_dates(
            [{**json.loads(r["envelope"]), "payload": json.loads(r["payload"])} for r in rows])
    return cache[participant_id]


def record_inconsistency(rec: dict[str, Any]) -> list[str]:
    """The ``inconsistent_*`` codes the record's *current* version breaks (a correction clears them)."""
    current = rec.get("current") or rec.get("envelope") or {}
    if current.get("type") != "nasal_symptoms" or rec.get("participant_id") is None:
        return []
    return consistency_issues(current, protocol(), _dose_dates(rec["participant_id"]), _tz(rec["participant_id"]))


def _tz(participant_id: int) -> str | None:
    cache = g.setdefault("safety_tz", {})
    if participant_id not in cache:
        rows = query(web.get_db(), "SELECT tz FROM participants WHERE id = ?", [participant_id])
        cache[participant_id] = rows[0]["tz"] if rows else None
    return cache[participant_id]


@bp.get("/participants/<subject>/day1")
@staff_required("enroll")
def day1_form(subject: str, values: dict[str, Any] | None = None, errors: dict | None = None):
    from server.staff.detail import Names
    from server.store.day1 import latest_confirmation
    from server.store.participants import dose1_administered_at

    p = participant_or_403(subject, "enroll")
    db = web.get_db()
    dose1 = dose1_administered_at(db, p["id"])
    latest = latest_confirmation(db, p["id"])
    if values is None:
        from zoneinfo import ZoneInfo
        values = {"day1": (dose1.astimezone(ZoneInfo(p["tz"])).date().isoformat() if dose1
                           else p["first_dose_date"]), "reason": ""}
    return web.render("staff/safety/day1.html", p=p, dose1=dose1, latest=latest, values=values,
                      errors=errors or {}, by=Names(db, web.lang())(latest["confirmed_by"])["text"] if latest else "",
                      status=400 if errors else 200)


@bp.post("/participants/<subject>/day1")
@staff_required("enroll")
def day1_submit(subject: str):
    from server.staff.site_work import form_errors
    from server.store.day1 import confirm_day1

    participant_or_403(subject, "enroll")
    web.check_csrf()
    values = {k: request.form.get(k, "").strip() for k in ("day1", "reason")}
    try:
        row = confirm_day1(web.get_db(), subject, values["day1"], reason=values["reason"],
                           actor=Actor.staff(web.signed_in()["id"]))
    except EproError as err:
        if err.status != 400:
            raise
        return day1_form(subject, values, form_errors(err))
    web.notify("safety_rules.day1.done", subject=subject, date=row["day1"])
    return redirect(url_for("staff.participant", subject=subject) + "#flags", 303)


def init_app(app) -> None:
    app.add_template_global(record_inconsistency, "record_inconsistency")
