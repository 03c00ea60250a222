"""Site work without a shell: enrol, move the first dose, add a caregiver, issue a pairing code, revoke a
device, and (where doses are given at the site) enter a dose confirmation.

Each action is one call to the existing store function, which writes the audit row; each is allowed
only to the roles of contract §4 and only at the staff member's own site. Staff-entered doses go
through the same ingest as device uploads (:func:`server.store.records.ingest`, channel ``staff``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, request, url_for

from server.auth import staff_required
from server.staff import bp, participant_or_403, protocol, web
from server.staff.dose_form import DoseForm
from server.staff.svg import qr_svg
from server.store.audit import Actor
from server.store.devices import get_device, revoke_device
from server.store.pairing import issue_pairing_code
from server.store.participants import add_caregiver, caregivers_for, enroll, set_first_dose
from server.store.records import ingest
from server.store.sites import site_by_id
from shared.errors import EproError
from shared.messages import has, t

web.register_nav("staff.enroll_form", "staff.nav.enroll", "enroll", order=20)


def _actor() -> Actor:
    return Actor.staff(web.signed_in()["id"])


def form_errors(err: EproError, fields: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Field errors of a store error, in the page language, keyed by form field (``_form`` otherwise)."""
    lang, fields = web.lang(), fields or {}
    out: dict[str, list[str]] = {}
    for e in err.errors:
        keys = (f"staff.rule.{e.field}.{e.rule}", f"staff.rule.{e.rule}", f"rule.{e.rule}")
        text = next((t(k, lang) for k in keys if has(k)), e.message)
        out.setdefault(fields.get(e.field, e.field), []).append(text)
    if not err.errors:
        out["_form"] = [err.message(lang)]
    return out


# --- enrolment ------------------------------------------------------------------------------------

@bp.get("/enroll")
@staff_required("enroll")
def enroll_form(values: dict[str, Any] | None = None, errors: dict[str, list[str]] | None = None):
    values = values or {"tz": protocol().timezone}
    return web.render("staff/enroll.html", values=values, errors=errors or {}, window=protocol().enrolment,
                      status=400 if errors else 200)


@bp.post("/enroll")
@staff_required("enroll")
def enroll_submit():
    web.check_csrf()
    staff = web.signed_in()
    site = site_by_id(web.get_db(), staff["site_id"])
    values = {k: request.form.get(k, "").strip() for k in ("subject", "onset", "first_dose", "tz")}
    missing = {k: [t("rule.required", web.lang())] for k in ("subject", "onset", "first_dose") if not values[k]}
    if missing:
        return enroll_form(values, missing)
    try:
        p = enroll(web.get_db(), values["subject"], site["code"], values["onset"], values["first_dose"],
                   tz=values["tz"] or protocol().timezone, actor=_actor(), protocol=protocol())
    except EproError as err:
        if err.status not in (400, 409):
            raise
        errors = form_errors(err, {"subject": "subject"})
        window = protocol().enrolment
        for e in err.errors:  # the onset rules name the protocol's window in the page language
            if e.rule in ("onset_to_first_dose_window", "onset_after_first_dose"):
                errors["onset"] = [t(f"safety_rules.enrol.{e.rule}", web.lang(),
                                     lo=window.get("onset_to_first_dose_months_min"),
                                     hi=window.get("onset_to_first_dose_months_max"))]
        return enroll_form(values, errors)
    web.notify("staff.enroll.done", subject=p["subject"])
    return redirect(url_for("staff.participant", subject=p["subject"]), 303)


# --- first dose -----------------------------------------------------------------------------------

@bp.get("/participants/<subject>/first-dose")
@staff_required("enroll")
def first_dose_form(subject: str, values: dict[str, Any] | None = None, errors: dict | None = None):
    p = participant_or_403(subject, "enroll")
    from server.store.participants import dose1_administered_at
    given = dose1_administered_at(web.get_db(), p["id"])
    return web.render("staff/first_dose.html", p=p, given=given, values=values or {"first_dose": p["first_dose_date"]},
                      errors=errors or {}, status=400 if errors else 200)


@bp.post("/participants/<subject>/first-dose")
@staff_required("enroll")
def first_dose_submit(subject: str):
    participant_or_403(subject, "enroll")
    web.check_csrf()
    values = {k: request.form.get(k, "").strip() for k in ("first_dose", "reason")}
    try:
        p = set_first_dose(web.get_db(), subject, values["first_dose"], reason=values["reason"], actor=_actor())
    except EproError as err:
        if err.status != 400:
            raise
        return first_dose_form(subject, values, form_errors(err))
    web.notify("staff.first_dose.done", subject=subject, date=p["first_dose_date"])
    return redirect(url_for("staff.participant", subject=subject), 303)


# --- caregivers -------------------------------------------------------------------------------------

@bp.get("/participants/<subject>/caregivers/new")
@staff_required("enroll")
def caregiver_form(subject: str, values: dict[str, Any] | None = None, errors: dict | None = None):
    p = participant_or_403(subject, "enroll")
    return web.render("staff/caregiver.html", p=p, values=values or {}, errors=errors or {},
                      status=400 if errors else 200)


@bp.post("/participants/<subject>/caregivers/new")
@staff_required("enroll")
def caregiver_submit(subject: str):
    participant_or_403(subject, "enroll")
    web.check_csrf()
    values = {"name": request.form.get("name", "")}
    try:
        add_caregiver(web.get_db(), subject, values["name"], actor=_actor())
    except EproError as err:
        if err.status != 400:
            raise
        return caregiver_form(subject, values, form_errors(err))
    web.notify("staff.caregiver.done", subject=subject)
    return redirect(url_for("staff.participant_devices", subject=subject), 303)


# --- pairing codes ------------------------------------------------------------------------------------

@bp.get("/participants/<subject>/pairing")
@staff_required("pair")
def pairing_form(subject: str, values: dict[str, Any] | None = None, errors: dict | None = None):
    p = participant_or_403(subject, "pair")
    if p["status"] != "active":
        raise EproError("participant.withdrawn", 409, detail=subject)
    return web.render("staff/pairing.html", p=p, caregivers=caregivers_for(web.get_db(), p["id"]),
                      values=values or {"role": "participant"}, errors=errors or {},
                      ttl=current_app.config["PAIRING_CODE_TTL_MINUTES"], status=400 if errors else 200)


@bp.post("/participants/<subject>/pairing")
@staff_required("pair")
def pairing_submit(subject: str):
    p = participant_or_403(subject, "pair")
    web.check_csrf()
    role = request.form.get("role", "")
    choice = request.form.get("caregiver", "new")
    name = request.form.get("caregiver_name", "").strip()
    values = {"role": role, "caregiver": choice, "caregiver_name": name}
    caregiver_id = None
    if role == "caregiver" and choice != "new":
        try:
            caregiver_id = int(choice)
        except ValueError:
            return pairing_form(subject, values, {"caregiver": [t("rule.one_of", web.lang())]})
    if role == "caregiver" and caregiver_id is None and not name:
        return pairing_form(subject, values, {"caregiver_name": [t("staff.rule.caregiver_name", web.lang())]})
    try:
        out = issue_pairing_code(web.get_db(), subject, role, caregiver_id, actor=_actor(),
                                 ttl_minutes=float(current_app.config["PAIRING_CODE_TTL_MINUTES"]),
                                 caregiver_name=name or None)
    except EproError as err:
        if err.status != 400 and err.code != "caregiver.not_found":
            raise
        return pairing_form(subject, values, form_errors(err, {"caregiver": "caregiver"}))
    caregiver = next((c for c in caregivers_for(web.get_db(), p["id"]) if c["id"] == out["caregiver_id"]), None)
    resp = web.render("staff/pairing_code.html", p=p, code=out, caregiver=caregiver,
                      qr=qr_svg(out["code"], t("staff.pairing.qr_label", web.lang(), code=out["code"])))
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- revoking a device ----------------------------------------------------------------------------------

def _revoke_page(device_id: str, permission: str, errors: dict | None = None, values: dict | None = None):
    device = get_device(web.get_db(), device_id)
    site_id = None if permission == "admin_devices" else device["site_id"]
    from server.auth import enforce
    enforce(permission, site_id)
    return device


@bp.get("/devices/<device_id>/revoke")
@staff_required("revoke")
def revoke_form(device_id: str, values: dict | None = None, errors: dict | None = None):
    device = _revoke_page(device_id, "revoke")
    return web.render("staff/revoke.html", device=device, values=values or {}, errors=errors or {},
                      action=url_for("staff.revoke_submit", device_id=device_id),
                      back=url_for("staff.participant_devices", subject=device["subject"]),
                      status=400 if errors else 200)


@bp.post("/devices/<device_id>/revoke")
@staff_required("revoke")
def revoke_submit(device_id: str):
    device = _revoke_page(device_id, "revoke")
    web.check_csrf()
    return _revoke(device, lambda **kw: revoke_form(device_id, **kw),
                   url_for("staff.participant_devices", subject=device["subject"]))


def _revoke(device: dict[str, Any], again, done_url: str):
    values = {"reason": request.form.get("reason", "")}
    try:
        revoke_device(web.get_db(), device["id"], reason=values["reason"], actor=_actor())
    except EproError as err:
        if err.status != 400:
            raise
        return again(values=values, errors=form_errors(err))
    web.notify("staff.revoke.done", name=device["name"], subject=device["subject"])
    return redirect(done_url, 303)


# --- dose entered by staff (dosing at the site) ---------------------------------------------------------

def _site_dosing(subject: str) -> dict[str, Any]:
    p = participant_or_403(subject, "correct")
    if protocol().dosing_location != "site":
        raise EproError("staff.site_dosing_off", 404)
    if p["status"] != "active":
        raise EproError("participant.withdrawn", 409, detail=subject)
    return p


@bp.get("/participants/<subject>/doses/new")
@staff_required("correct")
def dose_form(subject: str, form: DoseForm | None = None):
    p = _site_dosing(subject)
    form = form or DoseForm.blank(web.get_db(), protocol(), p)
    return web.render("staff/dose_entry.html", p=p, form=form, errors=form.errors,
                      status=400 if form.errors else 200, **form.choices(web.lang()))


@bp.post("/participants/<subject>/doses/new")
@staff_required("correct")
def dose_submit(subject: str):
    p = _site_dosing(subject)
    web.check_csrf()
    staff = web.signed_in()
    form = DoseForm.from_request(web.get_db(), protocol(), p, staff, request.form, web.lang())
    if form.errors:
        return dose_form(subject, form)
    stand_in = {"id": None, "participant_id": p["id"], "subject": p["subject"], "site_id": p["site_id"],
                "role": "staff", "caregiver_id": None, "staff_id": staff["id"]}
    result = ingest(web.get_db(), stand_in, [form.envelope], protocol=protocol(), channel="staff",
                    actor=_actor())[0]
    if result["status"] != "accepted":
        form.errors = {"_form": [e["message"] for e in result.get("errors", [])] or [result["status"]]}
        return dose_form(subject, form)
    web.notify("staff.dose_entry.done", n=form.envelope["payload"]["dose_number"], subject=subject)
    return redirect(url_for("staff.participant_doses", subject=subject), 303)
