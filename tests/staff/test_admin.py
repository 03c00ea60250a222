"""Administration: staff accounts with their access history (IA-03), sites, devices across sites."""

from __future__ import annotations

import re

import pytest

from tests.server.helpers import assert_error
from tests.staff.conftest import HTML, login, post_form


def _id(db, email: str) -> int:
    return db.execute("SELECT id FROM staff WHERE email = ?", [email]).fetchone()[0]


def _history_rows(body: str) -> list[str]:
    table = body[body.index("Access history"):]
    table = table[:table.index("</table>")]
    return re.findall(r'<tr><th scope="row">([^<]+)</th>', table)


def test_admin_creates_an_account_and_its_access_history_starts(as_role, client, db):
    as_role("admin")
    resp = post_form(client, "/staff/admin/users/new", "/staff/admin/users/new", {
        "email": "new.coord@sh02.example", "site": "SH02", "role": "coordinator",
        "password": "a long enough password", "password_again": "a long enough password"})
    assert resp.status_code == 303
    new_id = _id(db, "new.coord@sh02.example")
    assert resp.headers["Location"] == f"/staff/admin/users/{new_id}"
    body = client.get(resp.headers["Location"], headers=HTML).get_data(as_text=True)
    assert _history_rows(body) == ["Coordinator"] and "Current" in body
    assert "admin@bj01.example (Administrator)" in body
    listing = client.get("/staff/admin/users", headers=HTML).get_data(as_text=True)
    assert "new.coord@sh02.example" in listing and "inv@sh02.example" in listing
    fresh = client.application.test_client()
    assert login(fresh, "new.coord@sh02.example", "a long enough password").status_code == 303


def test_admin_gives_a_new_account_its_display_name(as_role, client, db):
    as_role("admin")
    form = client.get("/staff/admin/users/new", headers=HTML).get_data(as_text=True)
    assert 'name="name"' in form and "Full name" in form
    long = post_form(client, "/staff/admin/users/new", "/staff/admin/users/new", {
        "email": "li@bj01.example", "name": "x" * 201, "site": "BJ01", "role": "investigator",
        "password": "a long enough password", "password_again": "a long enough password"})
    body = long.get_data(as_text=True)
    assert long.status_code == 400 and "At most 200 characters." in body[body.index('id="error-summary"'):]
    resp = post_form(client, "/staff/admin/users/new", "/staff/admin/users/new", {
        "email": "li@bj01.example", "name": "Dr. Li Wei", "site": "BJ01", "role": "investigator",
        "password": "a long enough password", "password_again": "a long enough password"})
    assert resp.status_code == 303
    assert db.execute("SELECT name FROM staff WHERE email = 'li@bj01.example'").fetchone()[0] == "Dr. Li Wei"
    assert "Dr. Li Wei" in client.get(resp.headers["Location"], headers=HTML).get_data(as_text=True)
    assert "Dr. Li Wei" in client.get("/staff/admin/users", headers=HTML).get_data(as_text=True)


@pytest.mark.parametrize("form,message", [
    ({"password": "short", "password_again": "short"}, "At least 12 characters."),
    ({"password": "a long enough password", "password_again": "another long password"}, "The two passwords differ."),
    ({"email": "inv@bj01.example"}, "already"),
])
def test_account_form_errors_are_named(as_role, client, db, form, message):
    as_role("admin")
    data = {"email": "x@bj01.example", "site": "BJ01", "role": "monitor", "password": "a long enough password",
            "password_again": "a long enough password", **form}
    resp = post_form(client, "/staff/admin/users/new", "/staff/admin/users/new", data)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and message in body[body.index('id="error-summary"'):]
    assert db.execute("SELECT COUNT(*) FROM staff WHERE email = 'x@bj01.example'").fetchone()[0] == 0


def test_role_change_and_disable_close_periods_and_end_sessions_at_once(as_role, client, app, db):
    coord = _id(db, "coord@bj01.example")
    victim = app.test_client()
    assert login(victim, "coord@bj01.example").status_code == 303
    as_role("admin")
    page = f"/staff/admin/users/{coord}"
    refused = post_form(client, page, f"{page}/role", {"role": "monitor", "reason": ""})
    assert refused.status_code == 400 and "Give a reason." in refused.get_data(as_text=True)
    assert post_form(client, page, f"{page}/role", {"role": "monitor", "reason": "moved to monitoring"}).status_code == 303
    assert victim.get("/staff/participants", headers=HTML).status_code == 200  # a monitor still views
    assert_error(victim.post("/staff/enroll", data={}), 403, "auth.forbidden")  # the new role applies now
    assert post_form(client, page, f"{page}/active", {"active": "0", "active_reason": "left the site"}).status_code == 303
    assert_error(victim.get("/staff/participants"), 401, "auth.login_required")
    assert login(app.test_client(), "coord@bj01.example").status_code == 401
    body = client.get(page, headers=HTML).get_data(as_text=True)
    assert _history_rows(body) == ["Coordinator", "Monitor"]
    assert "moved to monitoring" in body and "left the site" in body and "Current" not in body
    ended = db.execute("SELECT end_reason FROM staff_sessions WHERE staff_id = ?", [coord]).fetchall()
    assert [r[0] for r in ended] == ["staff_disabled"]


def test_an_admin_cannot_disable_their_own_account(as_role, client, db):
    me = _id(db, "admin@bj01.example")
    as_role("admin")
    page = f"/staff/admin/users/{me}"
    assert f"{page}/active" not in client.get(page, headers=HTML).get_data(as_text=True)
    resp = post_form(client, page, f"{page}/active", {"active": "0", "active_reason": "oops"})
    assert resp.status_code == 400 and "own account" in resp.get_data(as_text=True)
    assert db.execute("SELECT active FROM staff WHERE id = ?", [me]).fetchone()[0] == 1


def test_sites_are_listed_and_added(as_role, client, db):
    as_role("admin")
    body = client.get("/staff/admin/sites", headers=HTML).get_data(as_text=True)
    assert "BJ01" in body and "SH02" in body
    assert post_form(client, "/staff/admin/sites", "/staff/admin/sites", {"code": "GZ03", "name": "Third"}).status_code == 303
    dup = post_form(client, "/staff/admin/sites", "/staff/admin/sites", {"code": "GZ03", "name": "Again"})
    assert dup.status_code == 400
    assert db.execute("SELECT COUNT(*) FROM sites WHERE code = 'GZ03'").fetchone()[0] == 1


def test_admin_lists_devices_of_every_site_and_revokes_with_a_reason(as_role, client, db):
    other = db.execute("SELECT d.id FROM devices d JOIN participants p ON p.id = d.participant_id"
                       " WHERE p.subject = 'S-102' LIMIT 1").fetchone()[0]
    as_role("admin")
    body = client.get("/staff/admin/devices", headers=HTML).get_data(as_text=True)
    assert "S-003" in body and "S-102" in body and "SH02" in body
    page = f"/staff/admin/devices/{other}/revoke"
    resp = post_form(client, page, page, {"reason": "reported stolen"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/staff/admin/devices"
    row = db.execute("SELECT revoked_reason FROM devices WHERE id = ?", [other]).fetchone()
    assert row[0] == "reported stolen"
    actor = db.execute("SELECT actor_id FROM audit WHERE action = 'device.revoke' ORDER BY seq DESC").fetchone()[0]
    assert actor == str(_id(db, "admin@bj01.example"))


@pytest.mark.parametrize("role", ["investigator", "coordinator", "monitor"])
def test_clinical_roles_have_no_admin_pages(as_role, client, role):
    as_role(role)
    for url in ("/staff/admin/users", "/staff/admin/users/new", "/staff/admin/sites", "/staff/admin/devices"):
        assert_error(client.get(url), 403, "auth.forbidden")
