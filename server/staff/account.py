"""The staff member's own password (first sign-in, self-service) and an admin's reset (issue 16).

An account made or reset by someone else carries ``must_change_password``: until its holder has chosen
their own password, every staff page sends them to :func:`password_form` (JSON callers get 403
``staff.password_change_required``), and nothing can be signed. The store does the checks and the
audit rows (:func:`server.store.staff.change_password`, :func:`server.store.staff.reset_password`).
"""

from __future__ import annotations

from flask import redirect, request, url_for

from server.auth import staff_required
from server.staff import bp, web
from server.staff.site_work import _actor, form_errors
from server.store.staff import change_password, reset_password
from shared.errors import EproError, FieldError

#: what a holder who must change the password may still reach
ALLOWED_BEFORE_CHANGE = {"staff.password_form", "staff.password_submit", "staff.logout", "staff.set_lang",
                         "staff.ping", "staff.login_form", "staff.login_submit", "static"}


@bp.before_request
def _require_own_password():
    staff = web.signed_in()
    if not staff or not staff.get("must_change_password") or request.endpoint in ALLOWED_BEFORE_CHANGE:
        return None
    if web.wants_html():
        return redirect(url_for("staff.password_form"), 303)
    raise EproError("staff.password_change_required", 403)


@bp.get("/account/password")
@web.signed_in_required
def password_form(errors: dict | None = None):
    return web.render("staff/password.html", errors=errors or {}, required=bool(web.signed_in()["must_change_password"]),
                      status=400 if errors else 200)


@bp.post("/account/password")
@web.signed_in_required
def password_submit():
    web.check_csrf()
    staff = web.signed_in()
    new, again = request.form.get("new_password", ""), request.form.get("new_password_again", "")
    if new != again:
        return password_form(form_errors(EproError("validation.invalid", 400, errors=[
            FieldError("new_password_again", "password_mismatch", "The two passwords differ.")])))
    try:
        change_password(web.get_db(), staff["id"], request.form.get("current_password", ""), new,
                        client_addr=request.remote_addr)
    except EproError as err:
        if err.status != 400:
            raise
        return password_form(form_errors(err))
    web.notify("staff.account.password_changed")
    return redirect(url_for("staff.home"), 303)


@bp.post("/admin/users/<staff_id>/password")
@staff_required("admin_users")
def admin_user_password(staff_id: str):
    from server.staff.admin import _staff_id, admin_user

    staff_id = _staff_id(staff_id)
    web.check_csrf()
    temporary, again = request.form.get("temporary_password", ""), request.form.get("temporary_password_again", "")
    if temporary != again:
        return admin_user(staff_id, {"temporary_password_again": [web._("staff.rule.password_mismatch")]})
    try:
        reset_password(web.get_db(), staff_id, temporary, actor=_actor(), reason=request.form.get("reset_reason", ""))
    except EproError as err:
        if err.status != 400:
            raise
        return admin_user(staff_id, form_errors(err, {"password": "temporary_password", "reason": "reset_reason"}))
    web.notify("staff.account.password_reset")
    return redirect(url_for("staff.admin_user", staff_id=staff_id), 303)
