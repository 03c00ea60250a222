"""CSV export: columns, counts, current values, versions, audit trail and a complete data dictionary."""

from __future__ import annotations

import json

from server.exports.dataset import current_version
from shared.scoring import score_alsfrs_r, tnss
from shared.vocab import NASAL_SYMPTOMS
from tests.exports.conftest import header, read_csv

ITEMS = ["item_1", "item_2", "item_3", "item_4", "item_5a", "item_5b", "item_6", "item_7", "item_8", "item_9",
         "item_10", "item_11", "item_12"]


def by_type(ds, rtype):
    return [r for r in ds["records"] if r["type"] == rtype]


def test_one_file_per_record_type_with_one_row_per_record(exported):
    ds, out, _ = exported
    for rtype in ("alsfrs_r", "nasal_symptoms", "dose_confirmation"):
        rows = read_csv(out / "csv" / f"{rtype}.csv")
        assert sorted(r["record_id"] for r in rows) == sorted(r["id"] for r in by_type(ds, rtype))


def test_alsfrs_columns_items_domains_and_total(exported):
    ds, out, _ = exported
    cols = header(out / "csv" / "alsfrs_r.csv")
    for name in ITEMS + ["gastrostomy", "scale", "bulbar", "fine_motor", "gross_motor", "respiratory", "total",
                         "record_id", "subject", "study_day", "entered_at", "received_at", "sha256", "version"]:
        assert name in cols
    recs = {r["id"]: r for r in by_type(ds, "alsfrs_r")}
    for row in read_csv(out / "csv" / "alsfrs_r.csv"):
        items = current_version(recs[row["record_id"]])["payload"]["items"]
        score = score_alsfrs_r(items)
        assert int(row["total"]) == score.total and int(row["respiratory"]) == score.respiratory
        assert row["scale"] == score.scale
        other = "item_5b" if score.scale == "5a" else "item_5a"
        assert row[other] == "" and row[f"item_{score.scale}"] == str(items[score.scale])
        assert row["gastrostomy"] == ("Y" if score.scale == "5b" else "N")


def test_a_corrected_record_shows_its_current_value_and_version(exported):
    ds, out, _ = exported
    rec = next(r for r in ds["records"] if r["type"] == "alsfrs_r" and len(r["versions"]) > 1)
    row = next(r for r in read_csv(out / "csv" / "alsfrs_r.csv") if r["record_id"] == rec["id"])
    assert row["item_12"] == "3" and row["version"] == "2" and row["corrected"] == "Y"
    assert row["sha256"] == rec["sha256"], "the hash is the one of the record as first received"


def test_nasal_columns_and_tnss(exported):
    ds, out, _ = exported
    cols = header(out / "csv" / "nasal_symptoms.csv")
    assert [c for c in cols if c in NASAL_SYMPTOMS] == list(NASAL_SYMPTOMS)
    recs = {r["id"]: r for r in by_type(ds, "nasal_symptoms")}
    rows = read_csv(out / "csv" / "nasal_symptoms.csv")
    for row in rows:
        p = current_version(recs[row["record_id"]])["payload"]
        assert int(row["tnss"]) == tnss(p["symptoms"])
        assert row["cough_choking_dosing"] == ("" if p["symptoms"]["cough_choking_dosing"] is None
                                               else str(p["symptoms"]["cough_choking_dosing"]))
    assert any(r["notes"] == "鼻子有点干" for r in rows), "Chinese free text survives the round trip"


def test_dose_rows_carry_ec_like_fields(exported):
    ds, out, _ = exported
    rows = read_csv(out / "csv" / "dose_confirmation.csv")
    missed = [r for r in rows if r["given"] == "N"]
    assert len(missed) == sum(1 for r in by_type(ds, "dose_confirmation") if not r["versions"][-1]["payload"]["given"])
    for r in missed:
        assert r["occurred"] == "N" and r["laterality"] == "" and r["left_volume"] == "" and r["missed_reason"]
    given = [r for r in rows if r["given"] == "Y"]
    assert all(r["occurred"] == "Y" and r["laterality"] == "BILATERAL" for r in given)
    assert any(r["loss"] == "coughed_choked" and r["left_retained"] == "N" for r in given)


def test_every_version_and_change_is_listed(exported):
    ds, out, _ = exported
    rows = read_csv(out / "csv" / "record_versions.csv")
    assert sum(1 for r in rows if r["version"] == "1") == len(ds["records"])
    rec = next(r for r in ds["records"] if len(r["versions"]) == 3)
    mine = [r for r in rows if r["record_id"] == rec["id"]]
    assert json.loads(mine[0]["new"]) == rec["versions"][0]["payload"], "version 1 keeps the original payload"
    changes = [(r["version"], r["field"], r["old"], r["new"], r["reason"], r["requested_by"]) for r in mine[1:]]
    assert changes[0] == ("2", "symptoms.epistaxis", "2", "3", rec["versions"][1]["reason"], "participant, by phone")
    assert {c[:4] for c in changes[1:]} == {("3", "symptoms.epistaxis", "3", "2"),
                                            ("3", "notes", "", "Corrected after the site visit")}
    assert all(r["created_by_id"] == "coord@bj01.example" and r["created_by_name"] == "Li Na" for r in mine[1:])


def test_audit_trail_and_participants(exported):
    ds, out, _ = exported
    audit = read_csv(out / "csv" / "audit_trail.csv")
    assert [int(a["seq"]) for a in audit] == sorted(a["seq"] for a in ds["audit"])
    assert sum(1 for a in audit if a["action"] == "record.correct") == 3
    parts = read_csv(out / "csv" / "participants.csv")
    assert [p["subject"] for p in parts] == ["P-001", "P-002", "P-003"]
    assert parts[0]["day1"] == "2026-03-02" and int(parts[0]["records"]) == sum(
        1 for r in ds["records"] if r["participant"] == "P-001")


def test_the_data_dictionary_describes_every_column_of_every_file(exported):
    _, out, _ = exported
    dictionary = read_csv(out / "csv" / "data_dictionary.csv")
    assert set(dictionary[0]) >= {"file", "name", "label_en", "label_zh-CN", "type", "codes"}
    described = {(d["file"], d["name"]) for d in dictionary}
    files = [p for p in (out / "csv").glob("*.csv") if p.name != "data_dictionary.csv"]
    assert len(files) == 6
    for path in files:
        for col in header(path):
            assert (path.name, col) in described, (path.name, col)
    assert len(described) == len(dictionary), "each column is described once"
    for d in dictionary:
        assert d["label_en"] and d["label_zh-CN"] and d["type"] in ("integer", "decimal", "text", "boolean", "date", "datetime")
    speech = next(d for d in dictionary if d["file"] == "alsfrs_r.csv" and d["name"] == "item_1")
    assert speech["codes"].startswith("4=") and "言语" in speech["label_zh-CN"]
    total = next(d for d in dictionary if d["name"] == "total")
    assert total["origin"].startswith("derived")
