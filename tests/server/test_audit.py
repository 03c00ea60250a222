"""The audit trail: same transaction, append-only, hash-chained, verified, secret-free (AT-01..AT-10)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from server import create_app
from server.db import write_tx
from server.store import participants as participants_store
from server.store.audit import Actor, audit_rows, verify_chain, write_audit
from server.store.participants import enroll
from server.store.staff import authenticate
from tests.server.helpers import ADMIN, PASSWORD, pair, upload
from tests.support.live_server import REPO_ROOT
from tests.support.records import make_nasal


def _cli(db_path, *args):
    return subprocess.run([sys.executable, "-m", "server", "--db", str(db_path), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def _tamper(db, sql, params=()):
    """An edit made outside the application: drop the guard, change the row, put the guard back."""
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    with write_tx(db):
        db.execute(sql, params)


def test_seeded_chain_verifies_and_cli_says_ok(db, db_path):
    report = verify_chain(db)
    assert report.ok and report.rows > 5
    out = _cli(db_path, "--json", "audit", "verify")
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True


def test_a_tampered_row_is_named_by_audit_verify(db, db_path):
    _tamper(db, "UPDATE audit SET detail = ? WHERE seq = 3", ['{"role": "admin"}'])
    report = verify_chain(db)
    assert not report.ok and report.first_bad_seq == 3
    out = _cli(db_path, "audit", "verify")
    assert out.returncode != 0 and "row 3" in out.stderr


def test_a_row_removed_from_the_middle_is_found(db):
    _tamper(db, "DELETE FROM audit WHERE seq = 4")
    report = verify_chain(db)
    assert not report.ok and report.first_bad_seq == 4 and "missing" in report.problem


def test_rehashing_an_altered_row_still_breaks_the_link_after_it(db):
    from server.store.audit import row_hash

    row = dict(db.query("SELECT * FROM audit WHERE seq = 2").__next__())
    row["actor_id"] = "someone else"
    _tamper(db, "UPDATE audit SET actor_id = ?, hash = ? WHERE seq = 2", [row["actor_id"], row_hash(row)])
    assert verify_chain(db).first_bad_seq == 3


def test_the_application_cannot_update_or_delete_audit_rows(db):
    for sql in ("UPDATE audit SET action = 'x' WHERE seq = 1", "DELETE FROM audit WHERE seq = 1"):
        with pytest.raises(sqlite3.IntegrityError):
            with write_tx(db):
                db.execute(sql)
    assert verify_chain(db).ok


def test_data_change_rolls_back_when_its_audit_row_cannot_be_written(db, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(participants_store, "write_audit", broken)
    with pytest.raises(RuntimeError):
        enroll(db, "S-900", "BJ01", "2024-01", "2025-05-01", actor=ADMIN)
    assert db.execute("SELECT COUNT(*) FROM participants WHERE subject = 'S-900'").fetchone()[0] == 0


def test_server_refuses_to_start_without_the_audit_guards(db, db_path):
    db.execute("DROP TRIGGER audit_no_update")
    with pytest.raises(RuntimeError, match="audit guards"):
        create_app({"DB": str(db_path)})
    out = _cli(db_path, "serve", "--port", "0")
    assert out.returncode != 0 and "audit guards" in out.stderr and "serving on" not in out.stdout


def test_write_audit_refuses_secrets_and_calls_outside_a_transaction(db):
    with pytest.raises(RuntimeError):
        write_audit(db, ADMIN, "x.y")
    with pytest.raises(ValueError):
        with write_tx(db):
            write_audit(db, ADMIN, "x.y", detail={"nested": {"password": "p"}})


def test_no_password_token_or_pairing_code_reaches_the_audit_trail(client, db):
    authenticate(db, "inv@bj01.example", PASSWORD, client_addr="10.0.0.9")
    authenticate(db, "inv@bj01.example", "wrong password 123", client_addr="10.0.0.9")
    from server.store.pairing import issue_pairing_code
    code = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    wrong = code[:-1] + ("X" if code[-1] != "X" else "Y")
    client.post("/api/v1/devices/pair", json={"code": wrong, "device_name": "pc"})
    dev = pair(client, db)
    upload(client, dev["token"], [make_nasal("S-001")])
    text = " ".join(json.dumps(r) for r in db.query("SELECT * FROM audit"))
    for secret in (PASSWORD, "wrong password 123", dev["token"], code, code.replace("-", "")):
        assert secret not in text
    actions = [r["action"] for r in audit_rows(db, limit=1000)]
    assert {"staff.login", "pairing.issue", "device.pair", "record.accept"} <= set(actions)
    # unauthenticated failures go to the bounded security log (issue 16), not one audit row each
    from server.store.security_log import events

    assert {e["kind"] for e in events(db)} == {"staff.login_failed", "pairing.failed"}
    logged = json.dumps(events(db))
    for secret in (PASSWORD, "wrong password 123", dev["token"], code, code.replace("-", "")):
        assert secret not in logged


def test_audit_rows_filter_by_action_and_inclusive_dates(db):
    rows = audit_rows(db, action="participant.enroll", newest_first=False)
    assert [r["entity_id"] for r in rows] == ["S-001", "S-002", "S-101"]
    first_at = rows[0]["at"]
    same_moment = audit_rows(db, action="participant.enroll", start=first_at, end=first_at)
    # inclusive on both ends; two enrolments can share a millisecond
    assert "S-001" in {r["entity_id"] for r in same_moment} and {r["at"] for r in same_moment} == {first_at}
    assert all(r["site_id"] == rows[0]["site_id"] for r in audit_rows(db, site_id=rows[0]["site_id"]))
    assert isinstance(rows[0]["detail"], dict) and rows[0]["actor_kind"] == "test"


def test_actor_strings():
    assert str(Actor.staff(3)) == "staff:3" and str(Actor.device("dev-1")) == "device:dev-1"
    assert Actor.cli().kind == "cli" and str(Actor.system("jobs")) == "system:jobs"


def test_verify_after_a_verified_row_checks_only_the_rows_after_it_with_their_epoch_key(db, monkeypatch):
    """What a restore does after verifying the backup's chain and appending its row."""
    from server.store import audit

    for name, value in (("current", b"k" * 40), ("previous", ()), ("configured", True)):
        monkeypatch.setitem(audit._keys, name, value)
    with write_tx(db):
        write_audit(db, ADMIN, "test.one")          # opens the key's epoch: the rows from here are keyed
    head = tuple(db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone())
    with write_tx(db):
        write_audit(db, ADMIN, "test.two")
        write_audit(db, ADMIN, "test.three")
    full, tail = verify_chain(db), verify_chain(db, after=head)
    assert full.ok and tail.ok and (full.rows, tail.rows) == (head[0] + 2, 2)
    db.execute("DROP TRIGGER audit_no_update")
    with write_tx(db):
        db.execute("UPDATE audit SET at = '2020-01-01T00:00:00Z' WHERE seq = 2")
    assert not verify_chain(db).ok and verify_chain(db, after=head).ok   # rows up to the start are not read
    assert verify_chain(db, after=(head[0], "0" * 64)).first_bad_seq == head[0] + 1
    with write_tx(db):
        db.execute("UPDATE audit SET at = '2020-01-01T00:00:00Z' WHERE seq = ?", [head[0] + 2])
    report = verify_chain(db, after=head)
    assert (report.ok, report.first_bad_seq) == (False, head[0] + 2)
    assert report.problem == "content does not match its hash (keyed)"
    monkeypatch.setitem(audit._keys, "current", b"w" * 40)   # the epoch's key no longer configured
    assert "not configured" in verify_chain(db, after=head).problem
