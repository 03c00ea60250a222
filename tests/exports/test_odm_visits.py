"""ODM for another EDC (issue 10 §5): a StudyEventDef per protocol visit and StudyEventData per visit,
investigator sign-offs as Signature elements with a SignatureDef, each item's Question in the wording
the participant saw in both languages; still valid against the XSD, and read back with odmlib (an
independent ODM library) every value is found."""

from __future__ import annotations

import odmlib.loader as LD
import odmlib.odm_loader as OL
import pytest
from lxml import etree

from server.exports.common import META_FIELDS, payload_values
from server.exports.dataset import current_version
from server.exports.odm import item_oid, odm_export, wording
from server.exports.validate import odm_schema, safe_parser, validate_odm
from server.exports.visits import protocol_for, protocol_visits
from shared.instruments import load_instrument
from tests.exports.factories import INVESTIGATOR, make_dataset

RECORD_ITEMS = ("record_id", "respondent", "originator_kind", "originator_id", "instrument_version",
                "event_time", "entered_at", "received_at", "server_seq", "sha256")


def signed_dataset():
    ds = make_dataset()
    p1 = [r for r in ds["records"] if r["participant"] == "P-001"][:5]
    ds["signoffs"] = [{"id": 7, "subject": "P-001", "signer": INVESTIGATOR, "printed_name": "Wang Wei",
                       "meaning": "Reviewed and approved", "signed_at": "2026-03-10T02:00:00Z", "state": "valid",
                       "covered": [{"record_id": r["id"], "version": len(r["versions"])} for r in p1]}]
    return ds, p1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    ds, signed = signed_dataset()
    out = tmp_path_factory.mktemp("odmv")
    (tx,) = odm_export(ds, out)
    (snap,) = odm_export(ds, out, file_type="Snapshot")
    return ds, signed, tx, snap


def _odmlib(path):
    loader = LD.ODMLoader(OL.XMLODMLoader(model_package="odm_1_3_2"))
    loader.open_odm_document(str(path))
    return loader.root()


def _values(value_of_field, rtype, rec):
    cur = current_version(rec)
    want = {item_oid(None, n): value_of_field(n, rec) for n in RECORD_ITEMS}
    want.update({item_oid(rtype, k): v for k, v in payload_values(rtype, cur["payload"]).items() if v is not None})
    return want


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def test_still_valid_against_the_xsd(files):
    _, _, tx, snap = files
    for path in (tx, snap):
        tree = etree.parse(str(path), safe_parser())
        assert odm_schema().validate(tree), [e.message for e in odm_schema().error_log][:3]
        assert validate_odm(tree) == []


def test_odmlib_reads_every_current_value_of_every_record(files):
    ds, _, _, snap = files
    odm = _odmlib(snap)
    found = {}
    for sd in odm.ClinicalData[0].SubjectData:
        for se in sd.StudyEventData:
            for fd in se.FormData:
                found[fd.FormRepeatKey] = (sd.SubjectKey, se.StudyEventOID,
                                           {i.ItemOID: i.Value for g in fd.ItemGroupData for i in g.ItemData})
    assert set(found) == {r["id"] for r in ds["records"]}
    meta = lambda n, r: {"record_id": r["id"], "originator_kind": r["originator"]["kind"],  # noqa: E731
                         "originator_id": r["originator"]["id"]}.get(n, r.get(n))
    for rec in ds["records"]:
        subject, _event, got = found[rec["id"]]
        assert subject == rec["participant"]
        want = {k: _text(v) for k, v in _values(meta, rec["type"], rec).items()}
        assert {k: got.get(k) for k in want} == want, rec["id"]


def test_a_study_event_per_protocol_visit(files):
    ds, _, tx, _ = files
    odm = _odmlib(tx)
    mdv = odm.Study[0].MetaDataVersion[0]
    visits = protocol_visits(protocol_for("NCT06598202"))
    defs = {e.OID: e for e in mdv.StudyEventDef}
    assert [v.oid for v in visits] + ["SE.UNSCHEDULED"] == [e.OID for e in mdv.StudyEventDef]
    assert [r.StudyEventOID for r in mdv.Protocol.StudyEventRef] == list(defs)
    assert defs["SE.BASELINE"].Name == "BASELINE" and defs["SE.DAY008"].Name == "DAY 8"
    assert defs["SE.UNSCHEDULED"].Repeating == "Yes" and defs["SE.DAY008"].Repeating == "No"
    p1 = next(s for s in odm.ClinicalData[0].SubjectData if s.SubjectKey == "P-001")
    events = [(e.StudyEventOID, e.StudyEventRepeatKey) for e in p1.StudyEventData]
    assert events[0] == ("SE.BASELINE", None) and ("SE.DAY001", None) in events
    assert ("SE.UNSCHEDULED", "6.01") in events, "the second diary of day 6"
    assert len(events) == len(set(events))


def test_signoffs_are_signatures_with_a_signature_def(files):
    ds, signed, tx, snap = files
    for path in (tx, snap):
        odm = _odmlib(path)
        sdefs = odm.AdminData[0].SignatureDef
        assert [s.OID for s in sdefs] == ["SD.INVESTIGATOR_REVIEW"] and sdefs[0].Methodology == "Electronic"
        assert "Reviewed and approved" in sdefs[0].Meaning._content
        users = {u.OID: u for u in odm.AdminData[0].User}
        sigs = {}
        for sd in odm.ClinicalData[0].SubjectData:
            for se in sd.StudyEventData:
                for fd in se.FormData:
                    if fd.Signature is not None:
                        sigs[fd.FormRepeatKey] = fd.Signature
        assert set(sigs) == {r["id"] for r in signed}
        for sig in sigs.values():
            assert sig.SignatureRef.SignatureOID == "SD.INVESTIGATOR_REVIEW"
            assert sig.DateTimeStamp._content == "2026-03-10T02:00:00Z"
            assert users[sig.UserRef.UserOID].UserType == "Investigator"


def q_texts(item) -> dict[str, str]:
    q = item.Question  # odmlib gives an empty Question when the element is absent
    return {t.lang: t._content for t in (q.TranslatedText or [])} if q is not None else {}


def test_questions_carry_the_wording_the_participant_saw_in_both_languages(files):
    _, _, tx, _ = files
    odm = _odmlib(tx)
    items = {i.OID: i for i in odm.Study[0].MetaDataVersion[0].ItemDef}
    alsfrs = {i["id"]: i for i in load_instrument("alsfrs_r").content["items"]}
    q = items[item_oid("alsfrs_r", "item_1")].Question
    texts = {t.lang: t._content for t in q.TranslatedText}
    assert texts == {"en": f"{alsfrs['1']['title']['en']}: {alsfrs['1']['question']['en']}",
                     "zh-CN": f"{alsfrs['1']['title']['zh-CN']}: {alsfrs['1']['question']['zh-CN']}"}
    nasal = load_instrument("nasal_symptoms").content
    q = items[item_oid("nasal_symptoms", "epistaxis_needed_help")].Question
    assert {t.lang: t._content for t in q.TranslatedText} == nasal["questions"]["epistaxis_needed_help"]
    for rtype in ("alsfrs_r", "nasal_symptoms", "dose_confirmation"):
        from server.exports.common import fields_for
        for f in fields_for(rtype):
            item = items[item_oid(rtype, f.name)]
            asked = wording(rtype, f.name)
            if f.derived:
                assert q_texts(item) == {}, f"nobody was asked {f.name}"
            else:
                assert asked is not None and set(asked) == {"en", "zh-CN"}, f.name
                assert q_texts(item) == asked
    assert all(q_texts(items[item_oid(None, f.name)]) == {} for f in META_FIELDS if item_oid(None, f.name) in items)
