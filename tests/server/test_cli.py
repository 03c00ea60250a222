"""``als-epro-server`` exactly as contract §3: --db/ALS_EPRO_DB, --json, errors on stderr, exit codes."""

from __future__ import annotations

import re
import io
import json
import subprocess
import sys

import pytest

from server.cli import UNSENT_FORMAT, build_parser, main
from server.db import open_db
from tests.support.live_server import REPO_ROOT
from tests.support.records import make_alsfrs, make_nasal

PASSWORD = "a long enough password"


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    db = tmp_path / "cli.sqlite"

    def _run(*args, stdin: str = "", as_json: bool = True):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["--db", str(db), *(["--json"] if as_json else []), *args])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if as_json and code == 0 and out.strip() else out), err

    _run.db = db
    return _run


@pytest.fixture
def ready(run):
    assert run("init")[0] == 0
    assert run("site", "add", "BJ01", "Xuanwu")[0] == 0
    assert run("participant", "enroll", "S-001", "--site", "BJ01", "--onset", "2023-05",
               "--first-dose", "2025-03-01")[0] == 0
    return run


def test_init_creates_and_is_repeatable(run):
    code, out, _ = run("init")
    assert code == 0 and out["applied"] and re.match(r"m\d{3}_", out["schema"])
    code, out, _ = run("init")
    assert code == 0 and out["applied"] == []


def test_init_makes_the_participants_list_rows_not_yet_kept(ready):
    code, out, _ = ready("init")                 # S-001 was enrolled after the first init
    assert code == 0 and out["list_rows_made"] == 1
    code, out, _ = ready("init")
    assert code == 0 and out["list_rows_made"] == 0


def test_db_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    target = tmp_path / "env.sqlite"
    monkeypatch.setenv("ALS_EPRO_DB", str(target))
    assert build_parser().parse_args(["init"]).db == str(target)
    monkeypatch.delenv("ALS_EPRO_DB")
    assert build_parser().parse_args(["init"]).db == "als-epro.sqlite"


def test_commands_other_than_init_refuse_a_missing_database(run):
    code, _, err = run("site", "add", "BJ01", "X")
    assert code != 0 and "db.not_initialised" in err and not run.db.exists()


def test_staff_add_reads_the_password_from_stdin(ready):
    code, out, _ = ready("staff", "add", "pi@site.example", "--site", "BJ01", "--role", "investigator",
                         stdin=PASSWORD + "\n")
    assert code == 0 and out == {"staff_id": 1, "email": "pi@site.example", "site": "BJ01", "role": "investigator"}
    db = open_db(ready.db)
    assert db.execute("SELECT password_hash FROM staff").fetchone()[0].startswith("$argon2id$")
    code, _, err = ready("staff", "add", "x@site.example", "--site", "BJ01", "--role", "monitor", stdin="short\n")
    assert code == 1 and json.loads(err)["code"] == "staff.password_too_short"


def test_staff_add_with_a_display_name(ready):
    code, out, _ = ready("staff", "add", "li@site.example", "--site", "BJ01", "--role", "investigator",
                         "--name", "Dr. Li Wei", stdin=PASSWORD + "\n")
    assert code == 0 and out["name"] == "Dr. Li Wei" and out["email"] == "li@site.example"
    db = open_db(ready.db)
    assert db.execute("SELECT name FROM staff WHERE email = 'li@site.example'").fetchone()[0] == "Dr. Li Wei"


def test_errors_go_to_stderr_as_the_error_body_with_json_and_as_text_without(ready):
    code, out, err = ready("site", "add", "BJ01", "again")
    assert code == 1 and out == "" and json.loads(err)["code"] == "site.exists"
    code, out, err = ready("site", "add", "BJ01", "again", as_json=False)
    assert code == 1 and out == "" and err.startswith("error: site.exists")


def test_participant_lifecycle(ready):
    code, out, _ = ready("participant", "set-first-dose", "S-001", "2025-03-04", "--reason", "delivery late")
    assert code == 0 and out["first_dose_date"] == "2025-03-04"
    code, out, _ = ready("participant", "withdraw", "S-001", "--reason", "participant's decision")
    assert code == 0 and out["status"] == "withdrawn" and out["withdrawn_at"]
    assert ready("participant", "withdraw", "S-001", "--reason", "x")[0] == 1
    code, out, _ = ready("participant", "enroll", "S-002", "--site", "BJ01", "--onset", "2023-05-02",
                         "--first-dose", "2025-03-01", "--tz", "Europe/Berlin")
    assert out["tz"] == "Europe/Berlin"


def test_caregiver_and_pairing_codes(ready):
    code, out, _ = ready("caregiver", "add", "S-001", "--name", "Wang Li")
    assert code == 0 and set(out) >= {"caregiver_id", "subject", "name"}
    code, pc, _ = ready("pairing-code", "S-001", "--role", "caregiver", "--caregiver", str(out["caregiver_id"]))
    assert set(pc) >= {"code", "subject", "role", "expires_at"} and pc["caregiver_id"] == out["caregiver_id"]
    assert len(pc["code"].replace("-", "")) == 10
    code, fresh, _ = ready("pairing-code", "S-001", "--role", "caregiver")
    assert fresh["caregiver_id"] != out["caregiver_id"]  # a new caregiver identity
    code, own, _ = ready("pairing-code", "S-001", "--role", "participant", "--ttl-minutes", "5")
    assert own["role"] == "participant" and own["caregiver_id"] is None


def test_json_flag_works_after_the_subcommand_too(ready, capsys):
    code = main(["--db", str(ready.db), "caregiver", "add", "S-001", "--name", "Li", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["subject"] == "S-001"


def _paired_device(ready, role="participant"):
    from server.store.pairing import redeem_pairing_code

    code = ready("pairing-code", "S-001", "--role", role)[1]["code"]
    db = open_db(ready.db)
    paired = redeem_pairing_code(db, code, "pc", client_addr="127.0.0.1")
    db.close()
    return paired.device["id"]


def test_device_revoke(ready):
    device_id = _paired_device(ready)
    code, out, _ = ready("device", "revoke", device_id, "--reason", "lost")
    assert code == 0 and out["device_id"] == device_id and out["revoked_at"]
    assert json.loads(ready("device", "revoke", device_id, "--reason", "x")[2])["code"] == "device.already_revoked"
    assert json.loads(ready("device", "revoke", "dev-nope", "--reason", "x")[2])["code"] == "device.not_found"


def test_import_ingests_a_revoked_clients_file_through_the_same_idempotent_path(ready, tmp_path):
    device_id = _paired_device(ready, "caregiver")
    ready("device", "revoke", device_id, "--reason", "replaced")
    good, other = make_alsfrs("S-001"), make_nasal("S-001")
    bad = make_nasal("S-001", respondent="robot")
    doc = {"format": UNSENT_FORMAT, "device_id": device_id, "participant": "S-001",
           "exported_at": "2025-03-09T10:00:00+08:00", "records": [good, other, bad]}
    path = tmp_path / "unsent.json"
    path.write_text(json.dumps(doc, ensure_ascii=False))
    code, out, _ = ready("import", str(path))
    assert code == 0 and (out["accepted"], out["rejected"]) == (2, 1)
    assert [r["status"] for r in out["results"]] == ["accepted", "accepted", "rejected"]
    code, again, _ = ready("import", str(path))  # importing twice is harmless
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate", "rejected"]
    assert [r["receipt"] for r in again["results"][:2]] == [r["receipt"] for r in out["results"][:2]]
    db = open_db(ready.db)
    rows = db.execute("SELECT channel, originator, device_id FROM records").fetchall()
    assert {r[0] for r in rows} == {"import"} and all(r[1].startswith("caregiver:") for r in rows)
    assert db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 1
    assert [r[0] for r in db.execute("SELECT action FROM audit WHERE action = 'import.file'")] == ["import.file"] * 2


def test_import_refuses_files_of_another_shape_or_participant(ready, tmp_path):
    device_id = _paired_device(ready)
    bad = tmp_path / "bad.json"
    for content in ("not json", json.dumps({"format": "other"}),
                    json.dumps({"format": UNSENT_FORMAT, "device_id": device_id, "participant": "S-999",
                                "records": []})):
        bad.write_text(content)
        code, _, err = ready("import", str(bad))
        assert code == 1 and json.loads(err)["code"] == "import.invalid_file"


def test_audit_verify_reports_ok(ready):
    code, out, _ = ready("audit", "verify")
    assert code == 0 and out["ok"] is True and out["rows"] == 2


def test_every_command_has_help():
    parser = build_parser()
    text = parser.format_help()
    for name in ("init", "site", "staff", "participant", "caregiver", "pairing-code", "device", "import",
                 "serve", "audit"):
        assert name in text


def test_python_dash_m_server_is_the_same_command(tmp_path):
    db = tmp_path / "m.sqlite"
    out = subprocess.run([sys.executable, "-m", "server", "--db", str(db), "--json", "init"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["db"] == str(db)
    bad = subprocess.run([sys.executable, "-m", "server", "--db", str(db), "frobnicate"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_a_serving_process_freezes_what_it_built_and_collects_the_young_less_often():
    """``serve`` (and the bench's copy of it) call :func:`server.cli.tune_gc` once the app is built:
    what exists then is out of the collector's view, and the young generation is collected every
    20,000 allocations (an upload of 500 records makes hundreds of thousands of short-lived objects)."""
    import gc

    from server.cli import SERVE_GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        gc.unfreeze()
        tune_gc()
        assert gc.get_threshold() == SERVE_GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000          # the modules, the app, the schemas …
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
