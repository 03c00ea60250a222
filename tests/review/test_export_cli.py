"""``als-epro-server export`` end to end on a seeded database: every format plus the review evidence,
one manifest, ``export verify`` passing and then catching one flipped byte; the export is audited;
a demo database says so in the export; another site's data never leaks in."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from server.db import open_db
from server.store.audit import Actor, audit_rows
from server.store.corrections import request_correction
from server.store.participants import get_participant
from server.store.reviews import acknowledge_flag
from server.store.signoffs import sign_off
from tests.review.conftest import CST, PASSWORD, PROTOCOL, staff
from tests.support.live_server import REPO_ROOT
from tests.support.records import make_alsfrs, make_dose, make_nasal

ODM_NS = "{http://www.cdisc.org/ns/odm/v1.3}"


def _cli(db_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", "--db", str(db_path), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def _seed(db, devices) -> dict[str, str]:
    d = lambda day, hh=20: datetime(2025, 3, day, hh, 0, tzinfo=CST)  # noqa: E731
    severe = make_nasal("S-001", day=date(2025, 3, 2), entered_at=d(2))
    severe["payload"]["symptoms"]["epistaxis"] = 3
    severe["payload"]["notes"] = "<script>alert('x')</script>; DROP TABLE records;--"
    devices.send([severe, make_nasal("S-001", day=date(2025, 3, 3), entered_at=d(3)),
                  make_alsfrs("S-001", entered_at=datetime(2025, 2, 27, 10, 0, tzinfo=CST))])
    devices.send([make_dose("S-001", dose_number=1, planned=date(2025, 3, 1), entered_at=d(1, 9))], role="caregiver")
    devices.send([make_nasal("S-002", day=date(2025, 3, 2), entered_at=d(2))], "S-002")
    devices.send([make_nasal("S-101", day=date(2025, 4, 2), entered_at=datetime(2025, 4, 2, 20, tzinfo=CST))], "S-101")
    p = get_participant(db, "S-001")
    inv = staff(db)
    sign_off(db, p["id"], "2025-03-01", "2025-03-03", staff=inv, password=PASSWORD, printed_name="Dr. Li Wei",
             now=d(4, 9))
    coord = Actor.staff(staff(db, "coord@bj01.example")["id"])
    acknowledge_flag(db, PROTOCOL, p["id"], f"symptom_severe:{severe['id']}", outcome="ae_recorded",
                     ae_number="AE-001", note="seen at clinic", actor=coord, now=d(4, 10))
    request_correction(db, severe["id"], {"symptoms.headache": 1}, reason="participant: a mild headache too",
                       requested_by="participant, at visit", actor=coord, protocol=PROTOCOL, now=d(5, 10))
    return {"severe": severe["id"]}


@pytest.mark.e2e
def test_cli_export_all_formats_verifies_and_catches_a_flipped_byte(db, db_path, devices, tmp_path):
    ids = _seed(db, devices)
    out = tmp_path / "export"
    done = _cli(db_path, "--json", "export", "--format", "all", "--out", str(out), "--site", "BJ01")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["counts"]["participants"] == 2 and result["counts"]["records_total"] == 5
    assert result["counts"]["review"] == {"signoffs": 1, "flag_reviews": 1, "signoffs_invalidated": 1}
    assert result["demo"] is False

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"] for f in manifest["files"]}
    for path in ("csv/nasal_symptoms.csv", "csv/audit_trail.csv", "csv/data_dictionary.csv", "sdtm/qs.csv",
                 "review/signatures.csv", "review/flag_reviews.csv", "README.txt"):
        assert path in listed, path
    odm_files = sorted(p for p in listed if p.startswith("odm/"))
    assert len(odm_files) == 2 and any(p.startswith("fhir/") for p in listed)
    assert manifest["generated_by"].startswith("cli:") and manifest["counts"]["files"] == len(listed)

    # the sign-off shows as invalidated (a covered record was corrected after signing)
    with open(out / "review/signatures.csv", encoding="utf-8-sig", newline="") as fh:
        sig = list(csv.DictReader(fh))
    assert len(sig) == 1 and sig[0]["status"] == "invalidated" and sig[0]["printed_name"] == "Dr. Li Wei"
    assert sig[0]["meaning"] == "Reviewed" and ids["severe"] in sig[0]["status_detail"]
    with open(out / "review/flag_reviews.csv", encoding="utf-8-sig", newline="") as fh:
        acks = list(csv.DictReader(fh))
    assert [(a["outcome"], a["ae_number"], a["state_now"]) for a in acks] == [("ae_recorded", "AE-001", "changed")]

    # ODM: this site's subjects only, the correction with its reason
    tree = etree.parse(str(out / odm_files[0]))
    subjects = {s.get("SubjectKey") for s in tree.iter(f"{ODM_NS}SubjectData")}
    assert subjects == {"S-001", "S-002"}
    reasons = [r.text for r in tree.iter(f"{ODM_NS}ReasonForChange")]
    assert "participant: a mild headache too (requested by participant, at visit)" in reasons
    everything = "".join(p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*") if p.is_file())
    assert "S-101" not in everything

    check = _cli(db_path, "export", "verify", str(out))
    assert check.returncode == 0 and "OK" in check.stdout
    target = out / odm_files[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    bad = _cli(db_path, "export", "verify", str(out))
    assert bad.returncode == 1 and odm_files[0] in bad.stderr and "changed" in bad.stderr

    row = audit_rows(db, action="export.create")[0]
    assert row["actor_kind"] == "cli" and row["detail"]["formats"] == ["csv", "odm", "sdtm", "fhir"]
    assert row["detail"]["counts"]["records_total"] == 5 and len(row["detail"]["manifest_sha256"]) == 64


def test_cli_export_refusals(db_path, tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "old.txt").write_text("already here")
    for args, needle in ((["export", "--format", "odm", "--out", str(out), "--site", "BJ01"], "not empty"),
                         (["export", "--format", "odm", "--out", str(tmp_path / "y")], "--site"),
                         (["export", "--out", str(tmp_path / "z"), "--site", "BJ01"], "--format"),
                         (["export", "verify"], "export verify DIR"),
                         (["export", "verify", str(tmp_path / "nowhere")], "manifest_missing")):
        done = _cli(db_path, *args)
        assert done.returncode != 0 and needle in done.stderr, (args, done.stderr)


@pytest.mark.e2e
def test_a_demo_database_says_so_in_its_export(tmp_path):
    from server.demo import build_demo

    db_path = tmp_path / "demo.sqlite"
    build_demo(db_path, password="demo password 1234", now=datetime(2026, 11, 25, 10, 0, tzinfo=CST))
    out = tmp_path / "demo-export"
    done = _cli(db_path, "export", "--format", "odm", "--out", str(out))  # one site: --site may be left out
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("DEMO — synthetic data")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["marker"] == "DEMO — synthetic data" and manifest["demo"] is True
    assert "DEMO — synthetic data" in (out / "README.txt").read_text(encoding="utf-8")
    assert "DEMO — synthetic data" in (out / "review/README.txt").read_text(encoding="utf-8")
    odm = next((out / "odm").glob("*_odm.xml"))
    assert "DEMO — synthetic data" in etree.parse(str(odm)).getroot().get("Description")
    db = open_db(db_path)
    try:
        assert audit_rows(db, action="export.create")[0]["detail"]["demo"] is True
    finally:
        db.close()
