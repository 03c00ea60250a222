"""`als-epro-server demo` builds a marked demo database through the real ingest, and refuses others."""

import json
import subprocess
import sys
from pathlib import Path

from server.db import open_db
from server.demo import is_demo_db

ROOT = Path(__file__).resolve().parents[2]


def cli(db, *args):
    return subprocess.run([sys.executable, "-m", "server", "--db", str(db), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_demo_builds_a_marked_database_with_a_clean_audit_chain(tmp_path):
    db_path = tmp_path / "demo.sqlite"
    out = cli(db_path, "demo", "--json", "--password", "demo-password-123")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["demo"] is True and result["records"] > 100 and len(result["participants"]) == 11
    db = open_db(str(db_path))
    try:
        assert is_demo_db(db)
        stored = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        assert stored == result["records"]
        # every record came in through a paired device, with a receipt time after its entry
        from datetime import datetime
        rows = db.execute("SELECT entered_at, received_at, device_id FROM records").fetchall()
        assert all(dev for _, _, dev in rows)
        assert all(datetime.fromisoformat(rec.replace("Z", "+00:00")) > datetime.fromisoformat(ent)
                   for ent, rec, _ in rows)
    finally:
        db.close()
    verify = cli(db_path, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    # the staff logins work with the given password
    from server.store.staff import authenticate
    db = open_db(str(db_path))
    try:
        pi = authenticate(db, "investigator@demo.als-epro", "demo-password-123", client_addr="test")
        assert pi and pi["name"] == "Dr. Li Wei (demo)"  # the printed name on the demo's sign-offs
    finally:
        db.close()


def test_demo_rebuilds_a_demo_database_and_refuses_any_other(tmp_path):
    demo_db = tmp_path / "demo.sqlite"
    assert cli(demo_db, "demo").returncode == 0
    again = cli(demo_db, "demo", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["replaced"] is True
    real = tmp_path / "real.sqlite"
    assert cli(real, "init").returncode == 0
    assert cli(real, "site", "add", "BJ01", "Real site").returncode == 0
    refused = cli(real, "demo")
    assert refused.returncode == 2
    assert "not a demo database" in refused.stderr
    db = open_db(str(real))
    try:
        assert not is_demo_db(db)
        assert db.execute("SELECT COUNT(*) FROM sites").fetchone()[0] == 1
    finally:
        db.close()


def test_demo_shows_exactly_one_silent_device(tmp_path):
    from server.store.devices import silent_devices

    db_path = tmp_path / "demo.sqlite"
    assert cli(db_path, "demo").returncode == 0
    db = open_db(str(db_path))
    try:
        silent = silent_devices(db, 48)
        assert [(d["name"]) for d in silent] == ["001-002 caregiver laptop"]
    finally:
        db.close()


def test_demo_plants_a_participant_for_each_issue10_rule(tmp_path):
    """``make demo`` data: every new rule raised at least once, with labels and the urgent marking."""
    from server.demo import build_demo
    from server.store.participants import get_participant
    from server.store.reviews import participant_flags
    from shared.protocol import load_protocol

    build_demo(tmp_path / "demo.sqlite", password="demo-password-123")
    db = open_db(str(tmp_path / "demo.sqlite"))
    try:
        protocol = load_protocol()
        seen: dict[str, set[str]] = {}
        for (subject,) in db.execute("SELECT subject FROM participants").fetchall():
            for item in participant_flags(db, protocol, get_participant(db, subject))["flags"]:
                seen.setdefault(item["rule"], set()).add(subject)
                assert getattr(item["flag"], "urgent", False) is protocol.is_urgent(item["rule"])
        for rule, subject in (("respiratory_critical", "001-007"), ("allergic_in_dlt_window", "001-008"),
                              ("swallowing_tube_feeding", "001-009"), ("alsfrs_drop", "001-009"),
                              ("dose_off_schedule", "001-010"), ("day1_to_confirm", "001-011"),
                              ("dose_not_confirmed", "001-011")):
            assert subject in seen.get(rule, set()), rule
        assert seen["day1_to_confirm"] == {"001-011"}           # everyone else's day 1 was confirmed
        labels = {lab for (raw,) in db.execute("SELECT labels FROM records").fetchall() for lab in json.loads(raw)}
        assert {"dose_early", "dose_too_close", "dose_same_day", "inconsistent_epistaxis_help",
                "inconsistent_future_date"} <= labels
    finally:
        db.close()
