"""What every submit asks the database, kept cheap: the dose-1 look-up seeks an index, the upload
count is one statement."""

from __future__ import annotations

from server.store.devices import count_upload, get_device, revoke_device
from server.store.audit import Actor
from server.store.participants import dose1_administered_at, get_participant
from tests.server.helpers import pair, upload
from tests.support.records import make_batch, make_dose


def _traced(db, call):
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        return call(), seen
    finally:
        db.conn.set_trace_callback(None)


def test_the_dose1_lookup_seeks_the_participants_dose_confirmations(client, db):
    dev = pair(client, db)
    assert upload(client, dev["token"], [*make_batch("S-001", 6), make_dose("S-001")]).status_code == 200
    pid = get_participant(db, "S-001")["id"]
    at, seen = _traced(db, lambda: dose1_administered_at(db, pid))
    assert at is not None
    (sql,) = [s for s in seen if "dose_confirmation" in s]
    plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql))
    assert "records_participant_type (participant_id=? AND type=?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_counting_an_upload_is_one_statement_and_a_revoked_device_gets_no_token(client, db):
    dev = pair(client, db)
    device = get_device(db, dev["device_id"])
    db.execute("BEGIN IMMEDIATE")
    token, seen = _traced(db, lambda: count_upload(db, device, 2))
    assert token is None and len(seen) == 1
    assert count_upload(db, device, 2) is not None                      # the second of every two
    db.execute("COMMIT")
    revoke_device(db, dev["device_id"], reason="lost", actor=Actor.cli())
    db.execute("BEGIN IMMEDIATE")
    assert [count_upload(db, device, 1) for _ in range(2)] == [None, None]
    db.execute("ROLLBACK")
