"""Safety flags in the database: acknowledgement with outcome and note, audited, told to the device;
an acknowledged flag whose record changes shows that it changed; the counts cache."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta

import pytest

from server.store.audit import Actor, audit_for_entity, verify_chain
from server.store.changes import changes_since
from server.store.corrections import request_correction
from server.store.participants import get_participant
from server.store.reviews import (
    acknowledge_flag, cached_flag_counts, participant_flags, recompute_flag_counts,
)
from shared.errors import EproError
from tests.review.conftest import CST, PROTOCOL, staff
from tests.support.records import make_dose, make_nasal

DAY2 = datetime(2025, 3, 2, 20, 0, tzinfo=CST)
LATER = datetime(2025, 3, 3, 9, 0, tzinfo=CST)


def _actor(db, email="coord@bj01.example"):
    return Actor.staff(staff(db, email)["id"])


def _severe_diary(devices):
    env = make_nasal("S-001", day=date(2025, 3, 2), entered_at=DAY2)
    env["payload"]["symptoms"]["burning_stinging"] = 3
    devices.send([env])
    return env


def _flags(db, now=LATER):
    return participant_flags(db, PROTOCOL, get_participant(db, "S-001"), now=now)


def test_a_flag_is_open_until_acknowledged_then_audited_and_told_to_the_device(db, devices):
    env = _severe_diary(devices)
    p = get_participant(db, "S-001")
    found = _flags(db)
    flag = next(f for f in found["flags"] if f["rule"] == "symptom_severe")
    assert flag["key"] == f"symptom_severe:{env['id']}" and flag["state"] == "open"
    assert found["counts"]["open"] >= 1 and found["counts"]["open_high"] >= 1
    cursor = changes_since(db, p["id"], 0)[1]

    review = acknowledge_flag(db, PROTOCOL, p["id"], flag["key"], outcome="not_ae",
                              note="<script>alert(1)</script> called, burning settled", actor=_actor(db),
                              staff_role="coordinator", now=LATER)
    assert review["outcome"] == "not_ae" and review["record_version"] == 1 and review["ae_number"] is None
    after = _flags(db)
    assert next(f for f in after["flags"] if f["key"] == flag["key"])["state"] == "acknowledged"
    assert after["counts"]["open"] == found["counts"]["open"] - 1

    rows = audit_for_entity(db, "flag", flag["key"])
    assert [r["action"] for r in rows] == ["flag.acknowledge"]
    detail = rows[0]["detail"]
    assert detail["outcome"] == "not_ae" and detail["subject"] == "S-001" and detail["record_id"] == env["id"]
    assert detail["note"].startswith("<script>") and rows[0]["actor_id"] == str(staff(db, "coord@bj01.example")["id"])
    assert verify_chain(db).ok

    news, _ = changes_since(db, p["id"], cursor)
    told = [c for c in news if c["kind"] == "flag_acknowledged"]
    assert len(told) == 1 and told[0]["data"]["record_id"] == env["id"]
    assert "note" not in told[0]["data"] and "outcome" not in told[0]["data"]  # staff-internal

    cached = cached_flag_counts(db, p["site_id"])[p["id"]]
    assert cached["open"] == after["counts"]["open"] and cached["acknowledged"] == 1


def test_outcome_rules_and_unknown_flags(db, devices):
    env = _severe_diary(devices)
    pid = get_participant(db, "S-001")["id"]
    key = f"symptom_severe:{env['id']}"
    for kwargs, field in (({"outcome": "ae_recorded"}, "ae_number"), ({"outcome": "fine"}, "outcome"),
                          ({"outcome": "not_ae", "note": "x" * 2001}, "note")):
        with pytest.raises(EproError) as err:
            acknowledge_flag(db, PROTOCOL, pid, key, actor=_actor(db), now=LATER, **kwargs)
        assert err.value.status == 400 and err.value.errors[0].field == field
    with pytest.raises(EproError) as err:
        acknowledge_flag(db, PROTOCOL, pid, "symptom_severe:nope", outcome="not_ae", actor=_actor(db), now=LATER)
    assert err.value.status == 404
    review = acknowledge_flag(db, PROTOCOL, pid, key, outcome="ae_recorded", ae_number=" AE-007 ",
                              actor=_actor(db), now=LATER)
    assert review["ae_number"] == "AE-007"
    assert db.execute("SELECT COUNT(*) FROM flag_reviews").fetchone()[0] == 1


def test_an_acknowledged_flag_whose_record_is_corrected_shows_it_changed(db, devices):
    env = _severe_diary(devices)
    env["payload"]["symptoms"]["epistaxis"] = 0
    pid = get_participant(db, "S-001")["id"]
    key = f"symptom_severe:{env['id']}"
    acknowledge_flag(db, PROTOCOL, pid, key, outcome="participant_contacted", actor=_actor(db), now=LATER)
    request_correction(db, env["id"], {"symptoms.headache": 2}, reason="caregiver added headache by phone",
                       requested_by="caregiver, by phone", actor=_actor(db), protocol=PROTOCOL,
                       now=LATER + timedelta(hours=1))
    item = next(f for f in _flags(db)["flags"] if f["key"] == key)
    assert item["state"] == "changed" and item["acknowledged_version"] == 1 and item["record_version"] == 2
    # acknowledging again settles it at the new version
    acknowledge_flag(db, PROTOCOL, pid, key, outcome="not_ae", actor=_actor(db), now=LATER + timedelta(hours=2))
    assert next(f for f in _flags(db)["flags"] if f["key"] == key)["state"] == "acknowledged"
    # a correction that removes the severe grade removes the flag itself
    request_correction(db, env["id"], {"symptoms.burning_stinging": 1}, reason="entered 3 by mistake",
                       requested_by="participant, at visit", actor=_actor(db), protocol=PROTOCOL,
                       now=LATER + timedelta(hours=3))
    assert key not in {f["key"] for f in _flags(db)["flags"]}


def test_a_dose_never_confirmed_is_a_flag_once_its_window_has_passed(db, devices):
    devices.send([make_dose("S-001", dose_number=1, planned=date(2025, 3, 1),
                            entered_at=datetime(2025, 3, 1, 9, 30, tzinfo=CST))], role="caregiver")
    early = _flags(db, now=datetime(2025, 3, 4, 12, 0, tzinfo=CST))
    assert not [f for f in early["flags"] if f["rule"] == "dose_not_confirmed"]
    # issue 10: flagged the day after the on-time window (planned day or the day after) ends
    last_on_time = _flags(db, now=datetime(2025, 3, 5, 23, 59, tzinfo=CST))
    assert not [f for f in last_on_time["flags"] if f["rule"] == "dose_not_confirmed"]
    late = _flags(db, now=datetime(2025, 3, 6, 0, 1, tzinfo=CST))
    missing = sorted(f["key"] for f in late["flags"] if f["rule"] == "dose_not_confirmed")
    assert missing == ["dose_not_confirmed:S-001:2"]  # dose 2 (day 4, window to day 5); 3 and 4 are not yet
    later = _flags(db, now=datetime(2025, 3, 13, 12, 0, tzinfo=CST))
    assert sorted(f["key"] for f in later["flags"] if f["rule"] == "dose_not_confirmed") == [
        "dose_not_confirmed:S-001:2", "dose_not_confirmed:S-001:3", "dose_not_confirmed:S-001:4"]
    pid = get_participant(db, "S-001")["id"]
    acknowledge_flag(db, PROTOCOL, pid, missing[0], outcome="participant_contacted", note="dose given at clinic",
                     actor=_actor(db), now=datetime(2025, 3, 20, 12, 0, tzinfo=CST))
    again = _flags(db, now=datetime(2025, 3, 20, 13, 0, tzinfo=CST))
    assert next(f for f in again["flags"] if f["key"] == missing[0])["state"] == "acknowledged"


def test_counts_task_caches_every_participant_and_matches_what_pages_compute(db, devices):
    _severe_diary(devices)
    summary = recompute_flag_counts(db, PROTOCOL, LATER)
    assert summary["participants"] == 3
    p = get_participant(db, "S-001")
    cached = cached_flag_counts(db, p["site_id"])
    assert cached[p["id"]]["open"] == _flags(db)["counts"]["open"] > 0
    # S-002 sent nothing: dose 1 (planned 2025-03-01, on time to 03-02) is flagged from 03-03 (issue 10)
    s002 = participant_flags(db, PROTOCOL, get_participant(db, "S-002"), now=LATER)
    assert [f["key"] for f in s002["flags"]] == ["dose_not_confirmed:S-002:1"]
    assert cached[get_participant(db, "S-002")["id"]]["open"] == 1
    assert get_participant(db, "S-101")["id"] not in cached  # another site's participant


def test_the_scheduled_jobs_refresh_the_counts(db, db_path, devices):
    from server.tasks import run_all

    _severe_diary(devices)
    out = run_all(str(db_path), "nct06598202", LATER)
    s002 = participant_flags(db, PROTOCOL, get_participant(db, "S-002"), now=LATER)
    assert out["flags"] == {"participants": 3, "recomputed": 3,
                            "open_flags": _flags(db)["counts"]["open"] + s002["counts"]["open"]}
    p = get_participant(db, "S-001")
    assert cached_flag_counts(db, p["site_id"])[p["id"]]["computed_at"].startswith("2025-03-03")
    # the next run, the same day and nothing new: nothing recomputed, the same counts
    again = run_all(str(db_path), "nct06598202", LATER + timedelta(minutes=15))
    assert again["flags"] == {**out["flags"], "recomputed": 0}


def test_acknowledgements_are_append_only(db, devices):
    env = _severe_diary(devices)
    pid = get_participant(db, "S-001")["id"]
    acknowledge_flag(db, PROTOCOL, pid, f"symptom_severe:{env['id']}", outcome="not_ae", actor=_actor(db), now=LATER)
    for sql in ("UPDATE flag_reviews SET outcome = 'ae_recorded'", "DELETE FROM flag_reviews"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)
    row = db.execute("SELECT flag FROM flag_reviews").fetchone()
    assert json.loads(row[0])["rule"] == "symptom_severe"
