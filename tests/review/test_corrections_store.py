"""Data change requests (DC-02): a new version through correct_record, the original kept, audit rows
with old/new/reason/who asked, the device told; form values typed by the field they correct."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from server.store.audit import Actor, audit_for_entity
from server.store.changes import changes_since
from server.store.corrections import correctable_fields, parse_value, record_for_correction, request_correction
from server.store.participants import get_participant
from server.store.records import record_with_versions
from shared.errors import EproError
from tests.review.conftest import CST, PROTOCOL, staff
from tests.support.records import make_alsfrs, make_dose, make_nasal

ENTERED = datetime(2025, 2, 25, 10, 0, tzinfo=CST)
NOW = datetime(2025, 3, 2, 10, 0, tzinfo=CST)


def _coord(db):
    return Actor.staff(staff(db, "coord@bj01.example")["id"])


def test_a_correction_is_a_new_version_the_original_stays_and_the_device_is_told(db, devices):
    env = make_alsfrs("S-001", entered_at=ENTERED)
    devices.send([env])
    pid = get_participant(db, "S-001")["id"]
    cursor = changes_since(db, pid, 0)[1]
    result = request_correction(db, env["id"], {"items.7": parse_value("int", "2")},
                                reason="participant says walking item was ticked wrongly",
                                requested_by="participant, by phone", actor=_coord(db), protocol=PROTOCOL,
                                expected_version=1, site_id=get_participant(db, "S-001")["site_id"], now=NOW)
    assert result["version"] == 2 and result["changes"] == [{"field": "payload.items.7", "old": 4, "new": 2}]
    rec = record_with_versions(db, env["id"])
    assert [v["version"] for v in rec["versions"]] == [1, 2]
    assert rec["versions"][0]["payload"] == env["payload"]          # the original, as received
    assert rec["current"]["payload"]["items"]["7"] == 2
    assert rec["envelope"]["payload"]["items"]["7"] == 4             # first version on the record row
    audit = audit_for_entity(db, "record", env["id"])
    assert [a["action"] for a in audit] == ["record.accept", "record.correct"]
    d = audit[-1]["detail"]
    assert d["changes"] == [{"field": "payload.items.7", "old": 4, "new": 2}]
    assert d["reason"].startswith("participant says") and d["requested_by"] == "participant, by phone"
    assert d["lag_days"] > 4 and audit[-1]["actor_id"] == str(staff(db, "coord@bj01.example")["id"])
    told = [c for c in changes_since(db, pid, cursor)[0] if c["kind"] == "correction"]
    assert len(told) == 1 and told[0]["data"]["record_id"] == env["id"] and told[0]["data"]["version"] == 2


def test_corrections_need_a_reason_a_valid_result_the_current_version_and_the_right_site(db, devices):
    env = make_alsfrs("S-001", entered_at=ENTERED)
    devices.send([env])
    kw = dict(requested_by="participant", actor=_coord(db), protocol=PROTOCOL, now=NOW)
    with pytest.raises(EproError) as err:
        request_correction(db, env["id"], {"items.1": 3}, reason=" ", **kw)
    assert err.value.status == 400 and err.value.errors[0].rule == "reason_required"
    with pytest.raises(EproError) as err:
        request_correction(db, env["id"], {"items.1": 7}, reason="typo", **kw)
    assert err.value.code == "record.correction_invalid"
    assert any(e.field.startswith("payload.items") for e in err.value.errors)
    with pytest.raises(EproError) as err:  # another site's staff cannot reach the record
        request_correction(db, env["id"], {"items.1": 3}, reason="typo", site_id=999, **kw)
    assert err.value.status == 404
    request_correction(db, env["id"], {"items.1": 3}, reason="typo", expected_version=1, **kw)
    with pytest.raises(EproError) as err:
        request_correction(db, env["id"], {"items.1": 2}, reason="typo", expected_version=1, **kw)
    assert err.value.status == 409
    assert len(record_with_versions(db, env["id"])["versions"]) == 2


def test_fields_of_each_record_type_have_kinds_and_text_is_typed_by_them(db, devices):
    dose = make_dose("S-001", entered_at=ENTERED + timedelta(days=4), planned=date(2025, 3, 1))
    nasal = make_nasal("S-001", day=date(2025, 3, 1), entered_at=ENTERED + timedelta(days=4, hours=8))
    devices.send([dose, nasal])
    kinds = {f["path"]: f["kind"] for f in record_for_correction(db, dose["id"])["fields"]}
    assert kinds["nostrils.left.retained"] == "bool_or_null" and kinds["given"] == "bool"
    assert kinds["missed_reason"] == "text_or_null" and kinds["loss"] == "list" and kinds["dose_number"] == "int"
    nk = {f["path"]: f["kind"] for f in correctable_fields(nasal["payload"])}
    assert nk["symptoms.cough_choking_dosing"] == "int_or_null" and nk["symptoms.epistaxis"] == "int"
    assert nk["notes"] == "text" and nk["sought_medical_care"] == "bool"
    assert parse_value("int_or_null", "") is None and parse_value("bool", "是") is True
    assert parse_value("list", "sneezed, ran_out") == ["sneezed", "ran_out"] and parse_value("list", "") == []
    assert parse_value("text", " it's <b>fine</b> ") == "it's <b>fine</b>"
    for kind, text in (("int", "two"), ("bool", "maybe"), ("list", "[1,")):
        with pytest.raises(EproError) as err:
            parse_value(kind, text)
        assert err.value.status == 400
    # a linked change of several fields in one version: a dose marked not given after all
    fix = {"given": False, "administered_at": None, "missed_reason": "forgot",
           "nostrils.left": {"given": False, "volume": None, "retained": None},
           "nostrils.right": {"given": False, "volume": None, "retained": None}}
    out = request_correction(db, dose["id"], fix, reason="caregiver: the dose was not given", requested_by="caregiver",
                             actor=_coord(db), protocol=PROTOCOL, now=NOW + timedelta(days=2))
    assert out["payload"]["given"] is False and len(out["changes"]) == 5
