"""Sign in, sign out, language switch, the staff member's own sessions (IA-11, IA-13)."""

from __future__ import annotations

from flask import current_app, jsonify, redirect, request, url_for

from server.auth import public
from server.staff import bp, web
from server.staff.sessions import LoginLimits, end_session, live_sessions, login, set_language
from server.store.audit import Actor
from shared.errors import EproError
from shared.messages import LANGUAGES

web.register_nav("staff.my_sessions", "staff.nav.account", None, order=90)


@bp.get("/")
@web.signed_in_required
def home():
    """Where a signed-in staff member starts: the participants list, or the users list for admins."""
    if web.can("view"):
        return redirect(url_for("staff.participants"), 303)
    if web.can("admin_users"):
        return redirect(url_for("staff.admin_users"), 303)
    return redirect(url_for("staff.my_sessions"), 303)


def _login_page(status: int = 200, error: str | None = None, email: str = ""):
    return web.render("staff/login.html", status=status, error=error, email=email,
                      next=web.safe_next(request.values.get("next")),
                      reason=request.args.get("reason"))


@bp.get("/login")
@public
def login_form():
    if web.signed_in():
        return redirect(web.safe_next(request.args.get("next")), 303)
    return _login_page()


@bp.post("/login")
@public
def login_submit():
    web.check_csrf()
    email = request.form.get("email", "")[:320]
    cfg = current_app.config
    limits = LoginLimits(int(cfg["STAFF_LOGIN_WINDOW_SECONDS"]), int(cfg["STAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
                         int(cfg["STAFF_LOGIN_MAX_FAILURES_PER_ADDRESS"]))
    result = login(web.get_db(), email, request.form.get("password", ""), client_addr=request.remote_addr,
                   user_agent=request.headers.get("User-Agent", ""), lang=web.lang(), limits=limits)
    if result.status == "rate_limited":
        minutes = max(1, limits.window_seconds // 60)
        return _login_page(429, web._("staff.login.rate_limited", minutes=minutes), email)
    if result.status != "ok":
        return _login_page(401, web._("staff.login.failed"), email)
    web.start_session(result.token)
    return redirect(web.safe_next(request.form.get("next")), 303)


@bp.post("/logout")
@public
def logout():
    web.check_csrf()
    session = web.current_session()
    if session is not None:
        end_session(web.get_db(), session["id"], "logout", actor=Actor.staff(session["staff_id"]))
        web.end_cookie()
        web.notify("staff.login.signed_out")
    return redirect(url_for("staff.login_form"), 303)


@bp.post("/language")
@public
def set_lang():
    web.check_csrf()
    chosen = request.form.get("lang", "")
    if chosen not in LANGUAGES:
        raise EproError("validation.invalid", 400, detail="lang")
    web.set_lang(chosen)
    session = web.current_session()
    if session is not None:
        set_language(web.get_db(), session["id"], chosen)
    return redirect(web.safe_next(request.form.get("next"), url_for("staff.login_form")), 303)


@bp.get("/session/ping")
@public
def ping():
    """Keep a session alive from the idle warning ("Stay signed in"); says whether one is live."""
    return jsonify({"signed_in": web.current_session() is not None,
                    "idle_minutes": current_app.config["STAFF_IDLE_MINUTES"]})


@bp.get("/account/sessions")
@web.signed_in_required
def my_sessions():
    staff = web.signed_in()
    rows = live_sessions(web.get_db(), staff["id"], idle_minutes=float(current_app.config["STAFF_IDLE_MINUTES"]))
    current = web.current_session()
    return web.render("staff/sessions.html", sessions=rows, current_id=current["id"] if current else None)


@bp.post("/account/sessions/<session_id>/end")
@web.signed_in_required
def end_my_session(session_id: str):
    staff = web.signed_in()
    session_id = int(session_id) if session_id.isdigit() else -1
    owned = {r["id"] for r in live_sessions(web.get_db(), staff["id"],
                                            idle_minutes=float(current_app.config["STAFF_IDLE_MINUTES"]))}
    if session_id not in owned:
        raise EproError("not_found", 404)
    web.check_csrf()
    end_session(web.get_db(), session_id, "ended_by_user", actor=Actor.staff(staff["id"]))
    current = web.current_session()
    if current is not None and current["id"] == session_id:
        web.end_cookie()
        return redirect(url_for("staff.login_form"), 303)
    web.notify("staff.sessions.ended")
    return redirect(url_for("staff.my_sessions"), 303)
