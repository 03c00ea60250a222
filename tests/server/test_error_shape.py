"""Every error path answers with the contract's JSON body (contract §2), never HTML, never a 5xx."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server import create_app
from server.clock import utc_now
from server.store.devices import revoke_device
from server.store.pairing import issue_pairing_code
from tests.server.helpers import ADMIN, assert_error, pair, upload
from tests.support.records import make_nasal

PAIR = "/api/v1/devices/pair"
SYNC = "/api/v1/sync/records"


def _raw(client, path, data, content_type="application/json", **kw):
    return client.post(path, data=data, content_type=content_type, **kw)


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v1/sync", "/api/v2/sync/records"])
def test_unknown_paths_are_404(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize("method,path,allowed", [
    ("get", SYNC, "POST"), ("delete", SYNC, "POST"), ("get", PAIR, "POST"),
    ("post", "/api/v1/sync/changes", "GET"), ("put", "/api/v1/openapi.json", "GET"),
])
def test_wrong_method_is_405_with_allow_header(client, method, path, allowed):
    resp = getattr(client, method)(path)
    assert_error(resp, 405, "method_not_allowed")
    assert allowed in {m.strip() for m in resp.headers["Allow"].split(",")}


@pytest.mark.parametrize("data", [b"{", b"not json", b"\xff\xfe", b'{"code": NaN}', b"[" * 100000, b""])
def test_malformed_json_is_400(client, data):
    assert_error(_raw(client, PAIR, data), 400, "request.malformed_json")


@pytest.mark.parametrize("body", [b"[]", b"42", b'"text"', b"null"])
def test_a_body_that_is_not_an_object_is_400_naming_the_body(client, body):
    err = assert_error(_raw(client, PAIR, body), 400, "validation.invalid")
    assert err["errors"][0]["field"] == "_body"


def test_pair_fields_are_checked_and_named(client):
    err = assert_error(client.post(PAIR, json={"code": 5}), 400, "validation.invalid")
    assert {e["field"] for e in err["errors"]} == {"code", "device_name"}


def test_wrong_pairing_code_is_400_used_410_expired_410(client, db):
    assert_error(client.post(PAIR, json={"code": "AAAA-AAAA-AA", "device_name": "pc"}), 400,
                 "pairing.code_invalid")
    code = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    assert client.post(PAIR, json={"code": code, "device_name": "pc"}).status_code == 201
    assert_error(client.post(PAIR, json={"code": code, "device_name": "pc"}), 410, "pairing.code_used")
    old = issue_pairing_code(db, "S-001", "participant", actor=ADMIN, now=utc_now() - timedelta(hours=1))["code"]
    assert_error(client.post(PAIR, json={"code": old, "device_name": "pc"}), 410, "pairing.code_expired")


def test_rate_limited_pairing_is_429(app, client):
    app.config["PAIRING_MAX_FAILURES_PER_ADDRESS"] = 2
    for _ in range(2):
        client.post(PAIR, json={"code": "AAAA-AAAA-AA", "device_name": "pc"})
    assert_error(client.post(PAIR, json={"code": "AAAA-AAAA-AA", "device_name": "pc"}), 429,
                 "pairing.rate_limited")


def test_sync_body_errors_are_400(client, db):
    dev = pair(client, db)
    auth = {"Authorization": f"Bearer {dev['token']}"}
    err = assert_error(client.post(SYNC, json={"client_time": None}, headers=auth), 400, "validation.invalid")
    assert err["errors"][0] == {"field": "records", "rule": "required", "message": err["errors"][0]["message"]}
    assert_error(client.post(SYNC, json={"records": {}}, headers=auth), 400, "validation.invalid")
    err = assert_error(upload(client, dev["token"], [], client_time="yesterday"), 400, "validation.invalid")
    assert err["errors"][0]["field"] == "client_time"
    assert_error(_raw(client, SYNC, b"{", headers=auth), 400, "request.malformed_json")


def test_auth_errors_are_401(client, db):
    assert_error(client.post(SYNC, json={"records": []}), 401, "auth.token_invalid")
    assert_error(client.get("/api/v1/sync/changes?since=0"), 401, "auth.token_invalid")
    dev = pair(client, db)
    revoke_device(db, dev["device_id"], reason="stolen", actor=ADMIN)
    assert_error(upload(client, dev["token"], []), 401, "auth.device_revoked")
    assert_error(client.get("/api/v1/sync/changes", headers={"Authorization": f"Bearer {dev['token']}"}),
                 401, "auth.device_revoked")


def test_size_limits_are_413(app, client, db):
    dev = pair(client, db)
    big = make_nasal("S-001")
    big["payload"]["notes"] = "x" * (3 * 1024 * 1024)
    assert_error(upload(client, dev["token"], [big]), 413, "request.too_large")
    assert_error(client.post(PAIR, data=b" " * (3 * 1024 * 1024), content_type="application/json"), 413,
                 "request.too_large")
    app.config["MAX_RECORDS"] = 1
    assert_error(upload(client, dev["token"], [make_nasal("S-001"), make_nasal("S-001")]), 413,
                 "sync.too_many_records")


def test_bad_cursor_is_400(client, db):
    dev = pair(client, db)
    resp = client.get("/api/v1/sync/changes?since=zz", headers={"Authorization": f"Bearer {dev['token']}"})
    assert_error(resp, 400, "sync.cursor_invalid")


def test_unexpected_failure_is_500_with_the_same_body_and_no_traceback(db_path):
    app = create_app({"DB": str(db_path)})

    @app.get("/api/v1/_boom")
    def _boom():
        raise ZeroDivisionError("secret internals")

    resp = app.test_client().get("/api/v1/_boom")
    body = assert_error(resp, 500, "server.error")
    assert "secret internals" not in resp.get_data(as_text=True) and "Traceback" not in body["error"]


def test_error_text_follows_accept_language(client):
    body = client.post(SYNC, json={"records": []}, headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_json()
    assert body["code"] == "auth.token_invalid" and "设备" in body["error"]
