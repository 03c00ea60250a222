"""Staff sign-in: server-side sessions, cookies, CSRF, rate limits, idle timeout, language, demo banner."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server import create_app
from server.clock import iso, utc_now
from server.db import write_tx
from server.store.audit import Actor, write_audit
from tests.server.helpers import PASSWORD, assert_error
from tests.staff.conftest import HTML, csrf_of, login, post_form


def _audit(db, action: str) -> list[dict]:
    return list(db.query("SELECT * FROM audit WHERE action = ? ORDER BY seq", [action]))


def _cookie(resp, name: str) -> str:
    return next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith(name + "="))


def test_login_opens_a_server_side_session_with_a_safe_cookie_and_is_audited(client, db):
    resp = login(client)
    assert resp.status_code == 303 and resp.headers["Location"] == "/staff/participants"
    cookie = _cookie(resp, "als_epro_staff")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/staff/" in cookie
    assert "Secure" not in cookie  # served on a loopback host (the test client's "localhost")
    token = cookie.split(";")[0].split("=", 1)[1]
    rows = list(db.query("SELECT * FROM staff_sessions"))
    assert len(rows) == 1 and rows[0]["ended_at"] is None and token not in str(rows[0])
    assert _audit(db, "staff.login")[-1]["actor_id"] == str(rows[0]["staff_id"])
    assert client.get("/staff/participants", headers=HTML).status_code == 200


def test_cookie_is_secure_when_not_served_on_loopback(client):
    page = client.get("/staff/login", headers=HTML, base_url="http://staff.site.example")
    resp = client.post("/staff/login", data={"csrf_token": csrf_of(page), "email": "inv@bj01.example",
                                             "password": PASSWORD}, headers=HTML, base_url="http://staff.site.example")
    assert resp.status_code == 303
    assert "Secure" in _cookie(resp, "als_epro_staff")


def test_wrong_password_and_unknown_email_look_the_same_and_are_audited(client, db):
    wrong = login(client, password="not the password at all")
    unknown = login(client, email="nobody@bj01.example")
    assert wrong.status_code == unknown.status_code == 401
    assert "not correct" in wrong.get_data(as_text=True) and "not correct" in unknown.get_data(as_text=True)
    from server.store.security_log import events

    assert len(events(db, "staff.login_failed")) == 2 and not _audit(db, "staff.login_failed")
    assert not list(db.query("SELECT * FROM staff_sessions"))


@pytest.fixture
def strict_app(db_path):
    return create_app({"DB": str(db_path), "TESTING": True, "STAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT": 3,
                       "STAFF_LOGIN_MAX_FAILURES_PER_ADDRESS": 5})


def test_login_is_rate_limited_per_account_even_for_the_right_password(strict_app, db):
    client = strict_app.test_client()
    for _ in range(3):
        assert login(client, password="wrong password again").status_code == 401
    limited = login(client)  # the right password, but the account is locked for the window
    assert limited.status_code == 429 and "Too many attempts" in limited.get_data(as_text=True)
    from server.store.security_log import events

    assert len(events(db, "staff.login_rate_limited")) == 1
    # another account from another address is not affected
    other = strict_app.test_client()
    ok = login(other, "coord@bj01.example", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert ok.status_code == 303


def test_login_is_rate_limited_per_address(strict_app):
    client = strict_app.test_client()
    for i in range(5):
        assert login(client, f"guess{i}@bj01.example", "wrong password again").status_code == 401
    assert login(client, "coord@bj01.example").status_code == 429
    elsewhere = strict_app.test_client()
    assert login(elsewhere, "coord@bj01.example", environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 303


def test_logout_ends_the_session_for_good(client, db):
    login(client)
    token = client.get_cookie("als_epro_staff", path="/staff/").value
    resp = post_form(client, "/staff/participants", "/staff/logout", {})
    assert resp.status_code == 303 and resp.headers["Location"] == "/staff/login"
    assert client.get_cookie("als_epro_staff", path="/staff/") is None
    assert _audit(db, "staff.logout")
    client.set_cookie("als_epro_staff", token, path="/staff/")  # a copied cookie is worthless now
    assert_error(client.get("/staff/participants"), 401, "auth.login_required")


def test_idle_session_ends_and_sign_in_returns_to_the_page(client, db):
    login(client)
    with write_tx(db):
        db.execute("UPDATE staff_sessions SET last_seen_at = ?", [iso(utc_now() - timedelta(minutes=16))])
    resp = client.get("/staff/participants/S-003?x=1", headers=HTML)
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/staff/login?next=%2Fstaff%2Fparticipants%2FS-003%3Fx%3D1")
    assert "reason=idle" in resp.headers["Location"]
    assert _audit(db, "staff.session_timeout")
    page = client.get(resp.headers["Location"], headers=HTML)
    assert "without activity" in page.get_data(as_text=True)
    again = client.post("/staff/login", headers=HTML, data={
        "csrf_token": csrf_of(page), "email": "inv@bj01.example", "password": PASSWORD,
        "next": "/staff/participants/S-003?x=1"})
    assert again.headers["Location"] == "/staff/participants/S-003?x=1"


def test_idle_timeout_is_configurable(db_path):
    app = create_app({"DB": str(db_path), "TESTING": True, "STAFF_IDLE_MINUTES": 1})
    client = app.test_client()
    login(client)
    page = client.get("/staff/participants", headers=HTML).get_data(as_text=True)
    assert 'data-idle-minutes="1"' in page
    from server.db import open_db
    db = open_db(db_path)
    with write_tx(db):
        db.execute("UPDATE staff_sessions SET last_seen_at = ?", [iso(utc_now() - timedelta(seconds=70))])
    db.close()
    assert_error(client.get("/staff/participants"), 401, "auth.login_required")


def test_sign_in_never_redirects_to_another_host(client):
    page = client.get("/staff/login", headers=HTML)
    resp = client.post("/staff/login", headers=HTML, data={
        "csrf_token": csrf_of(page), "email": "inv@bj01.example", "password": PASSWORD,
        "next": "https://evil.example/staff/x"})
    assert resp.headers["Location"] == "/staff/"


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_form_without_its_csrf_token_is_refused(as_role, client, db, token):
    as_role("coordinator")
    data = {"subject": "S-900", "onset": "2024-01", "first_dose": "2026-01-01", "tz": "Asia/Shanghai"}
    if token is not None:
        data["csrf_token"] = token
    assert_error(client.post("/staff/enroll", data=data), 400, "csrf.invalid")
    html = client.post("/staff/enroll", data=data, headers=HTML)
    assert html.status_code == 400 and "The form expired" in html.get_data(as_text=True)
    assert not list(db.query("SELECT * FROM participants WHERE subject = 'S-900'"))


def test_a_csrf_token_of_another_session_is_refused(app, db):
    first, second = app.test_client(), app.test_client()
    login(first)
    login(second, "coord@bj01.example")
    token = csrf_of(first.get("/staff/enroll", headers=HTML))
    resp = second.post("/staff/enroll", data={"csrf_token": token, "subject": "S-901", "onset": "2024-01",
                                              "first_dose": "2026-01-01", "tz": "Asia/Shanghai"})
    assert_error(resp, 400, "csrf.invalid")


def test_language_defaults_from_accept_language_and_is_remembered_per_session(client, db):
    page = client.get("/staff/login", headers={**HTML, "Accept-Language": "zh-CN,zh;q=0.9"})
    body = page.get_data(as_text=True)
    assert '<html lang="zh-CN">' in body and "登录" in body
    login(client, **{"Accept-Language": "zh-CN"})
    assert "受试者" in client.get("/staff/participants", headers=HTML).get_data(as_text=True)
    resp = post_form(client, "/staff/participants", "/staff/language", {"lang": "en", "next": "/staff/participants"})
    assert resp.headers["Location"] == "/staff/participants"
    assert db.execute("SELECT lang FROM staff_sessions").fetchone()[0] == "en"
    english = client.get("/staff/participants", headers={**HTML, "Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "Participants" in english


def test_staff_can_list_their_sessions_and_end_another(app, db):
    here, there = app.test_client(), app.test_client()
    login(here)
    login(there)
    page = here.get("/staff/account/sessions", headers=HTML)
    assert page.get_data(as_text=True).count("/end\"") == 2
    other = max(r["id"] for r in db.query("SELECT id FROM staff_sessions"))
    mine = min(r["id"] for r in db.query("SELECT id FROM staff_sessions"))
    assert other != mine
    resp = post_form(here, "/staff/account/sessions", f"/staff/account/sessions/{other}/end", {})
    assert resp.status_code == 303
    assert_error(there.get("/staff/participants"), 401, "auth.login_required")
    assert here.get("/staff/participants", headers=HTML).status_code == 200
    # someone else's session id is not found, not ended
    stranger = app.test_client()
    login(stranger, "coord@bj01.example")
    page = stranger.get("/staff/account/sessions", headers=HTML)
    resp = stranger.post(f"/staff/account/sessions/{mine}/end", data={"csrf_token": csrf_of(page)})
    assert resp.status_code == 404
    assert db.execute("SELECT ended_at FROM staff_sessions WHERE id = ?", [mine]).fetchone()[0] is None


def test_the_keep_alive_ping_reports_the_session(client):
    assert client.get("/staff/session/ping").get_json()["signed_in"] is False
    login(client)
    assert client.get("/staff/session/ping").get_json() == {"signed_in": True, "idle_minutes": 15}


def test_a_demo_database_says_so_on_every_page(client, db):
    assert "DEMO" not in client.get("/staff/login", headers=HTML).get_data(as_text=True)
    with write_tx(db):
        write_audit(db, Actor.cli(), "demo.created", entity="database", entity_id="demo")
    assert "DEMO — synthetic data" in client.get("/staff/login", headers=HTML).get_data(as_text=True)
    login(client)
    for url in ("/staff/participants", "/staff/participants/S-003", "/staff/enroll"):
        assert "DEMO — synthetic data" in client.get(url, headers=HTML).get_data(as_text=True), url


def test_signed_out_browsers_are_sent_to_sign_in_and_scripts_get_json(client):
    resp = client.get("/staff/participants", headers=HTML)
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/staff/login?next=")
    assert_error(client.get("/staff/participants"), 401, "auth.login_required")
    assert client.get("/staff/", headers=HTML).status_code == 303
