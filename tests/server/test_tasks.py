"""Scheduled tasks are plain functions; the serve process runs them with APScheduler."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.db import write_tx
from server.jobs import start_jobs
from server.store.audit import audit_rows
from server.store.participants import get_participant, participant_by_id, participant_status, withdraw
from server.store.reviews import participant_flags
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


def _from_scratch(db, protocol, now):
    """Every active participant's compliance, overdue items and DLT state computed anew at ``now``."""
    import json

    from server.store.list_summaries import record_views
    from server.store.participants import participant_timeline
    from shared.schedule import Entry, compliance, compute_schedule, dlt_status

    out = {}
    for p in db.execute("SELECT id FROM participants WHERE status = 'active'").fetchall():
        participant = participant_by_id(db, p[0])
        timeline = participant_timeline(db, participant)
        items = compute_schedule(protocol, timeline, now,
                                 [Entry.from_envelope(r["current"]) for r in record_views(db, p[0])])
        out[p[0]] = (json.dumps(compliance(items), sort_keys=True),
                     json.dumps([i.as_dict() for i in items if i.status in ("late", "missed")]),
                     json.dumps(dlt_status(protocol, timeline, now).as_dict()))
    return out


def test_each_run_recomputes_only_what_moved_and_always_holds_the_figures_of_now(tmp_path):
    """Rows are recomputed when the participant's data moves, at its local midnight and at each DLT
    window day; between those a run recomputes nothing, and the rows always equal figures computed
    from scratch at that moment."""
    from server.store.reviews import recompute_flag_counts
    from server.store.records import ingest
    from server.store.versions import correct_record
    from server.store.audit import Actor
    from tests.evidence.devices import new_server_db, pair_in_process

    db = new_server_db(tmp_path / "tasks.sqlite", subjects=("S-001", "S-002", "S-003"), first_dose="2025-03-01")
    db.execute("UPDATE participants SET tz = 'America/New_York' WHERE subject = 'S-003'")
    device = pair_in_process(db)
    cst = timezone(timedelta(hours=8))
    day1 = datetime(2025, 3, 1, 9, 17, 3, 250000, tzinfo=cst)
    sent = ingest(db, device, [make_dose("S-001", dose_number=1, entered_at=day1)]
                  + [make_nasal("S-001", day=(day1 + timedelta(days=d)).date(), entered_at=day1 + timedelta(days=d))
                     for d in (0, 1, 2, 4)], protocol=PROTOCOL, now=day1)
    start = datetime(2025, 2, 27, 0, 0, tzinfo=UTC)
    recomputed = []
    for step in range(0, 24 * 20, 5):                      # every 5 hours for 20 days
        now = start + timedelta(hours=step)
        if step == 24 * 6:                                 # a correction, then a withdrawal
            correct_record(db, sent[1]["id"], {"symptoms.headache": 3}, reason="typo", requested_by="participant",
                           actor=Actor.cli(), protocol=PROTOCOL, now=now)
        if step == 24 * 9:
            withdraw(db, "S-002", reason="moved", actor=ADMIN, now=now)
        summary = recompute_compliance(db, PROTOCOL, now)
        recomputed.append(summary["recomputed"])
        rows = {r[0]: tuple(r[1:]) for r in db.execute(
            "SELECT s.participant_id, s.compliance, s.overdue, s.dlt FROM participant_status s"
            " JOIN participants p ON p.id = s.participant_id WHERE p.status = 'active'")}
        assert rows == _from_scratch(db, PROTOCOL, now), now
        again = recompute_compliance(db, PROTOCOL, now + timedelta(minutes=15))
        if (now + timedelta(minutes=15)).astimezone(cst).date() == now.astimezone(cst).date():
            assert again["recomputed"] <= 1                 # at most S-003, whose midnight is New York's
        recompute_flag_counts(db, PROTOCOL, now)
        cached = {r[0]: dict(zip(("open", "open_high", "changed", "acknowledged", "total"), r[1:])) for r in db.execute(
            "SELECT participant_id, open, open_high, changed, acknowledged, total FROM flag_counts")}
        assert cached == {pid: {k: v for k, v in participant_flags(db, PROTOCOL, participant_by_id(db, pid),
                                                                    now=now)["counts"].items() if k in cached[pid]}
                          for (pid,) in db.execute("SELECT id FROM participants")}, now
    # most runs recompute nobody or one participant; days and DLT window days make some recompute
    assert recomputed[0] == 3 and sum(recomputed) < len(recomputed) * 3 / 2
    db.close()
