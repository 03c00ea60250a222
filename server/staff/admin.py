"""Administration (role admin): staff accounts with their access history (IA-03), sites, and devices
across sites. No clinical page is reachable from here, and admins hold no clinical permission."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for

from server.auth import ROLES, staff_required
from server.staff import bp, web
from server.staff.detail import Names
from server.staff.sessions import end_all_sessions
from server.staff.site_work import _actor, _revoke, form_errors
from server.store.audit import audit_for_entity
from server.store.devices import get_device
from server.store.sites import add_site, list_sites, site_by_id
from server.store.staff import add_staff, get_staff, list_staff, public, set_staff_active, set_staff_role
from server.db import query
from shared.errors import EproError, FieldError

web.register_nav("staff.admin_users", "staff.nav.users", "admin_users", order=60)
web.register_nav("staff.admin_sites", "staff.nav.sites", "admin_sites", order=61)
web.register_nav("staff.admin_devices", "staff.nav.devices", "admin_devices", order=62)

ACCESS_ACTIONS = ("staff.create", "staff.role_change", "staff.disable", "staff.enable")


def access_history(db, staff_row: dict[str, Any], names: Names) -> list[dict[str, Any]]:
    """Periods of access (role, from, to, who granted, who ended and why), oldest first (IA-03).

    Rebuilt from the audit trail: ``staff.create`` and ``staff.enable`` open a period,
    ``staff.disable`` closes it, ``staff.role_change`` closes it and opens one with the new role.
    """
    events = [a for a in audit_for_entity(db, "staff", staff_row["id"]) if a["action"] in ACCESS_ACTIONS]
    periods: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    role = staff_row["role"]

    def open_period(at: str, who: dict[str, str], reason: str | None) -> dict[str, Any]:
        period = {"role": role, "from": at, "to": None, "granted_by": who, "grant_reason": reason,
                  "ended_by": None, "end_reason": None}
        periods.append(period)
        return period

    def close(at: str, who: dict[str, str], reason: str | None) -> None:
        if current is not None:
            current.update({"to": at, "ended_by": who, "end_reason": reason})

    for a in events:
        d, who = a["detail"], names(a["actor_kind"], a["actor_id"])
        if a["action"] == "staff.create":
            role = d.get("role", role)
            current = open_period(a["at"], who, None)
        elif a["action"] == "staff.role_change":
            close(a["at"], who, d.get("reason"))
            role = d.get("new", role)
            current = open_period(a["at"], who, d.get("reason")) if current is not None else None
        elif a["action"] == "staff.disable":
            close(a["at"], who, d.get("reason"))
            current = None
        elif a["action"] == "staff.enable" and current is None:
            current = open_period(a["at"], who, d.get("reason"))
    return periods


def _staff_id(text: str | int) -> int:
    """Route values are plain strings (the role matrix test calls every route with its placeholder)."""
    try:
        return int(text)
    except ValueError:
        raise EproError("not_found", 404) from None


def _role_options() -> list[tuple[str, str]]:
    return [(r, web._(f"staff.role.{r}")) for r in ROLES]


def _last_login(db, staff_id: int) -> str | None:
    rows = query(db, "SELECT MAX(at) AS at FROM audit WHERE action = 'staff.login' AND entity = 'staff'"
                     " AND entity_id = ?", [str(staff_id)])
    return rows[0]["at"] if rows else None


@bp.get("/admin/users")
@staff_required("admin_users")
def admin_users():
    db = web.get_db()
    sites = {s["id"]: s for s in list_sites(db)}
    rows = [{**s, "site": sites.get(s["site_id"]), "last_login": _last_login(db, s["id"])} for s in list_staff(db)]
    return web.render("staff/admin_users.html", users=rows)


@bp.get("/admin/users/new")
@staff_required("admin_users")
def admin_user_form(values: dict | None = None, errors: dict | None = None):
    site_options = [(s["code"], f"{s['code']} · {s['name']}") for s in list_sites(web.get_db())]
    return web.render("staff/admin_user_new.html", site_options=site_options, role_options=_role_options(),
                      values=values or {"role": "coordinator"}, errors=errors or {}, status=400 if errors else 200)


@bp.post("/admin/users/new")
@staff_required("admin_users")
def admin_user_submit():
    web.check_csrf()
    values = {k: request.form.get(k, "").strip() for k in ("email", "name", "site", "role")}
    password, again = request.form.get("password", ""), request.form.get("password_again", "")
    if password != again:
        return admin_user_form(values, form_errors(EproError("validation.invalid", 400, errors=[
            FieldError("password_again", "password_mismatch", "The two passwords differ.")])))
    try:
        row = add_staff(web.get_db(), values["email"], values["site"], values["role"], password, actor=_actor(),
                        name=values["name"])
    except EproError as err:
        if err.status not in (400, 404, 409):
            raise
        return admin_user_form(values, form_errors(err, {"site.not_found": "site"}))
    web.notify("staff.admin.user_created", email=row["email"])
    return redirect(url_for("staff.admin_user", staff_id=row["id"]), 303)


@bp.get("/admin/users/<staff_id>")
@staff_required("admin_users")
def admin_user(staff_id: str, errors: dict | None = None):
    db = web.get_db()
    row = public(get_staff(db, _staff_id(staff_id)))
    if row is None:
        raise EproError("not_found", 404)
    names = Names(db, web.lang())
    return web.render("staff/admin_user.html", user=row, site=site_by_id(db, row["site_id"]), role_options=_role_options(),
                      periods=access_history(db, row, names), last_login=_last_login(db, row["id"]),
                      errors=errors or {}, status=400 if errors else 200)


@bp.post("/admin/users/<staff_id>/role")
@staff_required("admin_users")
def admin_user_role(staff_id: str):
    staff_id = _staff_id(staff_id)
    web.check_csrf()
    reason = request.form.get("reason", "").strip()
    if not reason:
        return admin_user(staff_id, {"reason": [web._("staff.rule.reason_required")]})
    try:
        set_staff_role(web.get_db(), staff_id, request.form.get("role", ""), actor=_actor(), reason=reason)
    except EproError as err:
        if err.status not in (400, 409):
            raise
        return admin_user(staff_id, form_errors(err))
    web.notify("staff.admin.role_changed")
    return redirect(url_for("staff.admin_user", staff_id=staff_id), 303)


@bp.post("/admin/users/<staff_id>/active")
@staff_required("admin_users")
def admin_user_active(staff_id: str):
    staff_id = _staff_id(staff_id)
    web.check_csrf()
    reason = request.form.get("active_reason", "").strip()
    active = request.form.get("active") == "1"
    if not reason:
        return admin_user(staff_id, {"active_reason": [web._("staff.rule.reason_required")]})
    if not active and staff_id == web.signed_in()["id"]:
        return admin_user(staff_id, {"active_reason": [web._("staff.admin.not_yourself")]})
    db = web.get_db()
    set_staff_active(db, staff_id, active, actor=_actor(), reason=reason)
    if not active:
        end_all_sessions(db, staff_id, "staff_disabled", actor=_actor())
    web.notify("staff.admin.enabled" if active else "staff.admin.disabled")
    return redirect(url_for("staff.admin_user", staff_id=staff_id), 303)


@bp.get("/admin/sites")
@staff_required("admin_sites")
def admin_sites(values: dict | None = None, errors: dict | None = None):
    db = web.get_db()
    rows = query(db, """
        SELECT s.*, (SELECT COUNT(*) FROM participants p WHERE p.site_id = s.id) AS participants,
               (SELECT COUNT(*) FROM staff t WHERE t.site_id = s.id AND t.active = 1) AS staff
        FROM sites s ORDER BY s.code""")
    return web.render("staff/admin_sites.html", sites=rows, values=values or {}, errors=errors or {},
                      status=400 if errors else 200)


@bp.post("/admin/sites")
@staff_required("admin_sites")
def admin_site_submit():
    web.check_csrf()
    values = {k: request.form.get(k, "").strip() for k in ("code", "name")}
    try:
        add_site(web.get_db(), values["code"], values["name"], actor=_actor())
    except EproError as err:
        if err.status not in (400, 409):
            raise
        return admin_sites(values, form_errors(err, {"_": "code"}))
    web.notify("staff.admin.site_added", code=values["code"])
    return redirect(url_for("staff.admin_sites"), 303)


@bp.get("/admin/devices")
@staff_required("admin_devices")
def admin_devices():
    rows = query(web.get_db(), """
        SELECT d.id, d.name, d.role, d.created_at, d.last_seen_at, d.revoked_at, d.revoked_reason,
               p.subject, s.code AS site_code
        FROM devices d JOIN participants p ON p.id = d.participant_id JOIN sites s ON s.id = p.site_id
        ORDER BY s.code, p.subject, d.created_at""")
    return web.render("staff/admin_devices.html", devices=rows)


@bp.get("/admin/devices/<device_id>/revoke")
@staff_required("admin_devices")
def admin_revoke_form(device_id: str, values: dict | None = None, errors: dict | None = None):
    device = get_device(web.get_db(), device_id)
    return web.render("staff/revoke.html", device=device, values=values or {}, errors=errors or {},
                      action=url_for("staff.admin_revoke_submit", device_id=device_id),
                      back=url_for("staff.admin_devices"), status=400 if errors else 200)


@bp.post("/admin/devices/<device_id>/revoke")
@staff_required("admin_devices")
def admin_revoke_submit(device_id: str):
    device = get_device(web.get_db(), device_id)
    web.check_csrf()
    return _revoke(device, lambda **kw: admin_revoke_form(device_id, **kw), url_for("staff.admin_devices"))
