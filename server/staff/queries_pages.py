"""Data clarification queries on the staff pages (issue 12): the site-wide list, a query's thread, and
the forms that raise, answer (optionally with a correction), reopen, close and cancel.

The participant page shows them through two includes and no view code of its own:
``staff/queries/_panel.html`` (the participant's queries, include it once on the participant page) and
``staff/queries/_record_queries.html`` (inside each record panel: the record's queries and "Raise a
query"). Both call the template globals registered here (``participant_queries(p)``,
``record_queries(rec_id)``), so the participant page's own view does not change. The participants list
uses ``site_query_counts()`` and ``site_unalerted()``.
"""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, url_for

from server.auth import staff_required
from server.clock import utc_now
from server.staff import bp, participant_or_403, protocol, web
from server.store import queries as store
from shared.errors import EproError, FieldError

web.register_nav("staff.queries", "queries.nav", "view", order=15)


def _field_label(path: str | None, rtype: str) -> str:
    if not path:
        return web._("queries.whole_record")
    try:
        from server.staff.detail import field_label

        return field_label(path if path.startswith("payload.") else f"payload.{path}", rtype, web.lang())
    except Exception:  # the participant page module is being reorganised; the path is still clear
        return path


def _query_or_404(subject: str, query_id: str, permission: str) -> tuple[dict[str, Any], dict[str, Any]]:
    p = participant_or_403(subject, permission)
    try:
        q = store.get_query(web.get_db(), int(query_id))
    except ValueError:
        q = None
    if q is None or q["participant_id"] != p["id"]:
        raise EproError("not_found", 404, detail=f"query {query_id}")
    return p, q


def _decorate(q: dict[str, Any]) -> dict[str, Any]:
    q["field_label"] = _field_label(q["field"], q["record_type"])
    q["record_label"] = web._(f"staff.type.{q['record_type']}")
    return q


# --- template globals (participant page, record panels, participants list) ------------------------------

def participant_queries(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [_decorate(q) for q in store.queries_for_participant(web.get_db(), p["id"])]


def record_queries(record_id: str) -> list[dict[str, Any]]:
    cache = g.setdefault("queries_by_record", {})
    if "_site" not in cache:
        staff = web.signed_in()
        rows = store.queries_for_site(web.get_db(), staff["site_id"]) if staff else []
        for q in rows:
            cache.setdefault(q["record_id"], []).append(_decorate(q))
        cache["_site"] = True
    return cache.get(record_id, [])


def site_query_counts() -> dict[int, dict[str, int]]:
    staff = web.signed_in()
    return store.active_counts(web.get_db(), staff["site_id"]) if staff else {}


def site_unalerted() -> dict[int, list[dict[str, Any]]]:
    from server.alerts import unalerted_flags

    staff = web.signed_in()
    return unalerted_flags(web.get_db(), staff["site_id"]) if staff else {}


def init_app(app) -> None:
    app.add_template_global(participant_queries, "participant_queries")
    app.add_template_global(record_queries, "record_queries")
    app.add_template_global(site_query_counts, "site_query_counts")
    app.add_template_global(site_unalerted, "site_unalerted")


# --- pages ------------------------------------------------------------------------------------------

@bp.get("/queries")
@staff_required("view")
def queries():
    staff = web.signed_in()
    state = request.args.get("state", "")
    rows = [_decorate(q) for q in store.queries_for_site(web.get_db(), staff["site_id"],
                                                         state=state if state in store.STATES else None)]
    counts = {s: 0 for s in store.STATES}
    for q in store.queries_for_site(web.get_db(), staff["site_id"]):
        counts[q["state"]] += 1
    return web.render("staff/queries/list.html", rows=rows, state=state, counts=counts, states=store.STATES)


@bp.get("/participants/<subject>/queries/<query_id>")
@staff_required("view")
def query_thread(subject: str, query_id: str):
    p, q = _query_or_404(subject, query_id, "view")
    from server.store.corrections import record_for_correction

    rec = record_for_correction(web.get_db(), q["record_id"])
    return web.render("staff/queries/thread.html", p=p, q=_decorate(q), rec=rec,
                      fields=[(f["path"], _field_label(f["path"], rec["type"])) for f in rec["fields"]])


@bp.get("/records/<record_id>/query")
@staff_required("query_raise")
def query_new(record_id: str):
    from server.store.corrections import record_for_correction
    from server.store.participants import participant_by_id

    rec = record_for_correction(web.get_db(), record_id)
    if rec is None:
        raise EproError("record.not_found", 404, detail=record_id)
    p = participant_by_id(web.get_db(), rec["participant_id"])
    participant_or_403(p["subject"], "query_raise")
    return web.render("staff/queries/new.html", p=p, rec=rec, record_label=web._(f"staff.type.{rec['type']}"),
                      fields=[(f["path"], _field_label(f["path"], rec["type"])) for f in rec["fields"]],
                      field=request.args.get("field", ""))


def _back(p, q=None):
    if q is None:
        return redirect(url_for("staff.participant", subject=p["subject"]) + "#queries", 303)
    return redirect(url_for("staff.query_thread", subject=p["subject"], query_id=q["id"]), 303)


def _failed(err: EproError, p, q=None):
    if err.status != 400:
        raise err
    detail = "; ".join(e.message for e in err.errors) or err.message(web.lang())
    web.notify("queries.error", "error", detail=detail)
    if q is None:
        return redirect(url_for("staff.query_new", record_id=request.form.get("record_id", "")), 303)
    return _back(p, q)


@bp.post("/participants/<subject>/queries")
@staff_required("query_raise")
def query_raise(subject: str):
    p = participant_or_403(subject, "query_raise")
    web.check_csrf()
    try:
        q = store.raise_query(web.get_db(), p, request.form.get("record_id", ""), request.form.get("field"),
                              request.form.get("text", ""), staff=web.signed_in(), now=utc_now())
    except EproError as err:
        return _failed(err, p)
    web.notify("queries.raised", n=q["id"], subject=subject)
    return _back(p, q)


def _act(subject: str, query_id: str, action: str, permission: str):
    p, q = _query_or_404(subject, query_id, permission)
    web.check_csrf()
    correction = None
    if action == "answer" and request.form.get("correction_value", "").strip() != "" and web.can("correct", p["site_id"]):
        from server.store.corrections import parse_value, record_for_correction

        rec = record_for_correction(web.get_db(), q["record_id"])
        field = request.form.get("correction_field") or q["field"] or ""
        kinds = {f["path"]: f["kind"] for f in rec["fields"]}
        try:
            if field not in kinds:
                raise EproError("validation.invalid", 400, errors=[
                    FieldError("correction_field", "enum", web._("queries.correction_field_needed"))])
            value = parse_value(kinds[field], request.form.get("correction_value", ""), "correction_value")
        except EproError as err:
            return _failed(err, p, q)
        correction = {"updates": {field: value}, "reason": request.form.get("correction_reason", "").strip()
                      or request.form.get("text", "").strip()}
    try:
        store.act(web.get_db(), q["id"], action, request.form.get("text", ""), staff=web.signed_in(),
                  protocol=protocol(), correction=correction, now=utc_now())
    except EproError as err:
        if err.status == 409:
            web.notify("queries.state_changed", "error")
            return _back(p, q)
        return _failed(err, p, q)
    web.notify(f"queries.done.{action}", n=q["id"])
    return _back(p, q)


@bp.post("/participants/<subject>/queries/<query_id>/answer")
@staff_required("query_answer")
def query_answer(subject: str, query_id: str):
    return _act(subject, query_id, "answer", "query_answer")


@bp.post("/participants/<subject>/queries/<query_id>/reopen")
@staff_required("query_close")
def query_reopen(subject: str, query_id: str):
    return _act(subject, query_id, "reopen", "query_close")


@bp.post("/participants/<subject>/queries/<query_id>/close")
@staff_required("query_close")
def query_close(subject: str, query_id: str):
    return _act(subject, query_id, "close", "query_close")


@bp.post("/participants/<subject>/queries/<query_id>/cancel")
@staff_required("query_raise")
def query_cancel(subject: str, query_id: str):
    return _act(subject, query_id, "cancel", "query_raise")
