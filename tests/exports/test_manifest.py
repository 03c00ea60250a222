"""Manifest and verifier: sha256 per file, who/when/software/counts, DEMO and draft markers, and one
flipped byte anywhere caught and named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.exports import export_all, verify_manifest
from server.exports.common import sha256_file
from server.exports.manifest import write_manifest
from tests.exports.factories import make_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(tmp_path):
    out = tmp_path / "export"
    return out, export_all(make_dataset(), out)


def test_manifest_content(exported):
    ds, out, manifest = exported
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    assert manifest["marker"] == "DEMO — synthetic data" and manifest["generated_at"] == ds["generated_at"]
    assert manifest["generated_by"] == ds["generated_by"] and manifest["software_version"] == ds["software_version"]
    assert manifest["counts"]["records"] == {"alsfrs_r": 11, "nasal_symptoms": 48, "dose_confirmation": 12}
    assert manifest["counts"]["corrected_records"] == 2 and manifest["counts"]["versions"] == len(ds["records"]) + 3
    assert manifest["draft_wording"]["instrument_versions"] and "draft" in manifest["draft_wording"]["note"]["en"]
    assert manifest["validation"]["odm"]["result"] == "valid" and manifest["validation"]["fhir"]["result"] == "valid"
    listed = {f["path"]: f for f in manifest["files"]}
    on_files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(listed) == on_files and manifest["counts"]["files"] == len(on_files)
    for rel, entry in listed.items():
        assert entry["sha256"] == sha256_file(out / rel) and entry["bytes"] == (out / rel).stat().st_size
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "DEMO — synthetic data" in readme and "draft" in readme and "verify" in readme


def test_a_clean_export_verifies(exported):
    _, out, _ = exported
    assert verify_manifest(out) == []


@pytest.mark.parametrize("rel", ["csv/alsfrs_r.csv", "odm/NCT06598202_BJ01_odm.xml",
                                 "fhir/QuestionnaireResponse-bundle.json", "sdtm/ec.csv", "README.txt"])
def test_one_flipped_byte_is_caught_and_named(fresh, rel):
    out, _ = fresh
    path = out / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_manifest(out)
    assert [(p.path, p.kind) for p in problems] == [(rel, "changed")]
    assert rel in str(problems[0])


def test_missing_resized_unlisted_and_tampered(fresh):
    out, _ = fresh
    (out / "sdtm" / "qs.csv").unlink()
    with (out / "csv" / "participants.csv").open("ab") as fh:
        fh.write(b"P-999,BJ01\r\n")
    (out / "csv" / "extra.csv").write_text("x\n", encoding="utf-8")
    kinds = {(p.path, p.kind) for p in verify_manifest(out)}
    assert kinds == {("sdtm/qs.csv", "missing"), ("csv/participants.csv", "size"),
                     ("csv/participants.csv", "changed"), ("csv/extra.csv", "unlisted")}
    (out / "manifest.json").write_text("{not json", encoding="utf-8")
    assert [p.kind for p in verify_manifest(out)] == ["manifest_invalid"]
    (out / "manifest.json").unlink()
    assert [p.kind for p in verify_manifest(out)] == ["manifest_missing"]


def test_a_manifest_cannot_point_outside_its_folder(fresh, tmp_path):
    out, manifest = fresh
    manifest["files"].append({"path": "../outside.txt", "sha256": "0" * 64, "bytes": 0})
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert [(p.path, p.kind) for p in verify_manifest(out)] == [("../outside.txt", "unsafe_path")]


def test_the_verify_command(fresh):
    out, _ = fresh
    ok = subprocess.run([sys.executable, "-m", "server.exports", "verify", str(out)], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK" in ok.stdout
    (out / "csv" / "nasal_symptoms.csv").write_bytes(b"tampered")
    bad = subprocess.run([sys.executable, "-m", "server.exports", "verify", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "csv/nasal_symptoms.csv" in bad.stderr


def test_no_demo_marker_for_real_data_and_a_chosen_subset(tmp_path):
    ds = make_dataset(demo=False)
    manifest = export_all(ds, tmp_path / "e", formats=("odm",))
    assert "marker" not in manifest and manifest["demo"] is False
    assert sorted(f["path"] for f in manifest["files"]) == [
        "README.txt", "odm/NCT06598202_BJ01_odm.xml", "odm/NCT06598202_BJ01_odm_snapshot.xml", "problems.json"]
    assert manifest["held_back"] == {"count": 0, "file": "problems.json", "items": []}
    text = "".join((tmp_path / "e" / f["path"]).read_text(encoding="utf-8") for f in manifest["files"])
    assert "DEMO" not in text and "synthetic" not in text


def test_export_refuses_a_folder_that_is_not_empty_and_unknown_formats(tmp_path):
    (tmp_path / "old.txt").write_text("x", encoding="utf-8")
    with pytest.raises(FileExistsError):
        export_all(make_dataset(), tmp_path)
    with pytest.raises(ValueError):
        export_all(make_dataset(), tmp_path / "new", formats=("pdf",))


def test_exports_are_deterministic(tmp_path):
    a = export_all(make_dataset(), tmp_path / "a")
    b = export_all(make_dataset(), tmp_path / "b")
    assert a["files"] == b["files"]


def test_write_manifest_accepts_relative_paths(tmp_path):
    (tmp_path / "x.csv").write_text("a\n", encoding="utf-8")
    path = write_manifest(tmp_path, ["x.csv"], {"generated_at": "2026-01-01T00:00:00Z", "demo": False, "counts": {}})
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body["files"][0]["path"] == "x.csv" and verify_manifest(tmp_path) == []


@pytest.mark.slow
def test_a_full_site_exports_and_validates_in_reasonable_time(tmp_path):
    """38 participants with five weeks of entries each: every format, validated, well under a minute."""
    import time
    from datetime import date, timedelta

    from tests.exports.factories import participant_records, stored

    ds = make_dataset()
    ds["participants"], ds["records"], ds["audit"] = [], [], []
    for i in range(38):
        subject, first = f"P-{i + 1:03d}", date(2026, 3, 2) + timedelta(days=7 * (i % 8))
        ds["participants"].append({"subject": subject, "site": "BJ01", "status": "enrolled", "onset": "2025-06",
                                   "first_dose_date": first.isoformat(), "tz": "Asia/Shanghai"})
        for env in participant_records(subject, first, seed=str(i), gastrostomy_switch=i % 5 == 0):
            ds["records"].append(stored(env, len(ds["records"]) + 1, device=f"D-{i}"))
    ds["generated_at"] = "2026-06-01T00:00:00Z"
    started = time.monotonic()
    manifest = export_all(ds, tmp_path / "site")
    assert time.monotonic() - started < 60
    assert manifest["validation"]["odm"]["result"] == "valid" and manifest["validation"]["fhir"]["result"] == "valid"
    assert manifest["counts"]["records_total"] == len(ds["records"]) > 900
    assert verify_manifest(tmp_path / "site") == []
