"""The export dataset contract: what check_dataset refuses, and the payload-path helpers."""

from __future__ import annotations

import copy

import pytest

from server.exports import csv_export, fhir_export, odm_export, sdtm_export
from server.exports.dataset import (
    DatasetError, check_dataset, current_envelope, diff_payloads, participant_timeline, with_path,
)
from shared.schemas import load_record


def test_the_synthetic_dataset_is_fit(dataset):
    assert check_dataset(dataset) == []


@pytest.mark.parametrize("where", ["study", "participant", "record", "payload"])
def test_a_key_that_could_unblind_is_refused_by_every_export(dataset, tmp_path, where):
    bad = copy.deepcopy(dataset)
    if where == "study":
        bad["study"]["arm"] = "A"
    elif where == "participant":
        bad["participants"][0]["cohort"] = 2
    elif where == "record":
        bad["records"][0]["dose_level"] = "high"
    else:
        bad["records"][0]["versions"][0]["payload"]["concentration"] = "x"
    problems = check_dataset(bad)
    assert problems and all("masking" in p for p in problems)
    for export in (csv_export, odm_export, sdtm_export, fhir_export):
        with pytest.raises(DatasetError) as err:
            export(bad, tmp_path / export.__name__)
        assert "masking" in str(err.value)
        assert not (tmp_path / export.__name__).exists()


def test_version_rules(dataset):
    corrected = next(r for r in dataset["records"] if len(r["versions"]) > 1)
    bad = copy.deepcopy(dataset)
    rec = next(r for r in bad["records"] if r["id"] == corrected["id"])
    rec["versions"][1]["reason"] = "  "
    rec["versions"][1]["changes"] = []
    problems = check_dataset(bad)
    assert any("needs a reason" in p for p in problems)
    assert any("changes do not match" in p for p in problems)
    bad = copy.deepcopy(dataset)
    next(r for r in bad["records"] if r["id"] == corrected["id"])["versions"][1]["version"] = 5
    assert any("numbered 1..n" in p for p in check_dataset(bad))


def test_times_after_generation_and_unknown_participants_are_refused(dataset):
    bad = copy.deepcopy(dataset)
    bad["generated_at"] = "2026-03-01T00:00:00Z"
    bad["records"][0]["participant"] = "P-999"
    problems = check_dataset(bad)
    assert any("received after generated_at" in p for p in problems)
    assert any("P-999" in p for p in problems)
    assert check_dataset({"study": {}}) and "missing key 'records'" in check_dataset({"study": {}})


def test_diff_and_with_path_round_trip():
    old = {"gastrostomy": False, "items": {"1": 4, "5a": 3}, "nostrils": {"left": {"given": True}}, "loss": []}
    new = with_path(with_path(with_path(old, "payload.items.5a", None), "items.5b", 2), "loss", ["sneezed"])
    new = with_path(new, "nostrils.left.given", False)
    assert old["items"] == {"1": 4, "5a": 3}, "with_path never mutates its input"
    assert diff_payloads(old, new) == [
        {"field": "items.5a", "old": 3, "new": None}, {"field": "items.5b", "old": None, "new": 2},
        {"field": "loss", "old": [], "new": ["sneezed"]}, {"field": "nostrils.left.given", "old": True, "new": False}]
    assert diff_payloads(old, old) == []


def test_current_envelope_is_a_valid_record_with_the_latest_payload(dataset):
    rec = next(r for r in dataset["records"] if len(r["versions"]) == 3)
    env = current_envelope(rec)
    assert env["payload"] == rec["versions"][-1]["payload"] and "versions" not in env
    env = {k: v for k, v in env.items() if k in ("id", "type", "schema_version", "instrument_version", "participant",
                                                 "respondent", "event_time", "entered_at", "payload")}
    load_record({**env, "device_seq": 1})


def test_timeline_uses_dose_one_as_given(dataset):
    part = dataset["participants"][0]
    tl = participant_timeline(part, dataset["records"])
    assert tl.first_dose_date.isoformat() == part["first_dose_date"]
    assert tl.dose1_administered_at is not None and tl.dose1_administered_at.isoformat() == "2026-03-02T09:30:00+08:00"


def test_store_shaped_actors_and_change_fields_are_accepted(dataset, tmp_path):
    """The server store keeps actors as "kind:id" and change fields with a "payload." prefix."""
    from server.exports import export_all
    from tests.exports.conftest import read_csv

    ds = copy.deepcopy(dataset)
    rec = next(r for r in ds["records"] if len(r["versions"]) == 3)
    for v in rec["versions"][1:]:
        v["created_by"] = "staff:7"
        v["changes"] = [{**c, "field": "payload." + c["field"]} for c in v["changes"]]
    rec["originator"] = "device:dev-0a1b"
    rec["versions"][0]["created_by"] = "device:dev-0a1b"
    assert check_dataset(ds) == []
    export_all(ds, tmp_path / "e", formats=("csv", "odm"))
    rows = [r for r in read_csv(tmp_path / "e" / "csv" / "record_versions.csv") if r["record_id"] == rec["id"]]
    assert [(r["created_by_kind"], r["created_by_id"]) for r in rows][-1] == ("staff", "7")
    assert rows[-1]["field"] in ("notes", "symptoms.epistaxis")


def test_a_change_may_set_a_whole_object_but_must_match_the_payloads(dataset):
    ds = copy.deepcopy(dataset)
    rec = next(r for r in ds["records"] if r["type"] == "dose_confirmation"
               and r["versions"][0]["payload"]["loss"] == ["coughed_choked"])
    old = rec["versions"][0]["payload"]
    new = with_path(with_path(old, "nostrils.left.retained", True), "loss", ["coughed_choked"])
    rec["versions"].append({"version": 2, "payload": new, "created_at": "2026-03-07T00:00:00Z",
                            "created_by": "staff:7", "requested_by": "caregiver", "reason": "left side was retained",
                            "changes": [{"field": "payload.nostrils.left", "old": old["nostrils"]["left"],
                                         "new": new["nostrils"]["left"]}]})
    assert check_dataset(ds) == []
    rec["versions"][1]["changes"].append({"field": "payload.kit_number", "old": "K-0107", "new": "K-9"})
    assert any("changes do not match" in p for p in check_dataset(ds))
