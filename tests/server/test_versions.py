"""Corrections are new versions; the submission stays retrievable and replays still compare with it."""

from __future__ import annotations

import pytest

from server.store.audit import Actor, audit_for_entity
from server.store.records import get_record, record_with_versions, records_for_participant
from server.store.versions import correct_record
from shared.errors import EproError
from tests.server.helpers import ADMIN, pair, upload
from tests.support.records import make_alsfrs, make_nasal

COORD = Actor.staff(2)


@pytest.fixture
def stored(client, db):
    dev = pair(client, db)
    env = make_alsfrs("S-001", score=3)
    receipt = upload(client, dev["token"], [env]).get_json()["results"][0]["receipt"]
    return dev, env, receipt


def test_a_correction_appends_a_version_with_who_why_old_and_new(db, stored):
    _dev, env, _receipt = stored
    v = correct_record(db, env["id"], {"items.7": 2, "payload.items.8": 1}, reason="item misread",
                       requested_by="participant by phone", actor=COORD)
    assert v["version"] == 2
    assert v["changes"] == [{"field": "payload.items.7", "old": 3, "new": 2},
                            {"field": "payload.items.8", "old": 3, "new": 1}]
    rec = record_with_versions(db, env["id"])
    assert [x["version"] for x in rec["versions"]] == [1, 2]
    assert rec["versions"][0]["payload"] == env["payload"]  # the original stays retrievable
    assert rec["current"]["payload"]["items"]["7"] == 2 and rec["envelope"] == env
    second = rec["versions"][1]
    assert (second["created_by"], second["requested_by"], second["reason"]) == (
        "staff:2", "participant by phone", "item misread")
    audit = audit_for_entity(db, "record", env["id"])[-1]
    assert audit["action"] == "record.correct" and audit["detail"]["changes"] == v["changes"]
    assert records_for_participant(db, 1)[0]["version"] == 2


def test_a_replay_after_a_correction_still_matches_the_first_version(client, db, stored):
    dev, env, receipt = stored
    correct_record(db, env["id"], {"items.1": 0}, reason="r", requested_by="site", actor=COORD)
    res = upload(client, dev["token"], [env]).get_json()["results"][0]
    assert res["status"] == "duplicate" and res["receipt"] == receipt
    assert get_record(db, env["id"])["sha256"] == receipt["sha256"]


def test_correction_rules(db, stored):
    _dev, env, _ = stored
    cases = [
        ({"updates": {"items.1": 0}, "reason": "", "requested_by": "x"}, "validation.invalid"),
        ({"updates": {"items.1": 0}, "reason": "r", "requested_by": ""}, "validation.invalid"),
        ({"updates": {}, "reason": "r", "requested_by": "x"}, "validation.invalid"),
        ({"updates": {"items.1": 3}, "reason": "r", "requested_by": "x"}, "record.no_change"),
        ({"updates": {"items.1": 9}, "reason": "r", "requested_by": "x"}, "record.correction_invalid"),
        ({"updates": {"items.5b": 2}, "reason": "r", "requested_by": "x"}, "record.correction_invalid"),
    ]
    for kwargs, code in cases:
        with pytest.raises(EproError) as err:
            correct_record(db, env["id"], kwargs["updates"], reason=kwargs["reason"],
                           requested_by=kwargs["requested_by"], actor=COORD)
        assert err.value.code == code, kwargs
    with pytest.raises(EproError) as err:
        correct_record(db, "00000000-0000-4000-8000-000000000000", {"items.1": 0}, reason="r",
                       requested_by="x", actor=COORD)
    assert err.value.code == "record.not_found"
    assert len(record_with_versions(db, env["id"])["versions"]) == 1


def test_two_staff_correcting_the_same_version_second_gets_409(db, stored):
    _dev, env, _ = stored
    correct_record(db, env["id"], {"items.2": 1}, reason="a", requested_by="x", actor=COORD,
                   expected_version=1)
    with pytest.raises(EproError) as err:
        correct_record(db, env["id"], {"items.2": 2}, reason="b", requested_by="x", actor=ADMIN,
                       expected_version=1)
    assert err.value.code == "record.stale_version" and err.value.status == 409


def test_optional_notes_can_be_added_by_correction(client, db):
    dev = pair(client, db)
    env = make_nasal("S-001")
    env["payload"].pop("notes")
    upload(client, dev["token"], [env])
    v = correct_record(db, env["id"], {"notes": "nosebleed stopped by itself"}, reason="phone call",
                       requested_by="caregiver by phone", actor=COORD)
    assert v["changes"] == [{"field": "payload.notes", "old": None, "new": "nosebleed stopped by itself"}]
