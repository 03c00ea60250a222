"""The participants list (own site, sorted by urgency) and the record page; the participant page
and its sections are in :mod:`server.staff.participant_page`."""

from __future__ import annotations

from flask import request

from server.auth import enforce, staff_required
from server.clock import utc_now
from server.staff import bp, flag_states, participant_or_403, protocol, web
from server.staff.detail import record_panels
from server.staff.overview import FILTERS, SORTS, participants_page, summarize
from server.store.records import get_record
from shared.errors import EproError

#: rows a page of the participants list shows (sorted and counted over all of them)
LIST_PER_PAGE = 100

web.register_nav("staff.participants", "staff.nav.participants", "view", order=10)


@bp.get("/participants")
@staff_required("view")
def participants():
    staff = web.signed_in()
    now = utc_now()
    sort = request.args.get("sort", "risk")
    sort = sort if sort in SORTS else "risk"
    only = request.args.get("only", "")
    only = only if only in FILTERS else ""
    try:
        page = int(request.args.get("page") or 1)
    except ValueError:
        page = 1
    # a large study: sorted, counted and paged by SQLite, only the page's rows made here
    rows, counts, pager = participants_page(web.get_db(), protocol(), staff["site_id"], now, sort=sort,
                                            only=only, page=page, per_page=LIST_PER_PAGE)
    threshold = protocol().threshold("device_silent_hours")
    return web.render("staff/participants.html", rows=rows, counts=counts, sort=sort, only=only,
                      silent_hours=threshold, now=now, pager=pager,
                      pager_args={"sort": sort if sort != "risk" else None, "only": only or None})


@bp.get("/records/<record_id>")
@staff_required("view")
def record(record_id: str):
    """One record with its versions and audit trail (the page flags and reports link to)."""
    db = web.get_db()
    rec = get_record(db, record_id)
    if rec is None:
        raise EproError("record.not_found", 404)
    from server.store.participants import participant_by_id
    p = participant_by_id(db, rec["participant_id"])
    enforce("view", p["site_id"])
    summary = summarize(db, protocol(), p, utc_now(), states=flag_states(db, p["id"]))
    panel = record_panels(db, summary, web.lang(), only=record_id)[0]
    return web.render("staff/record.html", p=p, summary=summary, rec=panel)
