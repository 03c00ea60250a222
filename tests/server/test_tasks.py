"""Scheduled tasks are plain functions; the serve process runs them with APScheduler."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.db import write_tx
from server.jobs import start_jobs
from server.store.audit import audit_rows
from server.store.participants import get_participant, participant_status, withdraw
from server.tasks import run_all
from server.tasks.compliance import recompute_compliance
from server.tasks.devices import mark_silent_devices
from shared.protocol import load_protocol
from tests.server.helpers import ADMIN, pair, upload
from tests.support.records import make_dose, make_nasal

UTC = timezone.utc
PROTOCOL = load_protocol()


def test_compliance_and_overdue_items_are_recomputed_for_active_participants(client, db):
    dev = pair(client, db)
    day1 = datetime(2025, 3, 1, 9, tzinfo=timezone(timedelta(hours=8)))
    upload(client, dev["token"], [make_dose("S-001", dose_number=1, entered_at=day1),
                                  make_nasal("S-001", entered_at=day1)])
    withdraw(db, "S-101", reason="moved", actor=ADMIN)
    now = datetime(2025, 3, 20, 12, tzinfo=UTC)
    summary = recompute_compliance(db, PROTOCOL, now)
    assert summary["participants"] == 2
    s1 = participant_status(db, get_participant(db, "S-001")["id"])
    assert s1["computed_at"].startswith("2025-03-20")
    assert s1["compliance"]["dose_confirmation"]["done"] == 1
    assert s1["compliance"]["dose_confirmation"]["missed"] >= 2
    assert {"dose:2", "dose:3"} <= {item["key"] for item in s1["overdue"]}
    assert s1["dlt"]["state"] == "closed"
    assert participant_status(db, get_participant(db, "S-101")["id"]) is None
    recompute_compliance(db, PROTOCOL, now + timedelta(days=1))  # recomputed in place
    assert db.execute("SELECT COUNT(*) FROM participant_status").fetchone()[0] == 2


def test_a_silent_device_is_flagged_once_per_silence(client, db):
    dev = pair(client, db)
    seen = datetime(2025, 3, 1, tzinfo=UTC)
    with write_tx(db):
        db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", ["2025-03-01T00:00:00.000Z", dev["device_id"]])
    assert mark_silent_devices(db, 48, seen + timedelta(hours=47))["silent"] == []
    assert mark_silent_devices(db, 48, seen + timedelta(hours=49))["silent"] == [dev["device_id"]]
    assert mark_silent_devices(db, 48, seen + timedelta(hours=60))["silent"] == []
    with write_tx(db):
        db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", ["2025-03-05T00:00:00.000Z", dev["device_id"]])
    assert mark_silent_devices(db, 48, seen + timedelta(days=7))["silent"] == [dev["device_id"]]
    rows = audit_rows(db, action="device.silent")
    assert len(rows) == 2 and rows[0]["actor_kind"] == "system"


def test_run_all_runs_every_task_on_a_database_file(db_path):
    out = run_all(str(db_path), "nct06598202", datetime(2025, 3, 20, tzinfo=UTC))
    assert out["compliance"]["participants"] == 3 and out["devices"] == {"silent": []}


def test_the_scheduler_runs_the_tasks_in_the_background(db_path, db):
    import time

    scheduler = start_jobs({"DB": str(db_path), "PROTOCOL": "nct06598202", "JOBS_INTERVAL_MINUTES": 60})
    try:
        deadline = time.monotonic() + 20
        while db.execute("SELECT COUNT(*) FROM participant_status").fetchone()[0] < 3:
            assert time.monotonic() < deadline, "the first run did not happen"
            time.sleep(0.05)
        assert sorted(job.id for job in scheduler.get_jobs()) == ["als-epro-alerts", "als-epro-list-rows", "als-epro-tasks"]
    finally:
        scheduler.shutdown(wait=True)
