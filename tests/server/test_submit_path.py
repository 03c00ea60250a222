"""What every submit asks the database, kept cheap: the dose-1 look-up seeks an index, the upload
count is one statement."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.store.devices import count_upload, get_device, revoke_device
from server.store.audit import Actor
from server.store.participants import dose1_administered_at, get_participant
from tests.server.helpers import pair, upload
from tests.support.records import make_batch, make_dose

DAY1 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))


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


def _write_statements(seen: list[str]) -> list[str]:
    """The statements from ``BEGIN IMMEDIATE`` to ``COMMIT`` (the write lock is held meanwhile)."""
    start = next(i for i, s in enumerate(seen) if s.startswith("BEGIN IMMEDIATE"))
    end = next(i for i, s in enumerate(seen) if s == "COMMIT")
    return seen[start:end + 1]


def test_a_one_record_upload_holds_the_write_lock_for_a_dozen_statements_none_a_scan(tmp_path):
    """Every submit of a person pressing Submit runs in the file's write lock, which other uploads
    queue for (group commit): the participant and their timeline are one read, the prefetch one,
    the device's seq and last-heard one, and a single record needs no savepoint (issue 13: twenty
    statements in the lock before). No statement there walks a table or a participant's records."""
    from server.store import records
    from shared.protocol import load_protocol
    from tests.evidence.devices import new_server_db, pair_in_process
    from tests.support.records import make_nasal

    db = new_server_db(tmp_path / "lock.sqlite")
    device = pair_in_process(db)
    protocol = load_protocol()
    for d in range(20):          # a history, so that a walk of it would show in the plans
        records.ingest(db, device, [make_nasal("S-001", entered_at=DAY1 + timedelta(days=d), device_seq=d + 1)],
                       protocol=protocol)
    new = make_nasal("S-001", entered_at=DAY1 + timedelta(days=21), device_seq=21)
    (res,), seen = _traced(db, lambda: records.ingest(db, device, [new], protocol=protocol))
    assert res["status"] == "accepted"
    locked = _write_statements(seen)
    assert len(locked) <= 12, "\n".join(locked)
    # before the lock: nothing (a one-record upload is validated without asking which ids are stored)
    assert seen[0].startswith("BEGIN IMMEDIATE"), seen[:3]
    # and a replay of it is still judged by what is stored: the same receipt, no second copy
    (again,) = records.ingest(db, device, [new], protocol=protocol)
    assert again["status"] == "duplicate" and again["receipt"] == res["receipt"]
    assert db.execute("SELECT COUNT(*) FROM records WHERE id = ?", [new["id"]]).fetchone()[0] == 1
    assert not [s for s in locked if "sqlite_master" in s or "SAVEPOINT" in s], locked
    for sql in locked:
        if sql.lstrip().upper().startswith("SELECT"):
            plan = " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql))
            assert "SCAN records" not in plan, (sql, plan)
            # the chain head: the last row by its INTEGER PRIMARY KEY, which SQLite shows as a scan
            assert "SCAN audit" not in plan or sql.endswith("ORDER BY seq DESC LIMIT 1"), (sql, plan)
    db.close()


def test_the_participant_and_timeline_read_together_equal_the_separate_reads(tmp_path):
    """:func:`participant_with_timeline` (one statement in the write lock) against
    :func:`participant_by_id` and :func:`participant_timeline`: no dose yet, dose 1 not given, given
    twice (the earliest wins), and a study day 1 confirmed by staff."""
    from server.store import records
    from server.store.day1 import confirm_day1
    from server.store.participants import participant_by_id, participant_timeline, participant_with_timeline
    from shared.protocol import load_protocol
    from tests.evidence.devices import new_server_db, pair_in_process

    db = new_server_db(tmp_path / "timeline.sqlite")
    device = pair_in_process(db)
    protocol = load_protocol()
    pid = device["participant_id"]

    def both():
        row = participant_by_id(db, pid)
        return row, participant_timeline(db, row)

    states = [both()]
    assert participant_with_timeline(db, pid) == states[0]
    missed = make_dose("S-001", dose_number=1, given=False, entered_at=DAY1 + timedelta(hours=9), device_seq=1)
    later = make_dose("S-001", dose_number=1, entered_at=DAY1 + timedelta(days=1, hours=9), device_seq=2)
    earlier = make_dose("S-001", dose_number=1, entered_at=DAY1 + timedelta(hours=10), device_seq=3)
    for n, env in enumerate((missed, later, earlier)):
        assert records.ingest(db, device, [env], protocol=protocol)[0]["status"] == "accepted"
        states.append(both())
        assert participant_with_timeline(db, pid) == states[-1], n
    assert states[-1][1].dose1_administered_at is not None
    assert states[-1][1].dose1_administered_at < states[-2][1].dose1_administered_at   # the earliest given
    confirm_day1(db, "S-001", (DAY1 + timedelta(days=2)).date().isoformat(), reason="source", actor=Actor.cli())
    row, timeline = participant_with_timeline(db, pid)
    assert (row, timeline) == both() and timeline.confirmed_day1 == (DAY1 + timedelta(days=2)).date()
    db.close()


def test_a_connection_keeps_the_identity_of_the_file_it_opened(tmp_path):
    """The caches of what a file holds are keyed by :func:`server.db.file_identity`, taken once per
    connection (not a ``stat`` at every upload): a file put at the same path later (a restore) is
    another identity for a new connection, while the old connection, which still reads the file it
    opened, keeps its own."""
    import os

    from server.db import file_identity, open_db

    path = tmp_path / "a.sqlite"
    old = open_db(path)
    before = file_identity(old)
    assert before[1:] == (os.stat(path).st_dev, os.stat(path).st_ino)
    replacement = open_db(tmp_path / "b.sqlite")
    replacement.close()
    os.replace(tmp_path / "b.sqlite", path)
    new = open_db(path)
    assert file_identity(new) != before and file_identity(new)[2] == os.stat(path).st_ino
    assert file_identity(old) == before
    old.close()
    new.close()
