"""Backups that restore (SY-09, EX-07, AT-09): online backup of a live WAL database, a restore drill
into an empty folder compared table by table, tampered backups refused, retention keeps N days."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.backup import (
    backup, backups_in, describe, manifest_path, read_manifest, restore, sha256_file, verify_backup,
)
from server.db import open_db
from server.jobs import start_jobs
from server.store.audit import verify_chain
from server.tasks.backup import daily_backup, scheduled_backup
from shared.errors import EproError
from tests.support.live_server import REPO_ROOT, LiveServer
from tests.support.records import make_batch

UTC = timezone.utc


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", "--json", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def wait_for(condition, seconds: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def assert_restored_matches(target: Path, manifest: dict) -> None:
    """Every table as the manifest says; the audit trail is the backup's plus one backup.restored row."""
    db = open_db(target)
    try:
        facts = describe(db)
        chain = verify_chain(db)
        last = db.execute("SELECT action, prev_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        db.close()
    for name, want in manifest["tables"].items():
        if name != "audit":
            assert facts["tables"][name] == want, name
    assert set(facts["tables"]) == set(manifest["tables"])
    assert facts["records"]["count"] == manifest["records"]["count"]
    assert facts["records"]["sha256_list_digest"] == manifest["records"]["sha256_list_digest"]
    assert facts["records_mismatched"] == []
    assert chain.ok and chain.rows == manifest["audit"]["rows"] + 1
    assert last == ("backup.restored", manifest["audit"]["head_hash"])


# --- backup of a live server, restore drill ---------------------------------------------------------

@pytest.mark.e2e
def test_backup_while_the_server_is_writing_then_restore_into_an_empty_folder(tmp_path):
    with LiveServer(tmp_path / "live") as srv:
        token = srv.pair("S-001")["token"]
        batches, errors, stop = [], [], threading.Event()

        def writer() -> None:
            seq = 1
            while not stop.is_set():
                batch = make_batch("S-001", 20, first_seq=seq,
                                   start=datetime(2025, 3, 1, 9, tzinfo=UTC) + timedelta(days=len(batches)))
                status, body = srv.request("POST", "/api/v1/sync/records",
                                           {"records": batch, "client_time": datetime.now(UTC).isoformat()},
                                           token=token)
                if status != 200 or any(r["status"] != "accepted" for r in body["results"]):
                    errors.append((status, body))
                    return
                seq += len(batch)
                batches.append(len(batch))

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            wait_for(lambda: len(batches) >= 3 or errors, what="uploads before the backup")
            before = len(batches)
            out_dir = tmp_path / "backups"
            out_dir.mkdir()
            done = srv.cli("backup", str(out_dir), "--unencrypted")
            during = len(batches) - before
            wait_for(lambda: len(batches) >= before + during + 3 or errors, what="uploads after the backup")
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not errors, errors[:1]

        path = Path(done["backup"])
        manifest = read_manifest(path)
        assert done["chain_ok"] is True and done["sha256"] == sha256_file(path)
        assert verify_backup(path) == []
        live_records = rows(srv.db_path, "SELECT id, sha256 FROM records ORDER BY server_seq")
        backed_up = rows(path, "SELECT id, sha256 FROM records ORDER BY server_seq")
        # a consistent snapshot taken mid-stream: a whole prefix of the live records, fewer than now
        assert 0 < len(backed_up) < len(live_records)
        assert len(backed_up) % 20 == 0 and backed_up == live_records[:len(backed_up)]
        assert manifest["records"]["count"] == len(backed_up)
        assert manifest["audit"]["head_hash"] == rows(path, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")[0][0]
        assert ("backup.created", path.name) in rows(srv.db_path, "SELECT action, entity_id FROM audit")

    target = tmp_path / "empty" / "restored" / "server.sqlite"
    proc = cli("--db", str(target), "restore", str(path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["verified"] is True and result["records"] == len(backed_up) and result["replaced"] is None
    assert_restored_matches(target, manifest)
    # the restored database is one the server accepts, and `audit verify` agrees
    verify = cli("--db", str(target), "audit", "verify")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True


def test_restore_refuses_a_database_that_holds_data_unless_forced(tmp_path, live_db):
    made = backup(live_db, tmp_path / "b.sqlite", unencrypted=True)
    target = tmp_path / "other.sqlite"
    target.write_bytes(live_db.read_bytes())
    before = target.read_bytes()
    proc = cli("restore", str(made.path), "--db", str(target))      # --db after the command works too
    assert proc.returncode != 0
    assert json.loads(proc.stderr)["code"] == "restore.target_not_empty"
    assert target.read_bytes() == before
    forced = cli("restore", str(made.path), "--db", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    aside = Path(json.loads(forced.stdout)["replaced"])
    assert aside.read_bytes() == before          # the old database is kept, never deleted
    assert_restored_matches(target, made.manifest)


def test_a_dry_run_verifies_without_writing(tmp_path, live_db):
    made = backup(live_db, tmp_path / "b.sqlite", unencrypted=True)
    target = tmp_path / "new" / "server.sqlite"
    out = restore(made.path, target, dry_run=True)
    assert out["verified"] and out["records"] == made.manifest["records"]["count"] > 0
    assert sorted(p.name for p in target.parent.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_backups_and_restored_databases_are_readable_by_their_owner_only(tmp_path, live_db):
    made = backup(live_db, tmp_path / "b.sqlite", unencrypted=True)
    target = tmp_path / "r" / "server.sqlite"
    restore(made.path, target)
    for path in (made.path, made.manifest_path, target):
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))


def test_backup_never_overwrites(tmp_path, live_db):
    made = backup(live_db, tmp_path / "b.sqlite", unencrypted=True)
    before = made.path.read_bytes()
    with pytest.raises(EproError) as err:
        backup(live_db, made.path, unencrypted=True)
    assert err.value.code == "backup.target_exists" and made.path.read_bytes() == before


# --- tampered backups -------------------------------------------------------------------------------

def _refresh_file_fields(path: Path, manifest: dict) -> None:
    manifest["file"].update(bytes=path.stat().st_size, sha256=sha256_file(path))
    manifest_path(path).write_text(json.dumps(manifest))


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for s in statements:
            conn.execute(s)
        conn.commit()
    finally:
        conn.close()


def _rewrite_whole_manifest(path: Path, manifest: dict) -> None:
    """What someone with this very tool could do after tampering: recompute every manifest field."""
    conn = sqlite3.connect(path)
    try:
        facts = describe(conn)
    finally:
        conn.close()
    manifest.update({k: facts[k] for k in ("schema", "tables", "records", "audit")})
    _refresh_file_fields(path, manifest)


def _flip_a_byte(path, manifest):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_a_record_and_rehash_the_file(path, manifest):
    _sql(path, "DROP TRIGGER records_no_update",
         "UPDATE records SET envelope = replace(envelope, '\"respondent\":\"participant\"',"
         " '\"respondent\":\"caregiver\"') WHERE server_seq = 3",
         "CREATE TRIGGER records_no_update BEFORE UPDATE ON records"
         " BEGIN SELECT RAISE(ABORT, 'records rows are append-only'); END")
    _refresh_file_fields(path, manifest)


def _delete_a_record_and_rehash_the_file(path, manifest):
    _sql(path, "DROP TRIGGER records_no_delete", "DELETE FROM records WHERE server_seq = 5",
         "CREATE TRIGGER records_no_delete BEFORE DELETE ON records"
         " BEGIN SELECT RAISE(ABORT, 'records rows are append-only'); END")
    _refresh_file_fields(path, manifest)


def _delete_an_audit_row_and_rewrite_the_whole_manifest(path, manifest):
    # drop a row, put the trigger back, recompute every manifest field
    _sql(path, "DROP TRIGGER audit_no_delete", "DELETE FROM audit WHERE seq = 4",
         "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
         " BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END")
    _rewrite_whole_manifest(path, manifest)


def _edit_the_manifest_head(path, manifest):
    manifest["audit"]["head_hash"] = "0" * 64
    manifest_path(path).write_text(json.dumps(manifest))


def _drop_a_guard_and_rewrite_the_whole_manifest(path, manifest):
    _sql(path, "DROP TRIGGER audit_no_update")
    _rewrite_whole_manifest(path, manifest)


def _remove_the_manifest(path, manifest):
    manifest_path(path).unlink()


TAMPERING = {
    _flip_a_byte: ("restore.verification_failed", "file.sha256"),
    _edit_a_record_and_rehash_the_file: ("restore.verification_failed", "records.{id}.sha256"),
    _delete_a_record_and_rehash_the_file: ("restore.verification_failed", "records.count"),
    _delete_an_audit_row_and_rewrite_the_whole_manifest: ("restore.verification_failed", "audit.chain"),
    _edit_the_manifest_head: ("restore.verification_failed", "audit.head_hash"),
    _drop_a_guard_and_rewrite_the_whole_manifest: ("restore.verification_failed", "schema.audit_no_update"),
    _remove_the_manifest: ("restore.manifest_missing", None),
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=lambda f: f.__name__.strip("_"))
def test_a_tampered_backup_is_refused_and_the_target_stays_absent(tmp_path, live_db, tamper):
    made = backup(live_db, tmp_path / "b.sqlite", unencrypted=True)
    tamper(made.path, json.loads(made.manifest_path.read_text()))
    code, field = TAMPERING[tamper]
    target = tmp_path / "restore" / "server.sqlite"
    proc = cli("--db", str(target), "restore", str(made.path))
    assert proc.returncode != 0
    body = json.loads(proc.stderr)
    assert body["code"] == code, body
    if field is not None:
        fields = [e["field"] for e in body["errors"]]
        if "{id}" in field:
            assert any(f.startswith("records.") and f.endswith(".sha256") and f != "records.sha256_list_digest"
                       for f in fields), fields
        else:
            assert field in fields, fields
    assert not target.exists() and not (target.parent.exists() and any(target.parent.iterdir()))


def test_a_backup_of_a_broken_chain_is_written_but_flagged(tmp_path, live_db):
    _sql(live_db, "DROP TRIGGER audit_no_update", "UPDATE audit SET detail = '{}' WHERE seq = 2")
    proc = cli("--db", str(live_db), "backup", str(tmp_path / "b.sqlite"), "--unencrypted")
    assert "NOT encrypted" in proc.stderr                    # the unencrypted flag is logged ...
    assert proc.returncode != 0 and json.loads(proc.stderr.splitlines()[-1])["code"] == "backup.chain_broken"
    manifest = read_manifest(tmp_path / "b.sqlite")
    assert manifest["audit"]["chain_ok"] is False and manifest["audit"]["first_bad_seq"] == 2
    with pytest.raises(EproError) as err:
        restore(tmp_path / "b.sqlite", tmp_path / "r.sqlite")
    assert "audit.chain" in [e.field for e in err.value.errors] and not (tmp_path / "r.sqlite").exists()


# --- the daily scheduled backup ---------------------------------------------------------------------

def test_daily_backup_keeps_the_newest_n_days_and_nothing_else_is_touched(tmp_path, live_db):
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a backup")
    (folder / "als-epro-manual.sqlite").write_bytes(b"x")
    start = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    for day in range(7):
        first = daily_backup(live_db, folder, keep=3, now=start + timedelta(days=day), unencrypted=True)
        again = daily_backup(live_db, folder, keep=3, now=start + timedelta(days=day, hours=5), unencrypted=True)
        assert first["created"] and again["created"] is None        # one backup per UTC day
    names = [p.name for p in backups_in(folder)]
    assert names == ["als-epro-20260105T020000Z.sqlite", "als-epro-20260106T020000Z.sqlite",
                     "als-epro-20260107T020000Z.sqlite"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*names, *(n + ".manifest.json" for n in names), "notes.txt", "als-epro-manual.sqlite", "audit-checkpoints"])
    # each backup also left a checkpoint of the audit chain head (server.store.anchor), never pruned
    assert len(list((folder / "audit-checkpoints").glob("audit-checkpoint-*.json"))) == 7
    assert all(verify_backup(folder / n) == [] for n in names)
    # each backup holds the backup.created rows of the days before it; the live trail keeps all seven
    assert rows(live_db, "SELECT COUNT(*) FROM audit WHERE action = 'backup.created'") == [(7,)]


def test_a_failed_backup_deletes_nothing(tmp_path, live_db):
    folder = tmp_path / "backups"
    folder.mkdir()
    start = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    for day in range(2):
        daily_backup(live_db, folder, keep=1 + day, now=start + timedelta(days=day), unencrypted=True)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(EproError):
        daily_backup(tmp_path / "missing.sqlite", folder, keep=1, now=start + timedelta(days=5), unencrypted=True)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_scheduled_backup_is_off_without_a_folder_and_runs_from_the_serve_scheduler(tmp_path, live_db):
    assert scheduled_backup({"DB": str(live_db), "BACKUP_DIR": None}) == {"skipped": "BACKUP_DIR is not set"}
    folder = tmp_path / "scheduled"
    scheduler = start_jobs({"DB": str(live_db), "PROTOCOL": "nct06598202", "JOBS_INTERVAL_MINUTES": 15,
                            "BACKUP_DIR": str(folder), "BACKUP_KEEP": 2, "SQLITE_BUSY_TIMEOUT_MS": 10000,
                            "BACKUP_ALLOW_UNENCRYPTED": True})
    try:
        assert scheduler.get_job("als-epro-backup") is not None
        wait_for(lambda: folder.is_dir() and any(p.name.endswith(".manifest.json") for p in folder.iterdir()),
                 what="the scheduled backup")
    finally:
        scheduler.shutdown(wait=True)
    [made] = backups_in(folder)
    assert verify_backup(made) == [] and read_manifest(made)["created_by"] == "system:backup"


# --- reconciliation after a migration or a move (EX-07) ---------------------------------------------

def _add_records(path: Path, n: int) -> None:
    from server.store.devices import get_device
    from server.store.records import ingest
    from shared.protocol import load_protocol

    db = open_db(path)
    try:
        device = get_device(db, db.execute("SELECT id FROM devices LIMIT 1").fetchone()[0])
        seq = db.execute("SELECT MAX(device_seq) FROM records").fetchone()[0] + 1
        results = ingest(db, device, make_batch("S-001", n, first_seq=seq,
                                                start=datetime(2025, 6, 1, 9, tzinfo=UTC)), protocol=load_protocol())
        assert {r["status"] for r in results} == {"accepted"}
    finally:
        db.close()


def test_reconcile_accepts_a_database_that_continues_the_backup_and_names_what_changed(tmp_path, live_db):
    made = backup(live_db, tmp_path / "b.sqlite", unencrypted=True)
    _add_records(live_db, 4)                           # the server went on after the backup
    ok = cli("--db", str(live_db), "reconcile", str(made.manifest_path))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    _sql(live_db, "DROP TRIGGER records_no_update",
         "UPDATE records SET envelope = replace(envelope, '\"respondent\":\"participant\"', "
         "'\"respondent\":\"caregiver\"') WHERE server_seq = 2")
    bad = cli("--db", str(live_db), "reconcile", str(made.path))
    assert bad.returncode != 0
    fields = {p["field"] for p in json.loads(bad.stdout)["problems"]}
    assert "records.sha256_list_digest" not in fields      # the stored hash column is unchanged …
    assert any(f.startswith("records.") and f.endswith(".sha256") for f in fields), fields  # … the envelope is not
