"""Staff web pages: server-rendered HTML under ``/staff/`` for site staff and administrators.

Sign-in with a server-side session (``sessions.py``), CSRF on every POST form, English and
Simplified Chinese, every clinical page scoped to the staff member's own site (contract §4).

How to add a page (the review workflow plugs in this way)
----------------------------------------------------------
Routes go on the shared blueprint :data:`bp` (name ``staff``, prefix ``/staff``; endpoints are
``staff.<function>``). A module ``server/staff/review.py`` is imported by :func:`init_app` when it
exists, before the blueprint is registered; if it defines ``init_app(app)`` that is called too.
Every view carries a route marker (``tests/server/test_auth_matrix.py`` walks ``app.url_map``)::

    from flask import redirect, url_for
    from server.auth import staff_required
    from server.staff import bp, render, check_csrf, notify, participant_or_403, db

    @bp.post("/participants/<subject>/flags/acknowledge")
    @staff_required("acknowledge")              # 401 signed out, 403 without the permission
    def acknowledge_flag(subject):
        p = participant_or_403(subject, "acknowledge")   # 404 unknown, 403 another site's
        check_csrf()                            # after the permission checks: a monitor sees 403
        ...                                     # one store call; it writes its own audit row
        notify("staff.review.flag_acknowledged", subject=subject)   # shown on the next page
        return redirect(url_for("staff.participant", subject=subject), 303)

Use plain ``<name>`` route values, not ``<int:name>``: the matrix test calls each route with the
placeholder's name as its value and expects 401/403, not a routing 404; parse inside the view.
Browsers get HTML error pages (401 redirects to the sign-in page and back); scripts and the test
client get the contract's JSON error body. ``signed_in_required`` marks account pages open to
every role (auth kind ``signed_in``).

Templates (``server/templates/staff/``)
    ``{% extends "staff/base.html" %}`` with blocks ``title``, ``head`` and ``main``; macros in
    ``staff/_macros.html`` (``chip``, ``field``, ``errors_summary``, ``severity_chip``, ...). Every
    template gets ``staff``, ``staff_site``, ``lang``, ``_(key, **params)`` (messages),
    ``can(permission, site_id=None)``, ``csrf_field()`` (put it in every POST form), ``demo``,
    ``site_tz``, ``label_text(code)`` and the filters ``local(tz)`` / ``local_nozone`` /
    ``local_short`` (local time), ``utc``, ``rel`` ("3 h ago"), ``date`` / ``date_short``,
    ``study_day`` and ``check_code``. In Python: ``web.lang()``, ``web.signed_in()``, ``web.can()``.
    Strings live in ``shared/messages/*.json``; review pages use their own file (``review.json``).

Slots on the participant page (``staff/participant.html`` and ``staff/participant/*.html``)
    The page is a summary (``staff/participant/_summary.html``) and one section per URL, each a view
    function in ``participant_page.py`` and a template under ``staff/participant/`` that fills
    ``{% block section %}`` (see that module's docstring for the table). Slots, each skipped when
    its file is missing: ``staff/review/_flag_actions.html`` inside every safety flag (variables
    ``flag``, ``desc``, ``state``, ``p``; block ``flag_actions``), ``staff/review/_schedule_flags.html``
    after the flags (block ``flags_end``), ``staff/review/_signoffs.html`` on the Audit section
    (block ``signoffs``), ``staff/review/_signoff_fact.html`` as a tile of the summary (block
    ``summary_facts``), ``staff/review/_record_actions.html`` inside every record panel (``rec``,
    ``p``; in the ``record_panel`` macro of ``staff/_record.html``, so it shows on the record page
    too). Each section template ends with an empty block (``diary_end``, ``doses_end``,
    ``records_end``, ``audit_end``, ``devices_end``, ``print_end``) for another area's include. The
    summary shows an "Open queries" tile when the view passes ``open_queries`` (block
    ``open_queries``; absent by default).

Flag states and navigation
    :func:`register_flag_states` takes ``fn(db, participant_id) -> {flag_key: state}``; a flag
    whose key has a state is no longer *open* (counts, urgency order); ``state`` is a dict shown
    next to the flag (``{"label": "Acknowledged: not an adverse event", "at": iso, "by": str}``).
    :func:`register_nav` adds a top-navigation link for a permission.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable

from flask import Blueprint, current_app
from werkzeug.exceptions import HTTPException

from server.auth import current_staff, enforce, set_staff_loader
from server.db import get_db
from server.staff import web
from server.staff.web import (
    can, check_csrf, csrf_field, csrf_token, current_session, lang, notify, register_nav, render,
    signed_in, signed_in_required,
)
from shared.errors import EproError

__all__ = [
    "bp", "init_app", "render", "check_csrf", "csrf_field", "csrf_token", "current_session", "current_staff",
    "signed_in", "signed_in_required", "lang", "notify", "register_nav", "register_flag_states", "can",
    "db", "protocol", "participant_or_403", "flag_states",
]

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.register_error_handler(EproError, web.error_page)
bp.register_error_handler(HTTPException, web.http_error_page)

#: page modules of this package, imported (and so registered on ``bp``) by init_app
PAGE_MODULES = ("auth_views", "participants", "participant_page", "site_work", "admin", "account")
#: modules other areas add; imported when present
OPTIONAL_MODULES = ("review", "safety_views", "correct_all", "queries_pages", "alerts_pages")

_FLAG_STATE_PROVIDERS: list[Callable[[Any, int], dict[str, dict[str, Any]]]] = []


def register_flag_states(fn: Callable[[Any, int], dict[str, dict[str, Any]]]) -> None:
    """Tell the pages which flags are no longer open (e.g. acknowledged); see the docstring."""
    if fn not in _FLAG_STATE_PROVIDERS:
        _FLAG_STATE_PROVIDERS.append(fn)


def flag_states(database, participant_id: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for fn in _FLAG_STATE_PROVIDERS:
        out.update(fn(database, participant_id) or {})
    return out


def db():
    """The request's database connection."""
    return get_db()


def protocol():
    return current_app.extensions["als_epro.protocol"]


def participant_or_403(subject: str, permission: str = "view") -> dict[str, Any]:
    """The participant row if the signed-in staff member may use ``permission`` at its site.

    404 for an unknown subject, 403 (audited) for another site's participant.
    """
    from server.store.participants import get_participant

    p = get_participant(get_db(), subject)
    enforce(permission, p["site_id"])
    return p


def init_app(app) -> None:
    """Register the staff pages: blueprint, staff loader, cookies, templates helpers."""
    from server.staff import fmt

    for key, value in web.CONFIG_DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config.setdefault("SESSION_COOKIE_NAME", "als_epro_notice")
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    if not app.config.get("SESSION_COOKIE_PATH"):
        app.config["SESSION_COOKIE_PATH"] = "/staff/"
    for name in PAGE_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    extra = []
    for name in OPTIONAL_MODULES:
        if importlib.util.find_spec(f"{__name__}.{name}") is None:
            continue
        try:
            extra.append(importlib.import_module(f"{__name__}.{name}"))
        except Exception:  # another area's half-built module must not take the staff pages down
            app.logger.exception("staff page module %s not loaded", name)
    app.register_blueprint(bp)
    for module in extra:
        if hasattr(module, "init_app"):
            module.init_app(app)
    set_staff_loader(app, web.load_staff)
    app.after_request(web.after_request)
    app.add_template_filter(lambda v, tz=None: fmt.fmt_local(v, lang(), tz or web.site_tz()), "local")
    app.add_template_filter(lambda v, tz=None: fmt.fmt_local(v, lang(), tz or web.site_tz(), zone=False),
                            "local_nozone")
    app.add_template_filter(lambda v, tz=None: fmt.fmt_local(v, lang(), tz or web.site_tz(), zone=False,
                                                             weekday=False, year=False), "local_short")
    app.add_template_filter(fmt.fmt_utc, "utc")
    app.add_template_filter(lambda v: fmt.fmt_relative(v, _now(), lang()), "rel")
    app.add_template_filter(lambda d, weekday=True: fmt.fmt_date(d, lang(), weekday=weekday), "date")
    app.add_template_filter(lambda d: fmt.fmt_date(d, lang(), weekday=False, year=False), "date_short")
    app.add_template_filter(lambda n: fmt.study_day_label(n, lang()), "study_day")
    app.add_template_filter(fmt.check_code, "check_code")
    app.add_template_global(web.label_text, "label_text")


def _now():
    from server.clock import utc_now
    return utc_now()
