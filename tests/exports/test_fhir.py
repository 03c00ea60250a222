"""FHIR R4 export: every resource valid against the official JSON schema (offline), with the expected shape."""

from __future__ import annotations

import copy
import json
import time

import pytest
from jsonschema import Draft6Validator

from server.exports.dataset import current_version
from server.exports.validate import fhir_schema, validate_fhir


def load(out, name):
    return json.loads((out / "fhir" / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def root_validator():
    return Draft6Validator(fhir_schema())


def test_files(exported):
    _, out, _ = exported
    assert sorted(p.name for p in (out / "fhir").iterdir()) == [
        "Questionnaire-alsfrs-r-en-draft-1.json", "Questionnaire-alsfrs-r-zh-CN-draft-1.json",
        "Questionnaire-nasal-symptoms-en-draft-1.json", "Questionnaire-nasal-symptoms-zh-CN-draft-1.json",
        "QuestionnaireResponse-bundle.json"]


def test_every_resource_is_valid_through_the_root_schema(exported, root_validator):
    _, out, _ = exported
    started = time.monotonic()
    for path in sorted((out / "fhir").iterdir()):
        resource = json.loads(path.read_text(encoding="utf-8"))
        assert list(root_validator.iter_errors(resource)) == [], path.name
        assert validate_fhir(resource) == [], path.name
        if resource["resourceType"] == "Bundle":
            for entry in resource["entry"]:
                assert validate_fhir(entry["resource"]) == []
    assert time.monotonic() - started < 30, "the schema is loaded once and validation stays fast"


@pytest.mark.parametrize("breakage", ["status", "answer type", "unknown field", "bad date", "resource type"])
def test_the_validator_catches_a_broken_resource(exported, root_validator, breakage):
    _, out, _ = exported
    bundle = load(out, "QuestionnaireResponse-bundle.json")
    first = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "QuestionnaireResponse")
    qr = copy.deepcopy(bundle["entry"][first]["resource"])
    if breakage == "status":
        qr["status"] = "done"
    elif breakage == "answer type":
        qr["item"][1]["answer"][0]["valueCoding"]["code"] = 4
    elif breakage == "unknown field":
        qr["cohort"] = "2"
    elif breakage == "bad date":
        qr["authored"] = "2026-02-27 10:00"
    else:
        qr["resourceType"] = "QuestionaireResponse"
    assert validate_fhir(qr)
    assert list(root_validator.iter_errors(qr))
    broken = copy.deepcopy(bundle)
    broken["entry"][first]["resource"] = qr
    assert validate_fhir(broken), "a broken entry makes the Bundle invalid"


def test_questionnaires(exported):
    _, out, _ = exported
    q = load(out, "Questionnaire-alsfrs-r-en-draft-1.json")
    assert q["status"] == "draft" and q["version"] == "cedarbaum-1999/en/draft-1" and q["language"] == "en"
    links = [i["linkId"] for i in q["item"]]
    assert links[:7] == ["gastrostomy", "1", "2", "3", "4", "5a", "5b"] and links[-1] == "total"
    by = {i["linkId"]: i for i in q["item"]}
    assert by["5a"]["enableWhen"] == [{"question": "gastrostomy", "operator": "=", "answerBoolean": False}]
    assert by["5b"]["enableWhen"][0]["answerBoolean"] is True
    opt = by["1"]["answerOption"][0]
    assert opt["extension"][0] == {"url": "http://hl7.org/fhir/StructureDefinition/itemWeight", "valueDecimal": 4}
    assert opt["valueCoding"]["_display"]["extension"][0]["extension"][0]["valueCode"] == "zh-CN"
    assert "code" not in by["1"], "no invented LOINC code"
    assert by["total"]["readOnly"] is True and "calculatedExpression" in by["total"]["extension"][0]["url"]
    zh = load(out, "Questionnaire-alsfrs-r-zh-CN-draft-1.json")
    assert zh["language"] == "zh-CN" and zh["version"] == "cedarbaum-1999/zh-CN/draft-1" and zh["url"] == q["url"]
    zby = {i["linkId"]: i for i in zh["item"]}
    assert zby["1"]["text"] == "言语: 您说话的情况怎么样？" or zby["1"]["text"].endswith("您说话的情况怎么样？")
    back = zby["1"]["_text"]["extension"][0]["extension"]
    assert back[0]["valueCode"] == "en" and back[1]["valueString"] == by["1"]["text"], "the English rides along"
    n = load(out, "Questionnaire-nasal-symptoms-en-draft-1.json")
    nl = {i["linkId"]: i for i in n["item"]}
    assert len([i for i in n["item"] if i["type"] == "choice"]) == 14
    assert nl["cough_choking_dosing"]["required"] is False and nl["epistaxis"]["required"] is True


def test_bundle_holds_one_response_per_questionnaire_record(exported):
    ds, out, _ = exported
    bundle = load(out, "QuestionnaireResponse-bundle.json")
    assert bundle["type"] == "collection" and bundle["meta"]["tag"][0]["display"] == "DEMO — synthetic data"
    wanted = {r["id"]: r for r in ds["records"] if r["type"] in ("alsfrs_r", "nasal_symptoms")}
    got = {e["resource"]["id"]: e for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"}
    carers = {e["fullUrl"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RelatedPerson"}
    assert carers, "a caregiver answered in the dataset"
    assert set(got) == set(wanted)
    for rid, entry in got.items():
        qr, rec = entry["resource"], wanted[rid]
        assert entry["fullUrl"] == f"urn:uuid:{rid}"
        cur = current_version(rec)
        assert qr["status"] == ("amended" if cur["version"] > 1 else "completed")
        assert qr["meta"]["versionId"] == str(cur["version"])
        assert qr["subject"]["identifier"]["value"] == rec["participant"]
        assert qr["source"]["type"] == ("RelatedPerson" if rec["respondent"] == "caregiver" else "Patient")
        ext = {e["url"].rsplit("/", 1)[-1]: e for e in qr["extension"]}
        assert ext["respondent"]["valueCode"] == rec["respondent"]
        assert ("answered-with-help" in ext) == (rec["respondent"] == "participant_assisted")
        if rec["respondent"] == "caregiver":
            carer = carers[qr["author"]["reference"]]
            assert qr["author"]["type"] == "RelatedPerson" and qr["source"] == qr["author"]
            assert carer["patient"]["identifier"]["value"] == rec["participant"], "linked to the Patient"
        elif rec["originator"]["kind"] == "device":
            assert qr["author"]["type"] == "Patient"
        lang = rec["instrument_version"].split("/")[2]
        assert qr["questionnaire"].endswith("|" + ("cedarbaum-1999" if rec["type"] == "alsfrs_r"
                                                   else "epro-tnss-adapted") + f"/{lang}/draft-1")
        answers = {i["linkId"]: i["answer"][0] for i in qr["item"]}
        if rec["type"] == "alsfrs_r":
            for key, value in cur["payload"]["items"].items():
                assert answers[key]["valueCoding"]["code"] == str(value)
        else:
            assert answers["date"]["valueDate"] == cur["payload"]["date"]
            if cur["payload"]["symptoms"]["cough_choking_dosing"] is None:
                assert "cough_choking_dosing" not in answers
