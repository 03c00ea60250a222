"""Issue 10 on the staff pages: corrections of any field, study day 1, enrolment window, markers."""

from __future__ import annotations

import json
import re

from server.db import query
from server.store.records import record_with_versions
from tests.staff.conftest import HTML, post_form


def _rec(db, subject, rtype, pred=lambda env: True):
    rows = query(db, "SELECT r.id, r.envelope FROM records r JOIN participants p ON p.id = r.participant_id"
                     " WHERE p.subject = ? AND r.type = ? ORDER BY r.server_seq", [subject, rtype])
    return next(r["id"] for r in rows if pred(json.loads(r["envelope"])))


def test_full_form_lists_every_field_and_switches_5a_to_5b_with_the_gastrostomy(as_role, client, db, seeded):
    as_role("coordinator")
    rid = _rec(db, "S-003", "alsfrs_r")
    url = f"/staff/records/{rid}/correct/all"
    body = client.get(url, headers=HTML).get_data(as_text=True)
    for name in ("v_gastrostomy", "v_items__5a", "v_items__5b", "v_items__12"):
        assert f'name="{name}"' in body
    # 5b without blanking 5a: refused, the field and rule named
    bad = post_form(client, url, url, {"v_gastrostomy": "yes", "v_items__5b": "3", "reason": "PEG placed",
                                       "requested_by": "participant by phone"})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "payload.items.5b · item5_exclusive" in text
    ok = post_form(client, url, url, {"v_gastrostomy": "yes", "v_items__5a": "", "v_items__5b": "3",
                                      "reason": "PEG placed last week", "requested_by": "participant by phone"})
    assert ok.status_code == 303
    rec = record_with_versions(db, rid)
    p = rec["current"]["payload"]
    assert p["gastrostomy"] is True and "5a" not in p["items"] and p["items"]["5b"] == 3
    changes = {c["field"]: c for c in rec["versions"][-1]["changes"]}
    assert changes["payload.items.5a"]["removed"] is True and changes["payload.gastrostomy"]["new"] is True
    assert rec["versions"][0]["payload"]["gastrostomy"] is False          # the original stays


def test_a_missed_dose_corrected_to_given_with_all_its_fields(as_role, client, db, seeded):
    as_role("coordinator")
    rid = _rec(db, "S-003", "dose_confirmation", lambda e: e["payload"]["given"] is False)
    planned = json.loads(query(db, "SELECT envelope FROM records WHERE id = ?", [rid])[0]["envelope"])[
        "payload"]["planned_date"]
    url = f"/staff/records/{rid}/correct/all"
    form = {"v_given": "yes", "v_administered_at": f"{planned}T09:10:00+08:00",
            "v_nostrils__left__given": "yes", "v_nostrils__left__volume": "full", "v_nostrils__left__retained": "yes",
            "v_nostrils__right__given": "yes", "v_nostrils__right__volume": "full",
            "v_nostrils__right__retained": "yes", "v_missed_reason": "",
            "reason": "Caregiver gave it; ticked the wrong box", "requested_by": "caregiver by phone"}
    ok = post_form(client, url, url, form)
    assert ok.status_code == 303, ok.get_data(as_text=True)[:2000]
    rec = record_with_versions(db, rid)
    p = rec["current"]["payload"]
    assert p["given"] is True and p["nostrils"]["right"]["volume"] == "full" and p["missed_reason"] is None
    assert p["administered_at"] == f"{planned}T09:10:00+08:00"
    assert rec["versions"][0]["payload"]["given"] is False


def test_enrolment_refuses_onset_outside_the_window_with_the_rule_named(as_role, client):
    as_role("coordinator")
    for onset, words in (("2023-01", "onset to first dose 6–24 months"), ("2026-06", "onset to first dose 6–24 months"),
                         ("2027-01", "onset before the first dose")):
        resp = post_form(client, "/staff/enroll", "/staff/enroll",
                         {"subject": "S-020", "onset": onset, "first_dose": "2026-12-01", "tz": "Asia/Shanghai"})
        assert resp.status_code == 400
        assert words in resp.get_data(as_text=True)


def test_day1_flag_and_confirmation_on_the_site_page(as_role, client, seeded):
    as_role("coordinator")
    page = client.get("/staff/participants/S-003", headers=HTML).get_data(as_text=True)
    assert "Study day 1 to confirm" in page and "/staff/participants/S-003/day1" in page
    assert re.search(r"DLT window: .+ to .+ \(14 × 24 h from dose 1\)", page)
    form = client.get("/staff/participants/S-003/day1", headers=HTML).get_data(as_text=True)
    day1 = re.search(r'name="day1"[^>]*value="([0-9-]+)"', form) or re.search(r'value="([0-9-]+)"[^>]*name="day1"', form)
    assert day1
    resp = post_form(client, "/staff/participants/S-003/day1", "/staff/participants/S-003/day1",
                     {"day1": day1.group(1), "reason": ""})
    assert resp.status_code == 303
    page = client.get("/staff/participants/S-003", headers=HTML).get_data(as_text=True)
    assert "Study day 1 to confirm" not in page


def test_a_contradiction_made_by_a_correction_shows_the_inconsistent_marker(as_role, client, db, seeded):
    as_role("coordinator")
    rid = _rec(db, "S-003", "nasal_symptoms", lambda e: (e["payload"]["symptoms"].get("epistaxis") or 0) == 0)
    url = f"/staff/records/{rid}/correct/all"
    resp = post_form(client, url, url, {"v_epistaxis_needed_help": "yes", "reason": "as the participant said",
                                        "requested_by": "participant by phone"})
    assert resp.status_code == 303                  # stored: nothing is lost, the record is labelled
    page = client.get(f"/staff/records/{rid}", headers=HTML).get_data(as_text=True)
    assert "Inconsistent" in page and "nosebleed help with grade 0" in page
    fixed = post_form(client, url, url, {"v_epistaxis_needed_help": "no", "reason": "mistyped",
                                         "requested_by": "participant by phone"})
    assert fixed.status_code == 303
    assert "nosebleed help with grade 0" not in client.get(f"/staff/records/{rid}", headers=HTML).get_data(as_text=True)
