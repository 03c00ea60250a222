"""``audit verify`` finds tampering with the database file itself (Part 11 §11.10(e), AT-03; issue 16
item 3), run as the real command line against a database a real server process filled.

The baseline: records synced over HTTP to ``als-epro-server serve`` with an audit key in its
environment, one record corrected twice, then a signed checkpoint written to the anchor folder. Each
tampering below is done on a copy with plain ``sqlite3`` (as someone with the file but not the key
would) and must make ``audit verify`` exit 1 naming the check that found it; the untouched copy
verifies.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from server.store.integrity import expected_trigger_sql
from tests.support.live_server import REPO_ROOT, LiveServer
from tests.support.records import make_alsfrs, make_nasal

pytestmark = pytest.mark.e2e

KEY = "k" * 8 + hashlib.sha256(b"tamper test key").hexdigest()
WRONG_KEY = "w" * 8 + hashlib.sha256(b"someone else's key").hexdigest()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper")
    anchor = root / "anchor"
    env = {"ALS_EPRO_AUDIT_KEY": KEY, "ALS_EPRO_AUDIT_ANCHOR_DIR": str(anchor)}
    with LiveServer(root / "srv", subjects=("S-001",), env=env) as srv:
        token = srv.pair("S-001", "participant")["token"]
        records = [make_nasal("S-001", device_seq=i + 1) if i % 2 else make_alsfrs("S-001", device_seq=i + 1)
                   for i in range(6)]
        status, body = srv.request("POST", "/api/v1/sync/records", {"records": records, "client_time": None},
                                   token=token)
        assert status == 200 and {r["status"] for r in body["results"]} == {"accepted"}
        srv.stop()
        corrected = records[1]["id"]
        _correct(srv.db_path, corrected, env)
        srv.cli("audit", "checkpoint")
        yield {"db": srv.db_path, "env": env, "corrected": corrected, "ids": [r["id"] for r in records],
               "root": root}


def _correct(db_path, record_id, env):
    """Two staff corrections, made by the application with the same key (in a child process)."""
    script = (
        "import sys\n"
        "from server.config import configure_security, load_config\n"
        "from server.db import open_db\n"
        "from server.store.audit import Actor\n"
        "from server.store.versions import correct_record\n"
        "configure_security(load_config())\n"
        "db = open_db(sys.argv[1])\n"
        "for grade in (1, 2):\n"
        "    correct_record(db, sys.argv[2], {'symptoms.headache': grade}, reason='participant called',\n"
        "                   requested_by='participant by phone', actor=Actor('test', 'staff'))\n")
    run_env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("ALS_EPRO_")}, **env,
               "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, str(db_path), record_id], cwd=REPO_ROOT, env=run_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def verify(db_path, env):
    run_env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("ALS_EPRO_")}, **env,
               "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "server", "--db", str(db_path), "--json", "audit", "verify"],
                          cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rechain(con, start_seq: int, key: str | None) -> None:
    """Recompute every link from ``start_seq`` as the attacker can: plain sha256 or a guessed key."""
    import hmac

    cols = [r[1] for r in con.execute("PRAGMA table_info(audit)")]
    prev = con.execute("SELECT hash FROM audit WHERE seq = ?", [start_seq - 1]).fetchone()
    prev = prev[0] if prev else "0" * 64
    for values in con.execute("SELECT * FROM audit WHERE seq >= ? ORDER BY seq", [start_seq]).fetchall():
        row = dict(zip(cols, values))
        body = {k: v for k, v in row.items() if k not in ("hash", "prev_hash")}
        data = (prev + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)).encode()
        new = (hmac.new(key.encode(), data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest())
        con.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, new, row["seq"]])
        prev = new


def _unguarded(con, *tables):
    for t in tables:
        for op in ("update", "delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {t}_no_{op}")


def _reguard(con, *tables):
    for t in tables:
        for op in ("update", "delete"):
            con.execute(expected_trigger_sql(t, op))


def t_delete_tail_rows(con, b):
    _unguarded(con, "audit")
    top = con.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
    con.execute("DELETE FROM audit WHERE seq > ?", [top - 3])
    _reguard(con, "audit")


def t_rewrite_row_plain_chain(con, b):
    _unguarded(con, "audit")
    seq = con.execute("SELECT MIN(seq) FROM audit WHERE action = 'record.correct'").fetchone()[0]
    con.execute("UPDATE audit SET detail = replace(detail, 'participant called', 'site decided') WHERE seq = ?", [seq])
    _rechain(con, seq, None)
    _reguard(con, "audit")


def t_rewrite_row_chain_with_another_key(con, b):
    _unguarded(con, "audit")
    seq = con.execute("SELECT MIN(seq) FROM audit WHERE action = 'record.accept'").fetchone()[0]
    con.execute("UPDATE audit SET at = '2025-01-01T00:00:00Z' WHERE seq = ?", [seq])
    _rechain(con, seq, WRONG_KEY)
    _reguard(con, "audit")


def t_whole_chain_rewritten_unkeyed(con, b):
    _unguarded(con, "audit")
    con.execute("DELETE FROM audit WHERE action = 'audit.chain_keyed'")
    # renumber what is left and re-chain it with plain sha256, as if no key had ever been used
    rows = [r[0] for r in con.execute("SELECT seq FROM audit ORDER BY seq")]
    for new, old in enumerate(rows, start=1):
        con.execute("UPDATE audit SET seq = ? WHERE seq = ?", [new, old])
    _rechain(con, 1, None)
    _reguard(con, "audit")


def t_record_envelope_changed(con, b):
    _unguarded(con, "records")
    con.execute("UPDATE records SET envelope = replace(envelope, '\"respondent\":\"participant\"',"
                " '\"respondent\":\"caregiver\"') WHERE id = ?", [b["ids"][0]])
    _reguard(con, "records")


def t_record_envelope_and_hash_changed(con, b):
    _unguarded(con, "records")
    env = json.loads(con.execute("SELECT envelope FROM records WHERE id = ?", [b["ids"][2]]).fetchone()[0])
    env["payload"]["items"]["1"] = 0
    from shared.canonical import record_sha256

    con.execute("UPDATE records SET envelope = ?, sha256 = ? WHERE id = ?",
                [json.dumps(env, sort_keys=True, separators=(",", ":")), record_sha256(env), b["ids"][2]])
    _reguard(con, "records")


def t_record_deleted(con, b):
    _unguarded(con, "records", "record_versions")
    con.execute("DELETE FROM record_versions WHERE record_id = ?", [b["ids"][4]])
    con.execute("DELETE FROM records WHERE id = ?", [b["ids"][4]])
    _reguard(con, "records", "record_versions")


def t_version_payload_changed(con, b):
    _unguarded(con, "record_versions")
    con.execute("UPDATE record_versions SET payload = replace(payload, '\"headache\": 2', '\"headache\": 3')"
                " WHERE record_id = ? AND version = 3", [b["corrected"]])
    _reguard(con, "record_versions")


def t_version_deleted(con, b):
    _unguarded(con, "record_versions")
    con.execute("DELETE FROM record_versions WHERE record_id = ? AND version = 3", [b["corrected"]])
    _reguard(con, "record_versions")


def t_trigger_dropped(con, b):
    con.execute("DROP TRIGGER audit_no_delete")


def t_trigger_replaced_by_a_no_op(con, b):
    con.execute("DROP TRIGGER records_no_update")
    con.execute("CREATE TRIGGER records_no_update BEFORE UPDATE ON records BEGIN SELECT 1; END")


def t_staff_role_changed(con, b):
    con.execute("UPDATE staff SET role = 'admin' WHERE id = (SELECT MIN(id) FROM staff)")


def t_staff_account_inserted(con, b):
    con.execute("INSERT INTO staff (email, site_id, role, password_hash, active, created_at)"
                " VALUES ('intruder@site.example', 1, 'investigator', 'x', 1, '2025-01-01T00:00:00Z')")


TAMPERINGS = {  # name -> (function, the check that must find it)
    "deleted tail rows": (t_delete_tail_rows, "checkpoint"),
    "row rewritten, chain recomputed (sha256)": (t_rewrite_row_plain_chain, "chain"),
    "row rewritten, chain recomputed (another key)": (t_rewrite_row_chain_with_another_key, "chain"),
    "keyed epoch removed, whole chain recomputed": (t_whole_chain_rewritten_unkeyed, "chain"),
    "record envelope changed": (t_record_envelope_changed, "records"),
    "record envelope and its sha256 changed": (t_record_envelope_and_hash_changed, "records"),
    "record deleted": (t_record_deleted, "records"),
    "version payload changed": (t_version_payload_changed, "versions"),
    "version deleted": (t_version_deleted, "versions"),
    "trigger dropped": (t_trigger_dropped, "triggers"),
    "trigger replaced by a no-op": (t_trigger_replaced_by_a_no_op, "triggers"),
    "staff role changed": (t_staff_role_changed, "staff"),
    "staff account inserted": (t_staff_account_inserted, "staff"),
}


def test_the_untouched_database_verifies(baseline, tmp_path):
    copy = tmp_path / "copy.sqlite"
    _copy(baseline["db"], copy)
    code, report, err = verify(copy, baseline["env"])
    assert code == 0 and report["ok"], (report, err)
    assert report["checkpoints"] >= 1


def _copy(src, dst):
    con = sqlite3.connect(src)
    out = sqlite3.connect(dst)
    con.backup(out)
    con.close()
    out.close()


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_each_tampering_is_found(baseline, tmp_path, name):
    tamper, check = TAMPERINGS[name]
    copy = tmp_path / "tampered.sqlite"
    _copy(baseline["db"], copy)
    con = sqlite3.connect(copy, isolation_level=None)
    tamper(con, baseline)
    con.close()
    code, report, err = verify(copy, baseline["env"])
    assert code == 1 and not report["ok"], (name, report)
    assert check in {p["check"] for p in report["problems"]}, (name, report["problems"])
    assert "error:" in err


def test_without_the_key_keyed_rows_are_not_taken_on_trust(baseline, tmp_path):
    copy = tmp_path / "copy.sqlite"
    _copy(baseline["db"], copy)
    code, report, _ = verify(copy, {"ALS_EPRO_AUDIT_ANCHOR_DIR": baseline["env"]["ALS_EPRO_AUDIT_ANCHOR_DIR"]})
    assert code == 1 and report["problems"][0]["check"] == "chain"
    assert "not configured" in report["problems"][0]["problem"]


def test_backup_writes_a_checkpoint_that_verify_reads(baseline, tmp_path):
    shutil.copy(baseline["db"], tmp_path / "live.sqlite")
    run_env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("ALS_EPRO_")},
               **baseline["env"], "PYTHONPATH": str(REPO_ROOT), "ALS_EPRO_AUDIT_ANCHOR_DIR": str(tmp_path / "a2")}
    (tmp_path / "b").mkdir()
    proc = subprocess.run([sys.executable, "-m", "server", "--db", str(tmp_path / "live.sqlite"), "backup",
                           str(tmp_path / "b"), "--unencrypted"], cwd=REPO_ROOT, env=run_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    beside = list((tmp_path / "b" / "audit-checkpoints").glob("audit-checkpoint-*.json"))
    second = list((tmp_path / "a2").glob("audit-checkpoint-*.json"))
    assert len(beside) == 1 and len(second) == 1
    body = json.loads(second[0].read_text())
    assert body["mac"] and body["key_id"] and body["seq"] > 1
