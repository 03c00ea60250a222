"""Accounts, roles, identifiers and unauthenticated noise, against a real server process (issue 16,
items 4–7 and 9; issue 11 "Passwords" and staff session lifetimes).

Staff pages are driven over HTTP with a cookie session (``requests``) as a browser would: GET the form
for its CSRF token, POST it with the page's own Origin.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from datetime import timedelta

import pytest
import requests

from tests.support.live_server import REPO_ROOT, LiveServer
from tests.support.records import make_nasal

pytestmark = pytest.mark.e2e

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html"}
ADMIN, ADMIN_PW = "admin@site.example", "kestrel pass phrase 7391 for site"
ROLES = ("investigator", "coordinator", "monitor", "admin")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    env = {"ALS_EPRO_SECURITY_LOG_MAX_ROWS": "100", "ALS_EPRO_PAIRING_MAX_FAILURES_PER_ADDRESS": "100000",
           "ALS_EPRO_PAIRING_MAX_FAILURES_GLOBAL": "100000", "ALS_EPRO_STAFF_LOGIN_MAX_FAILURES_PER_ADDRESS": "100000"}
    with LiveServer(tmp_path_factory.mktemp("accounts"), subjects=("S-001",), env=env) as server:
        server.cli("staff", "add", ADMIN, "--site", server.site, "--role", "admin", "--password-set-by-holder",
                   input=ADMIN_PW + "\n")
        yield server


def rows(srv, sql, params=()):
    con = sqlite3.connect(srv.db_path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


class Browser:
    def __init__(self, srv):
        self.srv, self.s = srv, requests.Session()

    def get(self, path):
        return self.s.get(self.srv.url + path, headers=HTML, allow_redirects=False, timeout=30)

    def post(self, page, path, data, origin=None):
        form = self.s.get(self.srv.url + page, headers=HTML, timeout=30)
        token = CSRF.search(form.text).group(1)
        headers = {**HTML, "Origin": origin or self.srv.url}
        return self.s.post(self.srv.url + path, data={"csrf_token": token, **data}, headers=headers,
                           allow_redirects=False, timeout=30)

    def login(self, email, password):
        return self.post("/staff/login", "/staff/login", {"email": email, "password": password,
                                                          "next": "/staff/"})


def _staff_id(srv, email):
    return rows(srv, "SELECT id FROM staff WHERE email = ?", [email])[0][0]


def _add(srv, email, role, password, holder=True):
    args = ["staff", "add", email, "--site", srv.site, "--role", role]
    return srv.cli(*args, *(["--password-set-by-holder"] if holder else []), input=password + "\n")


# --- item 4: roles -------------------------------------------------------------------------------

def test_nobody_changes_their_own_role_on_any_path(srv):
    admin = Browser(srv)
    assert admin.login(ADMIN, ADMIN_PW).status_code == 303
    me = _staff_id(srv, ADMIN)
    for role in ROLES:
        resp = admin.post(f"/staff/admin/users/{me}", f"/staff/admin/users/{me}/role",
                          {"role": role, "reason": "I want to sign"})
        assert resp.status_code in (403, 409), (role, resp.status_code)
    assert rows(srv, "SELECT role FROM staff WHERE id = ?", [me]) == [("admin",)]


def test_admin_and_clinical_roles_never_meet_in_one_account_form_or_cli(srv):
    admin = Browser(srv)
    assert admin.login(ADMIN, ADMIN_PW).status_code == 303
    for i, start in enumerate(ROLES):
        email = f"r{i}@site.example"
        _add(srv, email, start, f"role test pass phrase {i} heron")
        sid = _staff_id(srv, email)
        for target in ROLES:
            crosses = (start == "admin") != (target == "admin")
            resp = admin.post(f"/staff/admin/users/{sid}", f"/staff/admin/users/{sid}/role",
                              {"role": target, "reason": "test"})
            assert resp.status_code in ((400, 409) if crosses else (303,)), (start, target, resp.status_code)
            cli = srv.cli("staff", "role", email, target, "--reason", "test", json=False, check=False)
            assert (cli.returncode != 0) == crosses, (start, target, cli.stderr)
            expected = start if crosses else target
            assert rows(srv, "SELECT role FROM staff WHERE id = ?", [sid]) == [(expected,)]
            if not crosses:  # back to the start for the next target
                srv.cli("staff", "role", email, start, "--reason", "back")


# --- item 5 and issue 11: passwords ----------------------------------------------------------------

def test_a_password_set_by_someone_else_must_be_changed_before_anything_else(srv):
    email, temporary = "pi@site.example", "temporary pass phrase 4417 osprey"
    _add(srv, email, "investigator", temporary, holder=False)
    pi = Browser(srv)
    assert pi.login(email, temporary).status_code == 303
    for path in ("/staff/", "/staff/participants", "/staff/participants/S-001", "/staff/account/sessions"):
        resp = pi.get(path)
        assert resp.status_code == 303 and resp.headers["Location"].endswith("/staff/account/password"), path
    weak = {"123456789012": "password.common", "qwertyuiopasdfgh": "password.common",
            "pi@site.example-2025": "password.personal", "short": "length"}
    for new, rule in weak.items():
        resp = pi.post("/staff/account/password", "/staff/account/password",
                       {"current_password": temporary, "new_password": new, "new_password_again": new})
        assert resp.status_code == 400, (new, rule)
    own = "only the investigator knows 5521 ibis"
    resp = pi.post("/staff/account/password", "/staff/account/password",
                   {"current_password": temporary, "new_password": own, "new_password_again": own})
    assert resp.status_code == 303
    assert pi.get("/staff/participants").status_code == 200
    # the password the admin knew no longer signs in; the holder's does
    assert Browser(srv).login(email, temporary).status_code == 401
    assert Browser(srv).login(email, own).status_code == 303
    sid = _staff_id(srv, email)
    actions = [a for (a,) in rows(srv, "SELECT action FROM audit WHERE entity = 'staff' AND entity_id = ?"
                                       " ORDER BY seq", [str(sid)])]
    assert actions[0] == "staff.create" and "staff.password_change" in actions
    change = json.loads(rows(srv, "SELECT detail FROM audit WHERE action = 'staff.password_change'"
                                  " AND entity_id = ?", [str(sid)])[0][0])
    assert change["reason"] == "required" and own not in json.dumps(change)


def test_an_admin_reset_ends_sessions_and_forces_a_change_self_service_change_works(srv):
    email, first = "coord2@site.example", "coordinator pass phrase 8812 egret"
    _add(srv, email, "coordinator", first)
    user = Browser(srv)
    assert user.login(email, first).status_code == 303
    second = "coordinator changed phrase 9034 crane"
    resp = user.post("/staff/account/password", "/staff/account/password",
                     {"current_password": first, "new_password": second, "new_password_again": second})
    assert resp.status_code == 303
    admin = Browser(srv)
    assert admin.login(ADMIN, ADMIN_PW).status_code == 303
    sid, temporary = _staff_id(srv, email), "reset temporary phrase 6650 plover"
    resp = admin.post(f"/staff/admin/users/{sid}", f"/staff/admin/users/{sid}/password",
                      {"temporary_password": temporary, "temporary_password_again": temporary,
                       "reset_reason": "forgot password (phone call)"})
    assert resp.status_code == 303
    assert user.get("/staff/participants").status_code in (303, 401)   # signed out by the reset
    again = Browser(srv)
    assert again.login(email, temporary).status_code == 303
    assert again.get("/staff/participants").headers["Location"].endswith("/staff/account/password")
    actions = [a for (a,) in rows(srv, "SELECT action FROM audit WHERE entity_id = ? AND action LIKE"
                                       " 'staff.password%' ORDER BY seq", [str(sid)])]
    assert actions == ["staff.password_change", "staff.password_reset"]
    # nobody resets their own password through the admin path
    me = _staff_id(srv, ADMIN)
    resp = admin.post(f"/staff/admin/users/{sid}", f"/staff/admin/users/{me}/password",
                      {"temporary_password": temporary, "temporary_password_again": temporary, "reset_reason": "x"})
    assert resp.status_code == 403


def test_argon2_parameters_and_rehash_on_login(srv):
    from argon2 import PasswordHasher

    email, password = "old@site.example", "a legacy hash phrase 1299 tern"
    _add(srv, email, "monitor", password)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)
    con = sqlite3.connect(srv.db_path)
    con.execute("UPDATE staff SET password_hash = ? WHERE email = ?", [weak, email])
    con.commit()
    con.close()
    assert Browser(srv).login(email, password).status_code == 303
    (new_hash,) = rows(srv, "SELECT password_hash FROM staff WHERE email = ?", [email])[0]
    assert new_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert rows(srv, "SELECT COUNT(*) FROM audit WHERE action = 'staff.password_rehash'")[0][0] >= 1


# --- item 6: unauthenticated noise -------------------------------------------------------------------

def test_unauthenticated_failures_do_not_grow_the_audit_trail(srv):
    from server.db import open_db
    from server.store.security_log import SETTINGS, counted, flush_summaries

    revoked = srv.pair("S-001", "participant")
    srv.cli("device", "revoke", revoked["device_id"], "--reason", "lost")
    before = rows(srv, "SELECT MAX(seq) FROM audit")[0][0]
    n = 60
    for i in range(n):
        srv.request("POST", "/api/v1/devices/pair", {"code": f"ZZZZ-ZZZZ-{i:02d}"[:12], "device_name": "x"})
        srv.request("POST", "/api/v1/sync/records", {"records": [], "client_time": None}, token=revoked["token"])
        Browser(srv).login(f"nobody{i}@site.example", "not the password at all")
    # not one permanent row per request: at most the summaries of intervals that closed meanwhile
    new = rows(srv, "SELECT action, COUNT(*) FROM audit WHERE seq > ? GROUP BY action", [before])
    assert set(a for a, _ in new) <= {"security.summary"} and sum(c for _, c in new) <= 10, new
    kinds = dict(rows(srv, "SELECT kind, SUM(count) FROM security_counters GROUP BY kind"))
    assert kinds["pairing.failed"] >= n and kinds["device.revoked_token_used"] >= n
    assert kinds["staff.login_failed"] >= n
    assert rows(srv, "SELECT COUNT(*) FROM security_events")[0][0] <= 100 + SETTINGS["prune_every"]
    # closed intervals become one audited summary row per kind, counts exact
    from datetime import datetime, timezone

    db = open_db(srv.db_path)
    try:
        written = flush_summaries(db, now=datetime.now(timezone.utc) + timedelta(hours=1))
        summaries = [json.loads(d) for (d,) in db.execute("SELECT detail FROM audit WHERE action = 'security.summary'")]
        assert written >= 3 and sum(s["count"] for s in summaries if s["kind"] == "pairing.failed") \
            == counted(db, "pairing.failed")
    finally:
        db.close()
    assert rows(srv, "SELECT COUNT(*) FROM audit WHERE seq > ? AND action != 'security.summary'", [before]) == [(0,)]


def test_a_password_typed_as_the_email_is_kept_nowhere(srv):
    sentinel = "Typed-Into-Email-Field-7f3a9c"
    assert Browser(srv).login(sentinel, "whatever password here").status_code == 401
    con = sqlite3.connect(srv.db_path)
    try:
        for table in ("audit", "security_events", "security_counters", "staff_login_attempts"):
            text = json.dumps(con.execute(f"SELECT * FROM {table}").fetchall())
            assert sentinel.lower() not in text.lower(), table
    finally:
        con.close()


# --- item 7: identifiers -----------------------------------------------------------------------------

BAD_CODES = ["../../etc", "..", "a/b", "a\\b", "BJ\r\nX-Injected: 1", "BJ 01", "", " ", "x" * 17, "-BJ", ".BJ",
             "BJ\x00", "北京", "BJ;rm", "BJ%2F..", "B\nJ"]


def test_bad_site_codes_are_refused_on_every_path(srv):
    admin = Browser(srv)
    assert admin.login(ADMIN, ADMIN_PW).status_code == 303
    for code in BAD_CODES:
        if "\x00" not in code:  # a NUL cannot be an argument at all
            cli = srv.cli("site", "add", code, "Some site", json=False, check=False)
            assert cli.returncode != 0, repr(code)
        resp = admin.post("/staff/admin/sites", "/staff/admin/sites", {"code": code, "name": "Some site"})
        assert resp.status_code == 400, repr(code)
        assert rows(srv, "SELECT COUNT(*) FROM sites WHERE code = ?", [code.strip()])[0][0] == 0, repr(code)


@pytest.mark.parametrize("subject,email", [("../S", "a@b@c"), ("S 1", "no-at-sign"), ("S\r\n1", "x@y\r\n.z"),
                                           ("S/1", "spa ce@site.example"), ("", "<x>@site.example")])
def test_bad_subject_ids_and_emails_are_refused(srv, subject, email):
    assert srv.cli("participant", "enroll", subject, "--site", srv.site, "--onset", "2023-05",
                   "--first-dose", "2025-03-01", json=False, check=False).returncode != 0
    assert srv.cli("staff", "add", email, "--site", srv.site, "--role", "monitor",
                   input="a long enough pass phrase 1\n", json=False, check=False).returncode != 0


def test_a_legacy_unsafe_site_code_never_builds_a_path(srv, tmp_path):
    con = sqlite3.connect(srv.db_path)
    con.execute("INSERT INTO sites (code, name, created_at) VALUES ('../../escape', 'legacy', '2025-01-01T00:00:00Z')")
    site_id = con.execute("SELECT id FROM sites WHERE code = '../../escape'").fetchone()[0]
    con.commit()
    con.close()
    from argon2 import PasswordHasher

    con = sqlite3.connect(srv.db_path)
    con.execute("INSERT INTO staff (email, site_id, role, password_hash, active, created_at) VALUES (?, ?, ?, ?, 1, ?)",
                ["legacy@site.example", site_id, "investigator", PasswordHasher().hash("legacy pass phrase 0001"),
                 "2025-01-01T00:00:00Z"])
    con.commit()
    con.close()
    user = Browser(srv)
    assert user.login("legacy@site.example", "legacy pass phrase 0001").status_code == 303
    resp = user.post("/staff/exports", "/staff/exports", {"formats": "csv"})
    assert resp.status_code == 409
    assert not (srv.db_path.parent.parent / "escape").exists()


# --- item 9: smaller ones ----------------------------------------------------------------------------

def test_csrf_refuses_another_origin_even_with_a_valid_token(srv):
    admin = Browser(srv)
    assert admin.login(ADMIN, ADMIN_PW).status_code == 303
    for origin in ("https://evil.example", "null", srv.url.replace("127.0.0.1", "localhost")):
        resp = admin.post("/staff/admin/sites", "/staff/admin/sites", {"code": "EV1", "name": "x"}, origin=origin)
        assert resp.status_code == 400, origin
    assert rows(srv, "SELECT COUNT(*) FROM sites WHERE code = 'EV1'")[0][0] == 0


def test_a_reused_device_seq_is_labelled_and_audited(srv):
    token = srv.pair("S-001", "participant")["token"]
    first, second = make_nasal("S-001", device_seq=7), make_nasal("S-001", device_seq=7)
    status, body = srv.request("POST", "/api/v1/sync/records", {"records": [first], "client_time": None}, token=token)
    assert status == 200 and "device_seq_reused" not in body["results"][0]["labels"]
    status, body = srv.request("POST", "/api/v1/sync/records", {"records": [second], "client_time": None}, token=token)
    assert body["results"][0]["status"] == "accepted"
    assert "device_seq_reused" in body["results"][0]["labels"]
    detail = json.loads(rows(srv, "SELECT detail FROM audit WHERE action = 'sync.device_seq_reused' AND entity_id = ?",
                             [second["id"]])[0][0])
    assert detail["first_record_id"] == first["id"] and detail["device_seq"] == 7


def test_a_database_made_outside_the_unit_is_private_from_the_start(tmp_path):
    db = tmp_path / "fresh.sqlite"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALS_EPRO_")}, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(["sh", "-c", f'umask 022; exec "{sys.executable}" -m server --db "{db}" init'],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    con = sqlite3.connect(db)   # keep it open so the -wal and -shm files exist
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS t (x)")
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    con.close()


def test_staff_sessions_end_when_idle_and_after_their_absolute_lifetime(srv):
    """Both lifetimes come from the settings (STAFF_IDLE_MINUTES, STAFF_SESSION_MAX_MINUTES): a session
    kept busy still ends at the absolute limit; a quiet one at the idle limit. Both are audited."""
    from datetime import datetime, timezone

    from server.db import open_db
    from server.staff.sessions import open_session, resolve

    db = open_db(srv.db_path)
    try:
        sid = _staff_id(srv, ADMIN)
        start = datetime.now(timezone.utc)
        token, _ = open_session(db, sid, now=start)
        t = start
        for _ in range(11):   # a request every 10 minutes for 110 minutes: never idle
            t += timedelta(minutes=10)
            assert resolve(db, token, idle_minutes=15, absolute_minutes=120, now=t).staff is not None
        t += timedelta(minutes=11)
        assert resolve(db, token, idle_minutes=15, absolute_minutes=120, now=t).ended == "expired"
        quiet, _ = open_session(db, sid, now=start)
        assert resolve(db, quiet, idle_minutes=15, absolute_minutes=120,
                       now=start + timedelta(minutes=16)).ended == "idle"
        reasons = [json.loads(d)["reason"] for (d,) in db.execute(
            "SELECT detail FROM audit WHERE entity = 'staff' AND entity_id = ? AND action IN"
            " ('staff.session_end', 'staff.session_timeout') ORDER BY seq DESC LIMIT 2", [str(sid)])]
        assert sorted(reasons) == ["expired", "idle"]
    finally:
        db.close()
