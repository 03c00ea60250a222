"""Role × endpoint matrix built from ``app.url_map``: a new route is covered without editing this file.

Every view must declare who may call it (``server.auth``): ``public``, ``device`` or ``staff:<perm>``.
Device routes refuse a missing, unknown or revoked token and serve a paired device; staff routes
refuse every role lacking the permission (contract §4).
"""

from __future__ import annotations

import pytest
from flask import Blueprint, jsonify

from server import create_app
from server.auth import (
    PERMISSIONS, ROLE_PERMISSIONS, current_staff, enforce, has_permission, set_staff_loader, staff_required,
)
from server.store.audit import audit_rows
from server.store.sites import get_site
from server.store.devices import revoke_device
from server.store.staff import staff_by_email
from tests.server.helpers import ADMIN, STAFF, assert_error, pair

STAFF_EMAIL_BY_ROLE = {role: email for email, (site, role) in STAFF.items() if site == "BJ01"}


def _endpoints(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = rule.rule.replace("<", "").replace(">", "")
            yield method, url, app.view_functions[rule.endpoint]


def _call(client, method, url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(url, method=method, json={} if method != "GET" else None, headers=headers)


def test_every_route_declares_who_may_call_it(app):
    undeclared = [(m, u) for m, u, view in _endpoints(app) if not hasattr(view, "auth_kind")]
    assert undeclared == []


def test_device_routes_refuse_missing_unknown_and_revoked_tokens_and_serve_paired_devices(app, client, db):
    device_routes = [(m, u) for m, u, view in _endpoints(app) if view.auth_kind == "device"]
    assert device_routes, "the sync API has device routes"
    dev = pair(client, db)
    revoked = pair(client, db, name="old laptop")
    revoke_device(db, revoked["device_id"], reason="replaced", actor=ADMIN)
    for method, url in device_routes:
        assert_error(_call(client, method, url), 401, "auth.token_invalid")
        assert_error(_call(client, method, url, "x" * 43), 401, "auth.token_invalid")
        assert_error(_call(client, method, url, revoked["token"]), 401, "auth.device_revoked")
        assert _call(client, method, url, dev["token"]).status_code not in (401, 403)


def test_public_routes_need_no_credentials(app, client):
    for method, url, view in _endpoints(app):
        if view.auth_kind == "public":
            assert _call(client, method, url).status_code not in (401, 403), url


def _with_staff_probe(db_path):
    """The app plus one probe route per permission, so the staff branch of the matrix always runs."""
    app = create_app({"DB": str(db_path), "TESTING": True})
    probes = Blueprint("probes", __name__)
    for perm in PERMISSIONS:
        probes.add_url_rule(f"/_probe/{perm}", f"probe_{perm}",
                            staff_required(perm)(lambda: jsonify({"ok": True})))
    app.register_blueprint(probes)
    return app


@pytest.mark.parametrize("role", sorted(STAFF_EMAIL_BY_ROLE))
def test_staff_routes_follow_the_role_permissions(db_path, db, role):
    app = _with_staff_probe(db_path)
    signed_in = {"row": None}
    set_staff_loader(app, lambda: signed_in["row"])
    client = app.test_client()
    staff_routes = [(m, u, view.auth_kind.split(":", 1)[1]) for m, u, view in _endpoints(app)
                    if view.auth_kind.startswith("staff:")]
    assert staff_routes
    for method, url, perm in staff_routes:
        assert_error(_call(client, method, url), 401, "auth.login_required")
    signed_in["row"] = staff_by_email(db, STAFF_EMAIL_BY_ROLE[role])
    denied = 0
    for method, url, perm in staff_routes:
        resp = _call(client, method, url)
        if perm in ROLE_PERMISSIONS[role]:
            assert resp.status_code not in (401, 403), (role, url)
        else:
            assert_error(resp, 403, "auth.forbidden")
            denied += 1
    # every refusal is audited as a security event (IA-02)
    rows = audit_rows(db, action="security.forbidden", limit=1000)
    assert len(rows) == denied and all(r["actor_id"] == str(signed_in["row"]["id"]) for r in rows)


def test_object_scoping_refuses_another_sites_objects_and_audits_it(db_path, db):
    app = create_app({"DB": str(db_path), "TESTING": True})

    @app.get("/_probe/site/<int:site_id>")
    @staff_required("view")
    def probe_site(site_id):
        enforce("view", site_id)
        return jsonify({"ok": True})

    set_staff_loader(app, lambda: staff_by_email(db, "inv@bj01.example"))
    client = app.test_client()
    own, other = (get_site(db, code)["id"] for code in ("BJ01", "SH02"))
    assert client.get(f"/_probe/site/{own}").status_code == 200
    assert_error(client.get(f"/_probe/site/{other}"), 403, "auth.forbidden")
    assert audit_rows(db, action="security.forbidden")[0]["detail"]["object_site_id"] == other


EXPECTED = {  # contract §4, and issue 12: who may raise, answer and close a data query; alerts admin
    "investigator": {"view", "acknowledge", "correct", "enroll", "pair", "revoke", "signoff", "export", "audit",
                     "query_answer"},
    "coordinator": {"view", "acknowledge", "correct", "enroll", "pair", "revoke", "query_raise", "query_answer"},
    "monitor": {"view", "audit", "export", "query_raise", "query_close"},
    "admin": {"admin_users", "admin_sites", "admin_devices", "admin_alerts"},
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("perm", PERMISSIONS)
def test_role_permission_table_matches_the_contract(db, role, perm):
    staff = {"role": role, "active": 1, "site_id": 1}
    assert has_permission(staff, perm) is (perm in EXPECTED[role])
    # clinical permissions stop at the staff member's own site; admin ones reach every site
    other_site = has_permission(staff, perm, site_id=2)
    assert other_site is (perm in EXPECTED[role] and perm.startswith("admin_"))


def test_disabled_staff_and_nobody_have_no_permission():
    assert not has_permission({"role": "investigator", "active": 0, "site_id": 1}, "view")
    assert not has_permission(None, "view")
    with pytest.raises(ValueError):
        has_permission({"role": "admin", "active": 1}, "fly")


def test_no_staff_loader_means_nobody_is_signed_in(app):
    with app.test_request_context():
        assert current_staff() is None


def test_api_requests_open_no_flask_cookie_session(app, client):
    # devices use bearer tokens: a Flask cookie session would only cost every API request a signing
    # serializer, and a write to it must fail loudly, not sign a cookie; staff pages keep theirs
    from flask import session

    seen = {}

    def probe():
        seen["null"] = app.session_interface.is_null_session(session)
        try:
            session["x"] = 1
            seen["write"] = "kept"
        except RuntimeError:
            seen["write"] = "refused"
        return "ok"

    app.add_url_rule("/api/v1/_probe_session", "probe_api", probe)
    app.add_url_rule("/staff/_probe_session", "probe_staff", probe)
    resp = client.get("/api/v1/_probe_session")
    assert resp.status_code == 200
    assert seen == {"null": True, "write": "refused"}
    assert "Set-Cookie" not in resp.headers
    resp = client.get("/staff/_probe_session")
    assert seen == {"null": False, "write": "kept"}
    assert "session=" in resp.headers.get("Set-Cookie", "")
