"""Review pages: acknowledge safety flags, correct an entry on request, sign off a period, review
reports, the audit trail, and exports. Loaded by :mod:`server.staff` (``OPTIONAL_MODULES``).

Each view is thin: permission and site checks, CSRF, one store call (which writes its own audit row),
then a redirect with a one-line notice. The participant page shows these through its slots
(``staff/review/_flag_actions.html``, ``_record_actions.html``, ``_schedule_flags.html``,
``_signoffs.html``, ``_signoff_fact.html``), which read :func:`review_info` (one evaluation of
the flags and sign-offs per participant and request).

Permissions (contract §4): acknowledge — ``acknowledge``; correct — ``correct``; sign — ``signoff``
(investigators); reports — ``view``; audit trail — ``audit``; exports — ``export``.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, g, redirect, request, url_for

from server.auth import enforce, staff_required
from server.clock import parse_iso, utc_now
from server.staff import bp, participant_or_403, protocol, register_flag_states, web
from server.store.audit import Actor, write_audit
from server.store.participants import participant_by_id, participants_for_site
from server.store.sites import site_by_id
from shared.ids import path_part
from shared.errors import EproError, FieldError
from shared.messages import has, t

web.register_nav("staff.review_reports", "review.nav.reports", "view", order=60)
web.register_nav("staff.audit_trail", "review.nav.audit", "audit", order=70)
web.register_nav("staff.exports", "review.nav.exports", "export", order=80)

OUTCOME_KEYS = {"not_ae": "review.outcome.not_ae", "ae_recorded": "review.outcome.ae_recorded",
                "participant_contacted": "review.outcome.participant_contacted"}
EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")


def _(key: str, **params: Any) -> str:
    return t(key, web.lang(), **params)


def _actor() -> Actor:
    return Actor.staff(web.signed_in()["id"])


def _names():
    from server.staff.detail import Names
    return Names(web.get_db(), web.lang())


def _errors(err: EproError, fields: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Field errors of a store error in the page language, keyed by form field (``_form`` otherwise)."""
    lang, fields = web.lang(), fields or {}
    out: dict[str, list[str]] = {}
    for e in err.errors:
        keys = (f"review.rule.{e.field}.{e.rule}", f"review.rule.{e.rule}", f"rule.{e.rule}")
        text = next((t(k, lang) for k in keys if has(k)), e.message)
        out.setdefault(fields.get(e.field, e.field), []).append(text)
    if not err.errors or not out:
        out["_form"] = [err.message(lang)]
    return out


# --- what the participant page slots read -----------------------------------------------------------

def review_signoffs(participant: dict[str, Any]) -> list[dict[str, Any]]:
    """One participant's sign-offs with their status, once per request."""
    from server.store.signoffs import signoffs_for_participant

    cache = g.setdefault("review_signoffs", {})
    if participant["id"] not in cache:
        cache[participant["id"]] = signoffs_for_participant(web.get_db(), participant["id"])
    return cache[participant["id"]]


def review_info(participant: dict[str, Any]) -> dict[str, Any]:
    """Flags with review states and never-confirmed doses of one participant, once per request."""
    from server.store.reviews import participant_flags

    cache = g.setdefault("review_info", {})
    pid = participant["id"]
    if pid not in cache:
        db = web.get_db()
        found = participant_flags(db, protocol(), participant_by_id(db, pid), now=utc_now())
        names = _names()
        by_key = {}
        for item in found["flags"]:
            review = item["review"]
            by_key[item["key"]] = {**item, "by": names(review["actor"])["text"] if review else None,
                                   "outcome_text": _outcome_text(review) if review else None}
        cache[pid] = {"flags": by_key,
                      "schedule_flags": [by_key[i["key"]] for i in found["flags"] if i["record_id"] is None],
                      "counts": found["counts"]}
    return cache[pid]


def _outcome_text(review: dict[str, Any]) -> str:
    if review["outcome"] == "ae_recorded":
        return _(OUTCOME_KEYS["ae_recorded"], number=review["ae_number"])
    return _(OUTCOME_KEYS[review["outcome"]])


def _flag_states(db, participant_id: int) -> dict[str, dict[str, Any]]:
    """For the staff pages' counts: flags acknowledged at their current version are no longer open."""
    info = review_info(participant_by_id(db, participant_id))
    return {key: {"label": _("review.flag.acknowledged", outcome=item["outcome_text"]),
                  "at": item["review"]["reviewed_at"], "by": item["by"]}
            for key, item in info["flags"].items() if item["state"] == "acknowledged"}


register_flag_states(_flag_states)


def _describe(item: dict[str, Any]) -> dict[str, Any]:
    from shared.flags import describe_flag
    if item["rule"] == "day1_to_confirm":
        from server.staff.fmt import fmt_local
        d = item["flag"].detail
        extra = [_("review.flag.day1_to_confirm.differs")] if d["differs_from_plan"] else []
        if d["confirmed_day1"]:
            extra.append(_("review.flag.day1_to_confirm.mismatch", confirmed=d["confirmed_day1"],
                           dose1_date=d["dose1_date"]))
        return {"title": _("review.flag.day1_to_confirm.title"), "extra": extra,
                "explanation": _("review.flag.day1_to_confirm.explanation", at=fmt_local(
                    d["dose1_administered_at"], web.lang(), web.site_tz()), dose1_date=d["dose1_date"],
                    planned=d["planned_date"])}
    if item["record_id"] is None:
        d = item["flag"].detail
        return {"title": _("review.flag.dose_not_confirmed.title"),
                "explanation": _("review.flag.dose_not_confirmed.explanation", n=d["dose_number"],
                                 due=d["due_date"], until=d["late_until"]), "extra": []}
    return describe_flag(item["flag"], web.lang())


# --- acknowledging a flag ----------------------------------------------------------------------------

@bp.get("/participants/<subject>/flags/<path:flag_key>/acknowledge")
@staff_required("acknowledge")
def acknowledge_form(subject: str, flag_key: str, values: dict | None = None, errors: dict | None = None):
    p = participant_or_403(subject, "acknowledge")
    item = review_info(p)["flags"].get(flag_key)
    if item is None:
        raise EproError("flag.not_found", 404)
    return web.render("staff/review/acknowledge.html", p=p, item=item, desc=_describe(item), values=values or {},
                      errors=errors or {}, status=400 if errors else 200)


@bp.post("/participants/<subject>/flags/acknowledge")
@staff_required("acknowledge")
def acknowledge(subject: str):
    from server.store.reviews import acknowledge_flag

    p = participant_or_403(subject, "acknowledge")
    web.check_csrf()
    values = {k: request.form.get(k, "") for k in ("flag_key", "outcome", "ae_number", "note")}
    try:
        acknowledge_flag(web.get_db(), protocol(), p["id"], values["flag_key"], outcome=values["outcome"],
                         note=values["note"], ae_number=values["ae_number"], actor=_actor(),
                         staff_role=web.signed_in()["role"])
    except EproError as err:
        if err.status != 400:
            raise
        g.pop("review_info", None)
        return acknowledge_form(subject, values["flag_key"], values, _errors(err))
    web.notify("review.flag.done", subject=subject)
    return redirect(url_for("staff.participant", subject=subject) + "#flags", 303)


# --- corrections -----------------------------------------------------------------------------------------

CORRECTION_ROWS = 3


def _record_and_participant(record_id: str, permission: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from server.store.corrections import record_for_correction

    db = web.get_db()
    rec = record_for_correction(db, record_id)
    if rec is None:
        raise EproError("record.not_found", 404)
    p = participant_by_id(db, rec["participant_id"])
    enforce(permission, p["site_id"])
    return rec, p


def _field_label(path: str) -> str:
    """Words for a payload path (``items.7``, ``symptoms.epistaxis``, ``nostrils.left.given``…)."""
    from server.staff.detail import item_names, symptom_names
    path = path.removeprefix("payload.")
    head, _sep, tail = path.partition(".")
    lang = web.lang()
    if head == "items" and tail:
        return f"{t('review.correct.item', lang, n=tail)} — {item_names(lang).get(tail, '')}"
    if head == "symptoms" and tail:
        return symptom_names(lang).get(tail, tail)
    key = f"review.field.{path}"
    return t(key, lang) if has(key) else path


@bp.get("/records/<record_id>/correct")
@staff_required("correct")
def correct_form(record_id: str, values: dict | None = None, errors: dict | None = None):
    rec, p = _record_and_participant(record_id, "correct")
    fields = [{**f, "label": _field_label(f["path"])} for f in rec["fields"]]
    return web.render("staff/review/correct.html", p=p, rec=rec, fields=fields, rows=range(1, CORRECTION_ROWS + 1),
                      values=values or {"expected_version": rec["version"]}, errors=errors or {},
                      names=_names(), status=400 if errors else 200)


@bp.post("/records/<record_id>/correct")
@staff_required("correct")
def correct_submit(record_id: str):
    from server.store.corrections import parse_value, request_correction

    rec, p = _record_and_participant(record_id, "correct")
    web.check_csrf()
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    kinds = {f["path"]: f["kind"] for f in rec["fields"]}
    updates: dict[str, Any] = {}
    try:
        for i in range(1, CORRECTION_ROWS + 1):
            path = form.get(f"field_{i}", "")
            if not path:
                continue
            if path not in kinds:
                raise EproError("validation.invalid", 400, errors=[
                    FieldError(f"field_{i}", "one_of", "Choose a field of this entry.")])
            updates[path] = parse_value(kinds[path], form.get(f"value_{i}", ""), field=f"value_{i}")
        try:
            expected = int(form.get("expected_version", ""))
        except ValueError:
            expected = None
        out = request_correction(web.get_db(), record_id, updates, reason=form.get("reason", ""),
                                 requested_by=form.get("requested_by", ""), actor=_actor(), protocol=protocol(),
                                 expected_version=expected, site_id=p["site_id"])
    except EproError as err:
        if err.status not in (400, 409):
            raise
        return correct_form(record_id, form, _errors(err, {"updates": "field_1"}))
    n = len(out["invalidated_signoffs"])
    web.notify("review.correct.done_invalidated" if n else "review.correct.done", version=out["version"], n=n)
    return redirect(url_for("staff.record", record_id=record_id), 303)


# --- sign-off -----------------------------------------------------------------------------------------------

def _default_period(p: dict[str, Any], signoffs: list[dict[str, Any]]) -> tuple[str, str]:
    today = utc_now().astimezone(ZoneInfo(p["tz"])).date()
    valid_ends = [date.fromisoformat(s["period_to"]) for s in signoffs if s["status"]["state"] == "valid"]
    start = max(valid_ends) + timedelta(days=1) if valid_ends else date.fromisoformat(p["first_dose_date"]) - timedelta(days=14)
    return min(start, today).isoformat(), today.isoformat()


@bp.get("/participants/<subject>/signoff")
@staff_required("signoff")
def signoff_form(subject: str, values: dict | None = None, errors: dict | None = None):
    from server.store.reviews import timeline_of
    from server.store.signoffs import records_in_period

    p = participant_or_403(subject, "signoff")
    info = review_info(p)
    start, end = _default_period(p, review_signoffs(p))
    values = values or {"period_from": request.args.get("period_from", start),
                        "period_to": request.args.get("period_to", end)}
    staff = web.signed_in()
    values.setdefault("printed_name", staff.get("name") or "")
    preview: list[dict[str, Any]] = []
    try:
        db = web.get_db()
        preview = records_in_period(db, p, date.fromisoformat(values["period_from"]),
                                    date.fromisoformat(values["period_to"]))
        timeline = timeline_of(p, preview)
        for r in preview:
            r["local_date"] = timeline.local_date(parse_iso(r["event_time"]))
    except ValueError:
        preview = []
    return web.render("staff/review/signoff.html", p=p, values=values, errors=errors or {}, preview=preview,
                      open_flags=info["counts"]["open"], account_name=staff.get("name"),
                      status=(401 if "password" in (errors or {}) else 400) if errors else 200)


@bp.post("/participants/<subject>/signoff")
@staff_required("signoff")
def signoff_submit(subject: str):
    from server.store.signoffs import sign_off

    p = participant_or_403(subject, "signoff")
    web.check_csrf()
    values = {k: request.form.get(k, "") for k in ("period_from", "period_to", "printed_name")}
    try:
        s = sign_off(web.get_db(), p["id"], values["period_from"], values["period_to"], staff=web.signed_in(),
                     password=request.form.get("password", ""), printed_name=values["printed_name"],
                     tz=web.site_tz())
    except EproError as err:
        if err.status not in (400, 401, 409, 429):
            raise
        return signoff_form(subject, values, _errors(err))
    web.notify("review.signoff.done", subject=subject, n=len(s["covered"]))
    return redirect(url_for("staff.signoff_detail", signoff_id=s["id"]), 303)


@bp.get("/signoffs/<signoff_id>")
@staff_required("view")
def signoff_detail(signoff_id: str):
    from server.store.signoffs import get_signoff

    if not signoff_id.isdigit():
        raise EproError("signoff.not_found", 404)
    db = web.get_db()
    s = get_signoff(db, int(signoff_id))
    p = participant_by_id(db, s["participant_id"])
    enforce("view", p["site_id"])
    from server.store.reviews import current_records, timeline_of
    records = current_records(db, p["id"])
    timeline = timeline_of(p, records)
    meta = {r["id"]: {"type": r["type"], "date": timeline.local_date(parse_iso(r["event_time"]))} for r in records}
    changed = {c["record_id"] for c in s["status"]["changed"]}
    covered = sorted(s["covered"], key=lambda c: (c["record_id"] not in changed,
                                                  str(meta.get(c["record_id"], {}).get("date", "")), c["record_id"]))
    return web.render("staff/review/signoff_detail.html", p=p, s=s, covered=covered, meta=meta, names=_names(),
                      signer=_names()(f"staff:{s['staff_id']}")["text"])


# --- review reports (AT-12) ------------------------------------------------------------------------------

def _local_bounds(start: str, end: str) -> tuple[str | None, str | None]:
    from server.store.audit_search import _day_bounds
    return _day_bounds(start or None, end or None, web.site_tz())


@bp.get("/review/reports")
@staff_required("view")
def review_reports():
    from server.store.review_reports import LATE_CORRECTION_DAYS, all_reports

    staff = web.signed_in()
    args = {k: request.args.get(k, "").strip() for k in ("start", "end", "late_after_days")}
    errors: dict[str, list[str]] = {}
    try:
        late_after = float(args["late_after_days"]) if args["late_after_days"] else LATE_CORRECTION_DAYS
        if late_after < 0:
            raise ValueError
    except ValueError:
        errors["late_after_days"] = [_("review.rule.type.number")]
        late_after = LATE_CORRECTION_DAYS
    try:
        lo, hi = _local_bounds(args["start"], args["end"])
    except EproError as err:
        errors.update(_errors(err))
        lo = hi = None
    reports = all_reports(web.get_db(), staff["site_id"], protocol(), late_after_days=late_after, start=lo, end=hi)
    return web.render("staff/review/reports.html", reports=reports, args=args, late_after=late_after,
                      errors=errors, names=_names(), status=400 if errors else 200)


# --- audit trail (AT-08) ------------------------------------------------------------------------------------

AUDIT_FILTERS = ("subject", "record_id", "user", "action", "start", "end")


def _audit_query(limit: int, offset: int) -> tuple[dict[str, str], dict[str, Any]]:
    from server.store.audit_search import search_audit

    staff = web.signed_in()
    args = {k: request.args.get(k, "").strip() for k in AUDIT_FILTERS}
    found = search_audit(web.get_db(), staff["site_id"], tz=web.site_tz(), limit=limit, offset=offset,
                         **{k: (v or None) for k, v in args.items()})
    return args, found


@bp.get("/audit")
@staff_required("audit")
def audit_trail():
    from server.store.audit_search import distinct_actions
    from server.store.staff import list_staff

    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    per_page = 100
    try:
        args, found = _audit_query(per_page, (page - 1) * per_page)
        errors: dict[str, list[str]] = {}
    except EproError as err:
        if err.status != 400:
            raise
        args, found, errors = {k: request.args.get(k, "") for k in AUDIT_FILTERS}, {"rows": [], "total": 0}, _errors(err)
    staff = web.signed_in()
    db = web.get_db()
    names = _names()
    for row in found["rows"]:
        row["who"] = names(row["actor"])
    chosen = {k: v for k, v in args.items() if v}
    users = [(f"staff:{s['id']}", s["email"]) for s in list_staff(db, staff["site_id"])]
    users += [("device", _("review.audit.devices")), ("system", _("review.audit.system")), ("cli", _("review.audit.cli"))]
    return web.render(
        "staff/review/audit.html", args=args, rows=found["rows"], total=found["total"], page=page,
        pages=max(1, -(-found["total"] // per_page)), errors=errors, page_args=chosen,
        subject_options=[(r["subject"], r["subject"]) for r in participants_for_site(db, staff["site_id"])],
        user_options=users, action_options=[(a, a) for a in distinct_actions(db, staff["site_id"])],
        csv_url=url_for("staff.audit_csv", **chosen), status=400 if errors else 200)


@bp.get("/audit.csv")
@staff_required("audit")
def audit_csv():
    from server.store.audit_search import MAX_LIMIT, audit_csv as to_csv

    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        _args, found = _audit_query(MAX_LIMIT, offset)
        rows += found["rows"]
        offset += MAX_LIMIT
        if offset >= found["total"]:
            break
    site = site_by_id(web.get_db(), web.signed_in()["site_id"])
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    body = "\ufeff" + to_csv(rows)
    return Response(body.encode("utf-8"), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="audit-trail-{site_part(site)}-{stamp}.csv"'})


# --- exports ---------------------------------------------------------------------------------------------------

def site_part(site: dict[str, Any]) -> str:
    """The site code as a path or file-name part; a code stored before codes were validated and not
    safe as one is refused (409) instead of building a path outside ``exports/`` or a broken header."""
    try:
        return path_part(site["code"])
    except ValueError:
        raise EproError("site.code_invalid", 409) from None


def export_root() -> Path:
    """Where page exports are written: ``EXPORT_DIR``, else ``exports/`` next to the database."""
    configured = current_app.config.get("EXPORT_DIR")
    return Path(configured) if configured else Path(current_app.config["DB"]).resolve().parent / "exports"


def _site_exports(site: dict[str, Any]) -> list[dict[str, Any]]:
    from server.db import query

    rows = query(web.get_db(), "SELECT * FROM audit WHERE action = 'export.create' AND site_id = ? ORDER BY seq DESC",
                 [site["id"]])
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]


def _export_dir(name: str) -> tuple[Path, dict[str, Any]]:
    """The folder of one of this site's exports (404 unless the audit trail says the site made it)."""
    staff = web.signed_in()
    site = site_by_id(web.get_db(), staff["site_id"])
    if not EXPORT_NAME.match(name):
        raise EproError("not_found", 404)
    row = next((r for r in _site_exports(site) if r["entity_id"] == name), None)
    folder = export_root() / site_part(site) / name
    if row is None or not folder.is_dir():
        raise EproError("not_found", 404)
    return folder, row


@bp.get("/exports")
@staff_required("export")
def exports():
    from server.exports.manifest import MANIFEST, verify_manifest

    staff = web.signed_in()
    site = site_by_id(web.get_db(), staff["site_id"])
    names = _names()
    items = []
    for row in _site_exports(site):
        folder = export_root() / site_part(site) / row["entity_id"]
        item = {"name": row["entity_id"], "at": row["at"], "by": names(f"{row['actor_kind']}:{row['actor_id']}"),
                "detail": row["detail"], "present": folder.is_dir(), "files": [], "problems": []}
        if item["present"] and (folder / MANIFEST).is_file():
            item["problems"] = [str(pr) for pr in verify_manifest(folder)]
            item["files"] = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files", [])
        items.append(item)
    return web.render("staff/review/exports.html", items=items, site=site,
                      formats=("csv", "odm", "sdtm", "fhir"))


@bp.post("/exports")
@staff_required("export")
def export_create():
    from server.exports.build import ALL, run_site_export

    web.check_csrf()
    staff = web.signed_in()
    site = site_by_id(web.get_db(), staff["site_id"])
    chosen = tuple(f for f in ALL if f in request.form.getlist("formats")) or ALL
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    name = f"{site['code']}-{stamp}-{staff['id']}"
    folder = export_root() / site_part(site) / name
    n = 1
    while folder.exists():
        n += 1
        folder = export_root() / site_part(site) / f"{name}-{n}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    manifest = run_site_export(web.get_db(), site["code"], folder, formats=chosen, generated_by=staff["email"],
                               actor=_actor(), protocol=protocol())
    web.notify("review.exports.done", files=manifest["counts"]["files"], records=manifest["counts"]["records_total"])
    held = manifest.get("held_back") or {}
    if held.get("count"):
        web.notify("exports.held_back", "warn", count=held["count"], first=(held.get("items") or [""])[0])
    return redirect(url_for("staff.exports") + f"#exp-{folder.name}", 303)


def _audit_download(name: str, what: str) -> None:
    from server.db import write_tx

    db = web.get_db()
    with write_tx(db):
        write_audit(db, _actor(), "export.download", entity="export", entity_id=name,
                    site_id=web.signed_in()["site_id"], detail={"what": what})


@bp.get("/exports/<name>.zip")
@staff_required("export")
def export_zip(name: str):
    from server.exports.build import zip_bytes

    folder, _row = _export_dir(name)
    _audit_download(name, "zip")
    return Response(zip_bytes(folder), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}.zip"'})


@bp.get("/exports/<name>/files/<path:path>")
@staff_required("export")
def export_file(name: str, path: str):
    from server.exports.manifest import MANIFEST

    folder, _row = _export_dir(name)
    listed = {e["path"] for e in json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]} | {MANIFEST}
    target = (folder / path).resolve()
    if path not in listed or folder.resolve() not in target.parents or not target.is_file():
        raise EproError("not_found", 404)
    _audit_download(name, path)
    mimetype = {".xml": "application/xml", ".json": "application/json", ".csv": "text/csv",
                ".txt": "text/plain"}.get(target.suffix, "application/octet-stream")
    return Response(target.read_bytes(), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{target.name}"'})


def _value_text(value: Any) -> str:
    """A payload value for reading: yes/no, "–" for no value, lists joined."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return _("review.yes" if value else "review.no")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "–"
    return str(value)


def _detail_pairs(detail: Any, limit: int = 400) -> list[tuple[str, str]]:
    """An audit row's detail as readable ``(key, value)`` pairs (AT-08), long values shortened."""
    if not isinstance(detail, dict):
        return [("", str(detail)[:limit])]
    out = []
    for key, value in detail.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        out.append((str(key), text if len(text) <= limit else text[:limit] + "…"))
    return out


def init_app(app) -> None:
    app.add_template_global(review_info, "review_info")
    app.add_template_global(review_signoffs, "review_signoffs")
    app.add_template_global(_describe, "review_describe")
    app.add_template_global(_field_label, "review_field_label")
    app.add_template_global(_detail_pairs, "review_detail_pairs")
    app.add_template_global(_value_text, "review_value")
