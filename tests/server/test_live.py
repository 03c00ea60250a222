"""The sync path against a real ``als-epro-server serve`` process on 127.0.0.1 (waitress)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from shared.canonical import record_sha256
from tests.support.live_server import LiveServer
from tests.support.records import make_alsfrs, make_batch, make_dose, make_nasal

pytestmark = pytest.mark.e2e
SYNC = "/api/v1/sync/records"


@pytest.fixture(scope="module")
def srv():
    with LiveServer(subjects=("S-001", "S-002")) as server:
        yield server


def _sync(srv, token, records):
    return srv.request("POST", SYNC, {"records": records, "client_time": datetime.now(timezone.utc).isoformat()},
                       token=token)


def test_pair_upload_replay_crash_restart_and_revoke(srv):
    participant = srv.pair("S-001", "participant", device_name="home pc")
    caregiver = srv.pair("S-001", "caregiver", device_name="daughter's laptop")
    assert caregiver["originator"].startswith("caregiver:") and participant["originator"] == "participant:S-001"

    batch = make_batch("S-001", 20)
    status, body = _sync(srv, participant["token"], batch)
    assert status == 200 and [r["status"] for r in body["results"]] == ["accepted"] * 20
    receipts = [r["receipt"] for r in body["results"]]
    assert [r["sha256"] for r in receipts] == [record_sha256(e) for e in batch]

    dose = make_dose("S-001", dose_number=1)
    status, body = _sync(srv, caregiver["token"], [dose])
    assert body["results"][0]["status"] == "accepted"

    srv.kill()  # SIGKILL: nothing committed may be lost
    srv.restart()
    status, body = _sync(srv, participant["token"], batch)
    assert [r["status"] for r in body["results"]] == ["duplicate"] * 20
    assert [r["receipt"] for r in body["results"]] == receipts

    status, body = srv.request("GET", "/api/v1/sync/changes?since=0", token=caregiver["token"])
    assert status == 200 and body["changes"][0]["kind"] == "protocol"
    assert [c for c in body["changes"] if c["kind"] == "timeline"][-1]["data"]["dose1_administered_at"]

    srv.cli("device", "revoke", participant["device_id"], "--reason", "lost laptop")
    status, body = _sync(srv, participant["token"], [make_nasal("S-001")])
    assert status == 401 and body["code"] == "auth.device_revoked"
    assert _sync(srv, caregiver["token"], [make_alsfrs("S-001")])[1]["results"][0]["status"] == "accepted"
    assert srv.cli("audit", "verify")["ok"] is True


def test_concurrent_uploads_of_one_batch_over_http_store_one_copy(srv):
    dev = srv.pair("S-002", "participant")
    batch = make_batch("S-002", 300)
    results: list = [None, None]
    start = threading.Barrier(2, timeout=30)

    def worker(i):
        start.wait()
        results[i] = _sync(srv, dev["token"], batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    (s1, b1), (s2, b2) = results
    assert s1 == s2 == 200
    for a, b in zip(b1["results"], b2["results"]):
        assert {a["status"], b["status"]} == {"accepted", "duplicate"} and a["receipt"] == b["receipt"]
    import sqlite3
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as conn:
        ids = [e["id"] for e in batch]
        count = conn.execute(f"SELECT COUNT(*) FROM records WHERE id IN ({','.join('?' * len(ids))})", ids).fetchone()
    assert count == (300,)


def test_errors_over_real_http_keep_the_contract_shape(srv):
    status, body = srv.request("GET", SYNC)
    assert status == 405 and body["code"] == "method_not_allowed"
    status, body = srv.request("GET", "/api/v1/missing")
    assert status == 404 and body["ok"] is False
    status, body = srv.request("POST", "/api/v1/devices/pair", {"code": "AAAA-AAAA-AA", "device_name": "x"})
    assert status == 400 and body["code"] == "pairing.code_invalid"
    dev = srv.pair("S-002", "caregiver")
    big = make_nasal("S-002")
    big["payload"]["notes"] = "x" * (2 * 1024 * 1024)
    status, body = _sync(srv, dev["token"], [big])
    assert status == 413 and body["code"] == "request.too_large"
    status, body = srv.request("GET", "/api/v1/openapi.json")
    assert status == 200 and "/sync/records" in body["paths"]


def test_sigterm_stops_the_server_cleanly():
    with LiveServer(subjects=("S-001",)) as server:
        proc = server.proc
        server.terminate()
        assert proc.returncode == 0 and not server.running
