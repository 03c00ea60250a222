"""POST /api/v1/sync/records: outcomes final per id, receipts, quarantine, binding, labels (contract §2)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from server.store.audit import audit_for_entity, verify_chain
from server.store.devices import revoke_device
from server.store.participants import withdraw
from server.store.records import open_seq_gaps, record_versions
from tests.server.helpers import ADMIN, assert_error, pair, upload
from tests.support.records import make_alsfrs, make_batch, make_dose, make_nasal

UTC = timezone.utc


def _count(db, table: str) -> int:
    return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_accepted_records_get_receipts_in_request_order(client, db):
    dev = pair(client, db)
    batch = make_batch("S-001", 5)
    resp = upload(client, dev["token"], batch, datetime.now(UTC))
    assert resp.status_code == 200
    body = resp.get_json()
    assert [r["id"] for r in body["results"]] == [e["id"] for e in batch]
    assert {r["status"] for r in body["results"]} == {"accepted"}
    seqs = [r["receipt"]["server_seq"] for r in body["results"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    stored = {r["id"]: r for r in db.query("SELECT id, sha256, received_at, originator FROM records")}
    for env, res in zip(batch, body["results"]):
        from shared.canonical import record_sha256
        assert res["receipt"]["sha256"] == record_sha256(env) == stored[env["id"]]["sha256"]
        assert res["receipt"]["received_at"] == stored[env["id"]]["received_at"]
        assert stored[env["id"]]["originator"] == "participant:S-001"
    assert body["server_time"].endswith("Z")


def test_replay_is_duplicate_with_the_original_receipt_and_stores_nothing(client, db):
    dev = pair(client, db)
    batch = make_batch("S-001", 3)
    first = upload(client, dev["token"], batch).get_json()["results"]
    audit_rows = _count(db, "audit")
    again = upload(client, dev["token"], batch).get_json()["results"]
    assert [r["status"] for r in again] == ["duplicate"] * 3
    assert [r["receipt"] for r in again] == [r["receipt"] for r in first]
    assert _count(db, "records") == 3 and _count(db, "record_versions") == 3
    assert _count(db, "audit") == audit_rows  # a duplicate changes nothing


def test_same_id_with_other_content_is_conflict_and_nothing_is_overwritten(client, db):
    dev = pair(client, db)
    env = make_alsfrs("S-001", score=3)
    upload(client, dev["token"], [env])
    changed = {**env, "payload": {**env["payload"], "items": {**env["payload"]["items"], "1": 0}}}
    res = upload(client, dev["token"], [changed]).get_json()["results"][0]
    assert res["status"] == "conflict" and res["errors"][0]["rule"] == "conflict"
    stored = json.loads(db.execute("SELECT envelope FROM records WHERE id = ?", [env["id"]]).fetchone()[0])
    assert stored == env
    assert [a["action"] for a in audit_for_entity(db, "record", env["id"])] == ["record.accept", "record.conflict"]


def test_server_only_fields_sent_by_a_client_are_ignored(client, db):
    dev = pair(client, db)
    env = make_nasal("S-001")
    forged = {**env, "received_at": "2000-01-01T00:00:00Z", "server_seq": 999999,
              "receipt": {"server_seq": 1}}
    res = upload(client, dev["token"], [forged]).get_json()["results"][0]
    assert res["status"] == "accepted"
    row = db.execute("SELECT received_at, server_seq, envelope FROM records").fetchone()
    assert row[0] != "2000-01-01T00:00:00Z" and row[1] != 999999
    assert json.loads(row[2]) == env
    assert upload(client, dev["token"], [env]).get_json()["results"][0]["status"] == "duplicate"


def test_invalid_record_is_rejected_quarantined_once_and_gets_the_same_errors_again(client, db):
    dev = pair(client, db)
    bad = make_alsfrs("S-001")
    bad["payload"]["items"]["3"] = 9
    del bad["payload"]["items"]["12"]
    good = make_nasal("S-001")
    results = upload(client, dev["token"], [bad, good]).get_json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    fields = {(e["field"], e["rule"]) for e in results[0]["errors"]}
    assert ("payload.items.3", "range") in fields and ("payload.items.12", "required") in fields
    again = upload(client, dev["token"], [bad]).get_json()["results"][0]
    assert again == results[0]
    assert _count(db, "quarantine") == 1
    q = dict(db.query("SELECT * FROM quarantine").__next__())
    assert q["record_id"] == bad["id"] and q["reason"] == "invalid" and json.loads(q["body"]) == bad
    # a fixed copy under the same id is a conflict: the first outcome is final
    fixed = make_alsfrs("S-001", id=bad["id"], device_seq=bad["device_seq"])
    assert upload(client, dev["token"], [fixed]).get_json()["results"][0]["status"] == "conflict"
    assert _count(db, "records") == 1


def test_garbage_entries_are_rejected_per_record_never_5xx(client, db):
    dev = pair(client, db)
    results = upload(client, dev["token"], [42, "x", None, [], {"participant": "S-001"}]).get_json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 5
    assert results[0]["errors"][0]["rule"] == "device_binding"
    assert {e["field"] for e in results[4]["errors"]} >= {"id", "type", "payload"}


def test_foreign_participant_is_rejected_first_and_audited_as_security_event(client, db):
    dev = pair(client, db)
    mine = make_nasal("S-001")
    upload(client, dev["token"], [mine])
    # same id as a stored record, but for another participant: binding wins over the id lookup
    foreign = {**make_nasal("S-002"), "id": mine["id"]}
    res = upload(client, dev["token"], [foreign]).get_json()["results"][0]
    assert res["status"] == "rejected" and res["errors"] == [
        {"field": "participant", "rule": "device_binding", "message": res["errors"][0]["message"]}]
    events = [a for a in audit_for_entity(db, "record", mine["id"]) if a["action"] == "security.device_binding"]
    assert len(events) == 1 and events[0]["detail"]["claimed_participant"] == "S-002"
    assert db.execute("SELECT reason FROM quarantine").fetchone()[0] == "device_binding"
    assert _count(db, "records") == 1


def test_withdrawal_rejects_entries_made_after_it_but_keeps_earlier_ones(client, db):
    dev = pair(client, db)
    withdrawn_at = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    withdraw(db, "S-001", reason="participant's decision", actor=ADMIN, now=withdrawn_at)
    before = make_nasal("S-001", entered_at=withdrawn_at - timedelta(hours=1))
    after = make_nasal("S-001", entered_at=withdrawn_at + timedelta(hours=1))
    results = upload(client, dev["token"], [before, after]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["errors"][0]["rule"] == "participant.withdrawn"


def test_clock_drift_is_stored_and_labelled_never_blocking(client, db):
    dev = pair(client, db)
    now = datetime.now(UTC)
    slow, fine = make_nasal("S-001"), make_alsfrs("S-001")
    r1 = upload(client, dev["token"], [slow], now - timedelta(minutes=20)).get_json()["results"][0]
    r2 = upload(client, dev["token"], [fine], now + timedelta(seconds=30)).get_json()["results"][0]
    assert r1["status"] == r2["status"] == "accepted"
    assert "clock_drift" in r1["labels"] and "clock_drift" not in r2["labels"]
    rows = {r["id"]: r for r in db.query("SELECT id, drift_s, drift_flag, client_time FROM records")}
    assert rows[slow["id"]]["drift_flag"] == 1 and rows[slow["id"]]["drift_s"] < -1100
    assert rows[fine["id"]]["drift_flag"] == 0 and abs(rows[fine["id"]]["drift_s"]) < 120


def test_a_known_device_offset_or_an_entry_from_the_future_is_clock_drift_too(client, db):
    dev = pair(client, db)
    now = datetime.now(UTC)
    offset = make_nasal("S-001", clock_offset_s=-900.0)
    future = make_alsfrs("S-001", entered_at=now + timedelta(hours=2))
    fine = make_alsfrs("S-001", entered_at=now - timedelta(hours=2), clock_offset_s=12.5)
    results = upload(client, dev["token"], [offset, future, fine], now).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 3
    assert ["clock_drift" in r["labels"] for r in results] == [True, True, False]


def test_timing_facts_are_labels_not_rejections(client, db):
    dev = pair(client, db)
    early = make_nasal("S-001", entered_at=datetime(2025, 2, 20, 9, tzinfo=UTC))   # before first dose
    extra = make_dose("S-001", dose_number=9, entered_at=datetime(2025, 3, 1, 10, tzinfo=UTC))
    results = upload(client, dev["token"], [early, extra]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert "before_first_dose" in results[0]["labels"]
    assert "unscheduled_dose_number" in results[1]["labels"]
    stored = json.loads(db.execute("SELECT labels FROM records WHERE id = ?", [extra["id"]]).fetchone()[0])
    assert stored == results[1]["labels"]


def test_same_id_twice_in_one_batch_is_stored_once(client, db):
    dev = pair(client, db)
    env = make_nasal("S-001")
    altered = {**env, "payload": {**env["payload"], "notes": "changed"}}
    results = upload(client, dev["token"], [env, env, altered]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "duplicate", "conflict"]
    assert results[1]["receipt"] == results[0]["receipt"]
    assert _count(db, "records") == 1


def test_device_seq_gaps_are_recorded_and_close_when_the_entry_arrives(client, db):
    dev = pair(client, db)
    batch = make_batch("S-001", 6)
    upload(client, dev["token"], [batch[0], batch[1], batch[4], batch[5]])
    assert open_seq_gaps(db, dev["device_id"]) == [3, 4]
    upload(client, dev["token"], [batch[2]])
    assert open_seq_gaps(db, dev["device_id"]) == [4]
    assert db.execute("SELECT last_device_seq FROM devices WHERE id = ?", [dev["device_id"]]).fetchone()[0] == 6


def test_caregiver_device_is_the_originator_and_respondent_is_kept_as_stated(client, db):
    dev = pair(client, db, role="caregiver")
    env = make_alsfrs("S-001", respondent="participant")
    assert upload(client, dev["token"], [env]).get_json()["results"][0]["status"] == "accepted"
    row = db.execute("SELECT originator, respondent, device_id FROM records").fetchone()
    assert row[0] == dev["originator"] and row[0].startswith("caregiver:")
    assert row[1] == "participant" and row[2] == dev["device_id"]


def test_dose_one_given_updates_the_timeline_in_the_changes_feed(client, db):
    dev = pair(client, db)
    dose = make_dose("S-001", dose_number=1, entered_at=datetime(2025, 3, 2, 9, 0, tzinfo=UTC))
    upload(client, dev["token"], [dose])
    changes = client.get("/api/v1/sync/changes?since=0",
                         headers={"Authorization": f"Bearer {dev['token']}"}).get_json()["changes"]
    timelines = [c["data"] for c in changes if c["kind"] == "timeline"]
    assert timelines[-1]["dose1_administered_at"] is not None
    assert timelines[-1]["study_day1"] == "2025-03-02"


def test_version_one_is_the_payload_as_received(client, db):
    dev = pair(client, db)
    env = make_alsfrs("S-001")
    upload(client, dev["token"], [env])
    versions = record_versions(db, env["id"])
    assert len(versions) == 1 and versions[0]["payload"] == env["payload"]
    assert versions[0]["created_by"] == f"device:{dev['device_id']}"


def test_too_many_records_is_413_and_stores_nothing(app, client, db):
    dev = pair(client, db)
    app.config["MAX_RECORDS"] = 3
    resp = upload(client, dev["token"], make_batch("S-001", 4))
    assert_error(resp, 413, "sync.too_many_records")
    assert _count(db, "records") == 0


def test_body_over_two_mib_is_413_request_too_large(client, db):
    dev = pair(client, db)
    env = make_nasal("S-001")
    env["payload"]["notes"] = "x" * (2 * 1024 * 1024)
    assert_error(upload(client, dev["token"], [env]), 413, "request.too_large")


def test_revoked_device_gets_401_device_revoked_and_a_security_log_row(client, db):
    from server.store.security_log import events

    dev = pair(client, db)
    revoke_device(db, dev["device_id"], reason="lost laptop", actor=ADMIN)
    resp = upload(client, dev["token"], [make_nasal("S-001")])
    assert_error(resp, 401, "auth.device_revoked")
    actions = [a["action"] for a in audit_for_entity(db, "device", dev["device_id"])]
    assert actions == ["device.pair", "device.revoke"]
    assert [e["detail"]["device_id"] for e in events(db, "device.revoked_token_used")] == [dev["device_id"]]
    assert _count(db, "records") == 0
    assert verify_chain(db).ok


def test_unknown_or_missing_token_is_401_token_invalid(client, db):
    assert_error(upload(client, "not-a-token", []), 401, "auth.token_invalid")
    resp = client.post("/api/v1/sync/records", json={"records": []})
    assert_error(resp, 401, "auth.token_invalid")
    resp = client.post("/api/v1/sync/records", json={"records": []}, headers={"Authorization": "Basic abc"})
    assert_error(resp, 401, "auth.token_invalid")
