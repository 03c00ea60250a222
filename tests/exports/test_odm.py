"""ODM 1.3.2 export: valid against the official XSD (offline), complete audit records, and a validator
that really catches broken files."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from server.exports.odm import build_odm, odm_export, record_history
from server.exports.validate import ODM_NS, odm_schema, safe_parser, standards_dir, validate_odm
from tests.exports.factories import COORDINATOR, correct, make_dataset

NS = {"o": ODM_NS}


@pytest.fixture(scope="module")
def xsd() -> etree.XMLSchema:
    """The official schema loaded straight from the standards folder, as its README prescribes."""
    root = standards_dir()
    assert root is not None, "the standards folder must be beside the repository"
    return etree.XMLSchema(etree.parse(str(root / "odm-1.3.2" / "ODM1-3-2.xsd"), safe_parser()))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    ds = make_dataset()
    out = tmp_path_factory.mktemp("odm")
    (tx,) = odm_export(ds, out)
    (snap,) = odm_export(ds, out, file_type="Snapshot")
    return ds, etree.parse(str(tx), safe_parser()), etree.parse(str(snap), safe_parser()), tx


def test_both_files_validate_against_the_official_schema(files, xsd):
    _, tx, snap, _ = files
    xsd.assertValid(tx)
    xsd.assertValid(snap)
    assert validate_odm(tx) == [] and validate_odm(snap) == []


@pytest.mark.parametrize("breakage", [
    "drop FileOID", "unknown element", "bad TransactionType", "ItemData outside ItemGroupData",
    "AuditRecord without UserRef", "undefined ItemOID", "stamp after creation", "not xml",
])
def test_the_validator_catches_a_broken_file(files, xsd, breakage):
    _, tx, _, path = files
    doc = copy.deepcopy(tx)
    root = doc.getroot()
    first_item = root.find(".//o:ItemData", NS)
    if breakage == "drop FileOID":
        del root.attrib["FileOID"]
    elif breakage == "unknown element":
        etree.SubElement(root.find("o:Study", NS), f"{{{ODM_NS}}}Arm").text = "A"
    elif breakage == "bad TransactionType":
        root.find(".//o:FormData", NS).set("TransactionType", "Overwrite")
    elif breakage == "ItemData outside ItemGroupData":
        root.find(".//o:FormData", NS).append(copy.deepcopy(first_item))
    elif breakage == "AuditRecord without UserRef":
        audit = root.find(".//o:AuditRecord", NS)
        audit.remove(audit.find("o:UserRef", NS))
    elif breakage == "undefined ItemOID":
        first_item.set("ItemOID", "IT.NOT_DEFINED")
    elif breakage == "stamp after creation":
        root.find(".//o:FormData/o:AuditRecord/o:DateTimeStamp", NS).text = "2030-01-01T00:00:00Z"
    if breakage == "not xml":
        problems = validate_odm(path.read_bytes()[:-40])
    else:
        problems = validate_odm(doc)
    assert problems, breakage
    if breakage in ("drop FileOID", "unknown element", "bad TransactionType", "ItemData outside ItemGroupData",
                    "AuditRecord without UserRef"):
        assert not xsd.validate(doc), "the official schema alone refuses it"


def test_structure_and_oids(files):
    ds, tx, _, _ = files
    root = tx.getroot()
    assert root.get("ODMVersion") == "1.3.2" and root.get("FileType") == "Transactional"
    assert root.get("CreationDateTime") == ds["generated_at"]
    assert "DEMO — synthetic data" in root.get("Description")
    assert "draft" in root.find(".//o:MetaDataVersion", NS).get("Description")
    study = root.find("o:Study", NS)
    assert study.get("OID") == "NCT06598202"
    forms = {f.get("OID") for f in study.iterfind(".//o:FormDef", NS)}
    assert forms == {"F.ALSFRS_R", "F.NASAL_SYMPTOMS", "F.DOSE_CONFIRMATION"}
    items = {i.get("OID") for i in study.iterfind(".//o:ItemDef", NS)}
    assert {"IT.ALSFRS_R.ITEM_5A", "IT.ALSFRS_R.ITEM_5B", "IT.ALSFRS_R.TOTAL", "IT.NASAL_SYMPTOMS.EPISTAXIS",
            "IT.NASAL_SYMPTOMS.TNSS", "IT.DOSE_CONFIRMATION.OCCURRED", "IT.RECORD.RECEIVED_AT"} <= items
    speech = study.find(".//o:CodeList[@OID='CL.ALSFRS_R.ITEM_1']", NS)
    decode = speech.find("o:CodeListItem[@CodedValue='4']/o:Decode", NS)
    assert {t.get("{http://www.w3.org/XML/1998/namespace}lang") for t in decode} == {"en", "zh-CN"}
    total = study.find(".//o:ItemRef[@ItemOID='IT.ALSFRS_R.TOTAL']", NS)
    assert study.find(f".//o:MethodDef[@OID='{total.get('MethodOID')}']", NS) is not None
    subjects = root.findall(".//o:SubjectData", NS)
    assert [s.get("SubjectKey") for s in subjects] == ["P-001", "P-002", "P-003"]
    inserts = root.findall(".//o:FormData[@TransactionType='Insert']", NS)
    assert sorted(f.get("FormRepeatKey") for f in inserts) == sorted(r["id"] for r in ds["records"])
    updates = root.findall(".//o:FormData[@TransactionType='Update']", NS)
    assert len(updates) == sum(len(r["versions"]) - 1 for r in ds["records"])
    users = {u.get("OID") for u in root.iterfind(".//o:AdminData/o:User", NS)}
    assert {"USR.device.D-001", "USR.staff.coord@bj01.example", "USR.SYSTEM"} <= users


def test_every_version_is_an_audited_transaction(files):
    ds, tx, _, _ = files
    rec = next(r for r in ds["records"] if len(r["versions"]) == 3)
    history = record_history(tx, rec["id"])
    assert [h["transaction"] for h in history] == ["Insert", "Update", "Update"]
    assert history[0]["user"] == "USR.device.D-001" and history[0]["reason"] is None
    assert history[0]["values"]["IT.NASAL_SYMPTOMS.EPISTAXIS"] == ("2", None), "the original value is kept"
    assert history[1]["values"] == {"IT.NASAL_SYMPTOMS.EPISTAXIS": ("3", "Update")}
    assert history[2]["values"]["IT.NASAL_SYMPTOMS.EPISTAXIS"] == ("2", "Update")
    assert history[2]["values"]["IT.NASAL_SYMPTOMS.NOTES"] == ("Corrected after the site visit", "Insert")
    for h, v in zip(history[1:], rec["versions"][1:]):
        assert h["user"] == "USR.staff.coord@bj01.example"
        assert v["reason"] in h["reason"] and v["requested_by"] in h["reason"]
        assert h["when"] == v["created_at"]
    assert history[0]["when"] == "2026-03-05T13:00:00Z", "version 1 is stamped with the device entry time, in UTC"


def test_every_form_transaction_has_who_where_when_and_source(files):
    _, tx, _, _ = files
    for form in tx.getroot().iterfind(".//o:FormData", NS):
        audit = form.find("o:AuditRecord", NS)
        assert audit is not None
        assert audit.find("o:UserRef", NS) is not None and audit.find("o:LocationRef", NS) is not None
        assert form.get("FormRepeatKey") in audit.findtext("o:SourceID", namespaces=NS)
        if form.get("TransactionType") == "Update":
            assert audit.findtext("o:ReasonForChange", namespaces=NS)


def test_snapshot_has_current_values_and_no_audit(files):
    ds, _, snap, _ = files
    root = snap.getroot()
    assert root.get("FileType") == "Snapshot" and root.find(".//o:AuditRecord", NS) is None
    assert root.find(".//*[@TransactionType]", NS) is None
    rec = next(r for r in ds["records"] if r["type"] == "alsfrs_r" and len(r["versions"]) > 1)
    (h,) = record_history(snap, rec["id"])
    assert h["values"]["IT.ALSFRS_R.ITEM_12"] == ("3", None)
    assert h["values"]["IT.ALSFRS_R.TOTAL"][0] == str(45)


def test_a_5a_to_5b_correction_removes_one_item_and_inserts_the_other(tmp_path, xsd):
    ds = make_dataset()
    rec = next(r for r in ds["records"] if r["participant"] == "P-001" and r["type"] == "alsfrs_r")
    correct(rec, {"gastrostomy": True, "items.5a": None, "items.5b": 3}, reason="has had a PEG since January",
            by=COORDINATOR, when=datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc), requested_by="investigator")
    tree = build_odm(ds)
    xsd.assertValid(tree)
    assert validate_odm(tree) == []
    update = record_history(tree, rec["id"])[1]["values"]
    assert update["IT.ALSFRS_R.ITEM_5A"] == (None, "Remove")
    assert update["IT.ALSFRS_R.ITEM_5B"] == ("3", "Insert")
    assert update["IT.ALSFRS_R.SCALE"] == ("5b", "Update")
    assert update["IT.ALSFRS_R.GASTROSTOMY"] == ("true", "Update")


def test_a_device_clock_ahead_of_the_server_is_not_trusted_for_the_stamp(tmp_path):
    ds = make_dataset()
    rec = ds["records"][0]
    received = datetime.fromisoformat(rec["received_at"].replace("Z", "+00:00"))
    ahead = (received + timedelta(hours=2)).astimezone(timezone(timedelta(hours=8))).isoformat()
    rec["entered_at"] = rec["event_time"] = ahead
    tree = build_odm(ds)
    assert validate_odm(tree) == []
    history = record_history(tree, rec["id"])
    assert history[0]["when"] == rec["received_at"]
    assert history[0]["values"] == {**history[0]["values"], "IT.RECORD.ENTERED_AT": (ahead, None)}


def test_schema_loads_offline_once():
    assert odm_schema() is odm_schema()
