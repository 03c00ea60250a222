"""Flask glue for the staff pages: the session cookie, CSRF, language, rendering and error pages.

Everything here is request-scoped and lazy: the first call to :func:`current_session` on a request
reads the cookie, ends the session if it has been idle too long, and caches the answer in ``g``.
Cookies are written in one ``after_request`` hook. Pages are rendered by :func:`render`, which adds
the context every staff template expects (see ``server/staff/__init__.py``).
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

from flask import (
    Response, current_app, flash, g, get_flashed_messages, redirect, render_template, request, url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from server.auth import has_permission
from server.db import get_db
from server.errors import HTTP_CODES, error_response
from server.staff.sessions import Resolved, csrf_for, resolve
from shared.errors import EproError
from shared.messages import LANGUAGES, has, normalize_language, t

SESSION_COOKIE = "als_epro_staff"
PRE_COOKIE = "als_epro_pre"          # anonymous: carries the login form's CSRF secret
LANG_COOKIE = "als_epro_lang"

CONFIG_DEFAULTS: dict[str, Any] = {
    "STAFF_IDLE_MINUTES": 15,
    "STAFF_SESSION_MAX_MINUTES": 720,   # absolute lifetime: a session ends 12 h after sign-in however busy
    "STAFF_IDLE_WARNING_MINUTES": 2,
    "STAFF_COOKIE_SECURE": "auto",      # "auto": Secure unless the page is served on a loopback host
    "STAFF_LOGIN_WINDOW_SECONDS": 900,
    "STAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT": 5,
    "STAFF_LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


# --- session -----------------------------------------------------------------------------------

def _state() -> dict[str, Any]:
    if "staff_web" not in g:
        g.staff_web = {"set_cookie": None, "clear_cookie": False, "pre": None, "lang": None}
        token = request.cookies.get(SESSION_COOKIE)
        resolved = resolve(get_db(), token, idle_minutes=float(current_app.config["STAFF_IDLE_MINUTES"]),
                           absolute_minutes=float(current_app.config["STAFF_SESSION_MAX_MINUTES"]))
        if token and resolved.session is None:
            g.staff_web["clear_cookie"] = True
        g.staff_web["resolved"] = resolved
        g.staff_web["token"] = token if resolved.session else None
    return g.staff_web


def resolved() -> Resolved:
    return _state()["resolved"]


def current_session() -> dict[str, Any] | None:
    """The signed-in staff member's session row (``id``, ``staff_id``, ``lang``, times) or None."""
    return resolved().session


def load_staff() -> dict[str, Any] | None:
    """The staff loader registered with :func:`server.auth.set_staff_loader`."""
    return resolved().staff


def signed_in() -> dict[str, Any] | None:
    """The signed-in staff row as the permission checks see it (``g.staff`` once a marker ran)."""
    from server.auth import current_staff

    if "staff" in g and g.staff is not None:
        return g.staff
    return current_staff()


def start_session(token: str) -> None:
    """Set the cookie of a session just opened (login); forget the anonymous state."""
    state = _state()
    state["set_cookie"], state["clear_cookie"], state["token"] = token, False, token
    state["drop_pre"] = True


def end_cookie() -> None:
    _state()["clear_cookie"] = True


def signed_in_required(view: Callable) -> Callable:
    """Route marker ``signed_in``: any active staff member, whatever the role (account pages)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.staff = signed_in()
        if not g.staff:
            raise EproError("auth.login_required", 401)
        return view(*args, **kwargs)

    wrapper.auth_kind = "signed_in"
    return wrapper


def can(permission: str, site_id: int | None = None) -> bool:
    """May the signed-in staff member use ``permission`` (on ``site_id``)? For templates and views."""
    return has_permission(signed_in(), permission, site_id)


# --- CSRF ----------------------------------------------------------------------------------------

def _pre_secret() -> str:
    state = _state()
    if state["pre"] is None:
        state["pre"] = request.cookies.get(PRE_COOKIE) or ""
        if len(state["pre"]) < 32:
            state["pre"] = secrets.token_urlsafe(32)
            state["set_pre"] = True
    return state["pre"]


def csrf_token() -> str:
    """The token every POST form carries (``<input name="csrf_token">``, see ``csrf_field()``)."""
    token = _state()["token"]
    return csrf_for(token if token else _pre_secret())


def same_origin() -> bool:
    """Does the request come from a page of this server? ``Origin`` (or, without it, ``Referer``)
    must name this scheme and host (as the trusted proxy forwards them); a request with neither is
    left to the token alone (OWASP CSRF cheat sheet, "verifying origin with standard headers")."""
    origin = request.headers.get("Origin")
    if not origin:
        referer = urlsplit(request.headers.get("Referer", ""))
        if not referer.scheme:
            return True
        origin = f"{referer.scheme}://{referer.netloc}"
    return origin.strip().lower() == f"{request.scheme}://{request.host}".lower()


def check_csrf() -> None:
    """Refuse the request (400 ``csrf.invalid``) unless it comes from this server's own pages
    (:func:`same_origin`) and the form carries this session's token."""
    if not same_origin():
        raise EproError("csrf.invalid", 400, detail="cross-origin request")
    sent = request.form.get("csrf_token", "")
    token = _state()["token"]
    secret = token if token else request.cookies.get(PRE_COOKIE)
    if not sent or not secret or not hmac.compare_digest(sent, csrf_for(secret)):
        raise EproError("csrf.invalid", 400)


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="%s">') % csrf_token()


# --- language ------------------------------------------------------------------------------------

def lang() -> str:
    """The page language: the session's choice, then the cookie, then Accept-Language, then English."""
    state = _state()
    if state["lang"] is None:
        chosen = (current_session() or {}).get("lang") or request.cookies.get(LANG_COOKIE)
        if chosen not in LANGUAGES:
            best = request.accept_languages.best_match(["en", "zh-CN", "zh"])
            chosen = normalize_language(best) if best else "en"
        state["lang"] = chosen
    return state["lang"]


def set_lang(value: str) -> None:
    state = _state()
    state["lang"], state["set_lang"] = value, value


def _(key: str, **params: Any) -> str:
    return t(key, lang(), **params)


def label_text(code: str) -> str:
    """The words for a record label (``late``, ``clock_drift`` ...); unknown codes as they are."""
    key = f"staff.label.{code}"
    return _(key) if has(key) else code


# --- messages after a redirect ---------------------------------------------------------------------

def notify(key: str, category: str = "ok", **params: Any) -> None:
    """A one-line confirmation shown on the next page ("Participant S-003 enrolled")."""
    flash(json.dumps({"key": key, "params": params}, ensure_ascii=False), category)


def _notices() -> list[dict[str, str]]:
    out = []
    for category, raw in get_flashed_messages(with_categories=True):
        try:
            data = json.loads(raw)
            out.append({"category": category, "text": t(data["key"], lang(), **data.get("params", {}))})
        except (ValueError, KeyError, TypeError):
            continue
    return out


# --- rendering ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label_key: str
    permission: str | None      # None: any signed-in staff member
    order: int = 50


NAV: list[NavItem] = []


def register_nav(endpoint: str, label_key: str, permission: str | None = None, order: int = 50) -> None:
    """Add a link to the top navigation, shown to staff holding ``permission`` (any staff if None)."""
    if any(item.endpoint == endpoint for item in NAV):
        return
    NAV.append(NavItem(endpoint, label_key, permission, order))
    NAV.sort(key=lambda item: (item.order, item.endpoint))


def _nav() -> list[NavItem]:
    staff = signed_in()
    if not staff:
        return []
    return [item for item in NAV if item.endpoint in current_app.view_functions
            and (item.permission is None or has_permission(staff, item.permission))]


def is_demo() -> bool:
    if "staff_demo" not in g:
        from server.demo import is_demo_db

        g.staff_demo = is_demo_db(get_db())
    return g.staff_demo


def site_tz() -> str:
    return current_app.extensions["als_epro.protocol"].timezone


def render(template: str, *, status: int = 200, **context: Any) -> Response:
    """Render a staff template with the shared context (see the package docstring)."""
    staff = signed_in()
    site = None
    if staff:
        from server.store.sites import site_by_id
        site = site_by_id(get_db(), staff["site_id"])
    body = render_template(
        template, staff=staff, staff_site=site, lang=lang(), _=_, can=can, csrf_field=csrf_field,
        csrf_token=csrf_token, nav=_nav(), demo=is_demo(), notices=_notices(), site_tz=site_tz(),
        idle_minutes=current_app.config["STAFF_IDLE_MINUTES"],
        idle_warning_minutes=current_app.config["STAFF_IDLE_WARNING_MINUTES"],
        languages=LANGUAGES, **context)
    resp = Response(body, status=status, mimetype="text/html")
    return resp


def safe_next(url: str | None, default: str | None = None) -> str:
    """A local ``/staff/...`` path to return to, never another host (no open redirect)."""
    fallback = default or url_for("staff.home")
    if not url:
        return fallback
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path.startswith("/staff/") or "\\" in url:
        return fallback
    return parts.path + (f"?{parts.query}" if parts.query else "")


def wants_html() -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _login_redirect() -> Response:
    if request.method == "GET":
        back = request.full_path.rstrip("?")
    else:
        ref = urlsplit(request.headers.get("Referer", ""))
        back = ref.path + (f"?{ref.query}" if ref.query else "") if ref.netloc == request.host else ""
    query = {"next": safe_next(back)}
    if resolved().ended in ("idle", "expired"):
        query["reason"] = "idle"
    return redirect(url_for("staff.login_form") + "?" + urlencode(query), code=303)


def error_page(err: EproError) -> Response:
    """HTML for a browser, the contract's JSON body for anything else (scripts, tests)."""
    if not wants_html():
        return error_response(err)
    if err.status == 401:
        return _login_redirect()
    title_key = f"staff.error.title_{err.status}"
    return render("staff/error.html", status=err.status, code=err.code, message=err.message(lang()),
                  field_errors=err.errors, title=_(title_key if has(title_key) else "staff.error.title"))


def http_error_page(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status < 400:
        return exc
    return error_page(EproError(HTTP_CODES.get(status, f"http.{status}"), status))


# --- cookies and headers ----------------------------------------------------------------------------

def _secure() -> bool:
    setting = current_app.config["STAFF_COOKIE_SECURE"]
    if setting != "auto":
        return bool(setting)
    host = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else request.host.split("]")[0] + "]"
    return request.is_secure or host not in LOOPBACK_HOSTS


def after_request(resp: Response) -> Response:
    """Write the staff cookies decided during the request; keep staff pages out of caches."""
    state = g.get("staff_web")
    if request.path.startswith("/staff/"):
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    if state is None:
        return resp
    common = {"httponly": True, "samesite": "Lax", "secure": _secure(), "path": "/staff/"}
    if state.get("set_cookie"):
        resp.set_cookie(SESSION_COOKIE, state["set_cookie"], **common)
    elif state.get("clear_cookie"):
        resp.delete_cookie(SESSION_COOKIE, path="/staff/", httponly=True, samesite="Lax", secure=_secure())
    if state.get("drop_pre"):
        resp.delete_cookie(PRE_COOKIE, path="/staff/", httponly=True, samesite="Lax", secure=_secure())
    elif state.get("set_pre"):
        resp.set_cookie(PRE_COOKIE, state["pre"], max_age=12 * 3600, **common)
    if state.get("set_lang"):
        resp.set_cookie(LANG_COOKIE, state["set_lang"], max_age=365 * 86400, **common)
    return resp
