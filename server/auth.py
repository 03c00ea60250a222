"""Who may do what (contract §4): staff roles and permissions, device tokens, route markers.

Every view function carries an ``auth_kind`` marker — ``"public"``, ``"device"`` or ``"staff:<perm>"``
— set by :func:`public`, :func:`device_required` or :func:`staff_required`. The role × endpoint matrix
test walks ``app.url_map`` and fails on a route without a marker, so a new route is covered
automatically.

Staff sessions belong to the staff pages: they register how to find the signed-in staff row with
:func:`set_staff_loader` (default: nobody is signed in). Devices send ``Authorization: Bearer TOKEN``;
only the token's sha256 is stored.
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from shared.errors import EproError

ROLES = ("investigator", "coordinator", "monitor", "admin")

#: permission names; clinical ones are limited to the staff member's own site
CLINICAL = ("view", "acknowledge", "correct", "enroll", "pair", "revoke", "signoff", "export",
            "audit", "query_raise", "query_answer", "query_close")
ADMIN = ("admin_users", "admin_sites", "admin_devices", "admin_alerts")
#: data clarification (issue 12): monitors and coordinators raise, site staff answer, monitors close
QUERY_MONITOR_ONLY = frozenset({"query_raise", "query_close"})
PERMISSIONS = CLINICAL + ADMIN

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    # everything at the site, sign-off, export
    "investigator": frozenset(CLINICAL) - QUERY_MONITOR_ONLY,
    "coordinator": frozenset({"view", "acknowledge", "correct", "enroll", "pair", "revoke", "query_raise",
                              "query_answer"}),
    # read-only: view, audit trail, export — and the data queries a monitor raises and closes
    "monitor": frozenset({"view", "audit", "export", "query_raise", "query_close"}),
    # users, sites, devices, on-call lists and alert deliveries across sites; no clinical pages
    "admin": frozenset(ADMIN),
}
#: permissions that reach every site
CROSS_SITE = frozenset(ADMIN)


def has_permission(staff: dict[str, Any] | None, permission: str,
                   site_id: int | None = None) -> bool:
    """May this (active) staff member use ``permission``, on ``site_id`` when one is given?"""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    if not staff or not staff.get("active"):
        return False
    if permission not in ROLE_PERMISSIONS.get(staff.get("role", ""), frozenset()):
        return False
    if site_id is not None and permission not in CROSS_SITE and staff.get("site_id") != site_id:
        return False
    return True


def require_permission(staff: dict[str, Any] | None, permission: str,
                       site_id: int | None = None) -> None:
    """Raise 401 ``auth.login_required`` or 403 ``auth.forbidden`` unless allowed."""
    if not staff:
        raise EproError("auth.login_required", 401)
    if not has_permission(staff, permission, site_id):
        raise EproError("auth.forbidden", 403, detail=permission)


# --- route markers -----------------------------------------------------------------------------

def public(view: Callable) -> Callable:
    view.auth_kind = "public"
    return view


def device_required(view: Callable) -> Callable:
    """Authenticate the bearer token; the device row is in ``flask.g.device``."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        from flask import g, request

        from server.db import get_db
        from server.store.devices import authenticate_device

        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        from flask import current_app

        g.device = authenticate_device(get_db(), token.strip() if scheme.lower() == "bearer" else "",
                                       client_addr=request.remote_addr,
                                       grace_seconds=current_app.config["TOKEN_GRACE_SECONDS"])
        return view(*args, **kwargs)

    wrapper.auth_kind = "device"
    return wrapper


_STAFF_LOADER_KEY = "als_epro.staff_loader"


def set_staff_loader(app, loader: Callable[[], dict[str, Any] | None]) -> None:
    """Tell staff-protected routes how to find the signed-in staff row (the staff pages do this)."""
    app.extensions[_STAFF_LOADER_KEY] = loader


def current_staff() -> dict[str, Any] | None:
    from flask import current_app

    loader = current_app.extensions.get(_STAFF_LOADER_KEY)
    return loader() if loader else None


def enforce(permission: str, site_id: int | None = None) -> dict[str, Any]:
    """In a staff view: the signed-in staff row if it holds ``permission`` (on ``site_id``), else
    raise 401/403. A 403 is audited as ``security.forbidden`` (IA-02)."""
    from flask import g, request

    staff = g.get("staff") if "staff" in g else current_staff()
    try:
        require_permission(staff, permission, site_id)
    except EproError as err:
        if err.status == 403:
            from server.db import get_db, write_tx
            from server.store.audit import Actor, write_audit

            db = get_db()
            with write_tx(db):
                write_audit(db, Actor.staff(staff["id"]), "security.forbidden", entity="route",
                            entity_id=request.endpoint, site_id=staff.get("site_id"),
                            detail={"permission": permission, "object_site_id": site_id,
                                    "method": request.method, "path": request.path})
        raise
    return staff


def staff_required(permission: str) -> Callable[[Callable], Callable]:
    """Require a signed-in staff member holding ``permission``; the row is in ``flask.g.staff``.

    Site scoping of a particular object is the view's job (``enforce(perm, site_id)``) because only
    the view knows which site the object belongs to.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            from flask import g

            g.staff = current_staff()
            enforce(permission)
            return view(*args, **kwargs)

        wrapper.auth_kind = f"staff:{permission}"
        return wrapper

    return decorate
