"""Site work without a shell: enrol, first dose, caregiver, pairing code (+ pairing over HTTP), revoke,
and the staff dose entry where doses are given at the site."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from server import create_app
from server.staff.svg import qr_svg
from shared.protocol import PROTOCOL_DIR
from tests.server.helpers import assert_error, upload
from tests.staff.conftest import HTML, login, post_form
from tests.support.records import make_nasal

CODE = re.compile(r'<p class="code" id="pairing-code"[^>]*>([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2})</p>')


def _staff_id(db, email: str) -> int:
    return db.execute("SELECT id FROM staff WHERE email = ?", [email]).fetchone()[0]


def _last_audit(db, action: str) -> dict:
    row = db.execute("SELECT actor_kind, actor_id, site_id, detail FROM audit WHERE action = ? ORDER BY seq DESC",
                     [action]).fetchone()
    assert row, action
    return {"actor": f"{row[0]}:{row[1]}", "site_id": row[2], "detail": json.loads(row[3])}


def test_coordinator_enrols_at_their_own_site_and_it_is_audited(as_role, client, db):
    as_role("coordinator")
    resp = post_form(client, "/staff/enroll", "/staff/enroll",
                     {"subject": "S-010", "onset": "2025-02", "first_dose": "2026-12-01", "tz": "Asia/Shanghai"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/staff/participants/S-010"
    row = db.execute("SELECT p.first_dose_date, s.code FROM participants p JOIN sites s ON s.id = p.site_id"
                     " WHERE subject = 'S-010'").fetchone()
    assert tuple(row) == ("2026-12-01", "BJ01")
    audit = _last_audit(db, "participant.enroll")
    assert audit["actor"] == f"staff:{_staff_id(db, 'coord@bj01.example')}" and audit["site_id"] == 1
    assert "Participant S-010 enrolled." in client.get("/staff/participants/S-010", headers=HTML).get_data(as_text=True)


def test_enrolment_errors_are_named_next_to_the_field(as_role, client, db):
    as_role("coordinator")
    resp = post_form(client, "/staff/enroll", "/staff/enroll",
                     {"subject": "S-011", "onset": "June 2024", "first_dose": "2026-12-01", "tz": "Mars/Base"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="f-onset-error"' in body and "Use YYYY-MM or YYYY-MM-DD" in body
    assert 'value="June 2024"' in body  # what was typed is kept
    dup = post_form(client, "/staff/enroll", "/staff/enroll",
                    {"subject": "S-001", "onset": "2025-02", "first_dose": "2026-12-01", "tz": "Asia/Shanghai"})
    assert dup.status_code == 400 and "already" in dup.get_data(as_text=True).lower()
    assert not list(db.query("SELECT 1 FROM participants WHERE subject = 'S-011'"))


def test_enrolment_errors_in_chinese(as_role, client):
    login(client, "coord@bj01.example", **{"Accept-Language": "zh-CN"})
    resp = post_form(client, "/staff/enroll", "/staff/enroll",
                     {"subject": "S-012", "onset": "2024", "first_dose": "2026-12-01", "tz": "Asia/Shanghai"})
    assert "请使用 YYYY-MM 或 YYYY-MM-DD 格式" in resp.get_data(as_text=True)


def test_moving_the_first_dose_needs_a_reason_and_keeps_the_old_date(as_role, client, db):
    as_role("investigator")
    page = "/staff/participants/S-002/first-dose"
    refused = post_form(client, page, page, {"first_dose": "2026-12-24", "reason": "  "})
    assert refused.status_code == 400 and "Give a reason." in refused.get_data(as_text=True)
    done = post_form(client, page, page, {"first_dose": "2026-12-24", "reason": "visit moved at the family's request"})
    assert done.status_code == 303
    change = db.execute("SELECT old_date, new_date, reason FROM first_dose_changes").fetchone()
    assert tuple(change) == ("2025-03-01", "2026-12-24", "visit moved at the family's request")
    body = client.get("/staff/participants/S-002/audit", headers=HTML).get_data(as_text=True)
    assert "First dose date changed" in body and "2025-03-01 → 2026-12-24" in body


def test_a_caregiver_with_a_hostile_name_is_added_and_shown_as_text(as_role, client, db):
    as_role("coordinator")
    page = "/staff/participants/S-002/caregivers/new"
    resp = post_form(client, page, page, {"name": "<img src=x onerror=alert(1)> Robert'); DROP TABLE caregivers;--"})
    assert resp.status_code == 303
    body = client.get("/staff/participants/S-002/devices", headers=HTML).get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt; Robert&#39;); DROP TABLE caregivers;--" in body
    assert "<img src=x" not in body
    assert _last_audit(db, "caregiver.create")["detail"] == {"subject": "S-002"}


def test_pairing_code_is_shown_as_text_and_qr_and_pairs_one_device_once(as_role, client, db):
    as_role("investigator")
    page = "/staff/participants/S-002/pairing"
    resp = post_form(client, page, page, {"role": "participant"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    code = CODE.search(body).group(1)
    assert str(qr_svg(code, f"QR code of the pairing code {code}")) in body  # the QR holds exactly the code
    assert code not in json.dumps([dict(r) for r in db.query("SELECT * FROM audit")])
    paired = client.post("/api/v1/devices/pair", json={"code": code.lower().replace("-", " "), "device_name": "ward pc"})
    assert paired.status_code == 201 and paired.get_json()["participant"] == "S-002"
    assert_error(client.post("/api/v1/devices/pair", json={"code": code, "device_name": "again"}), 410,
                 "pairing.code_used")
    audit = _last_audit(db, "pairing.issue")
    assert audit["actor"] == f"staff:{_staff_id(db, 'inv@bj01.example')}"


def test_a_caregiver_code_can_create_the_caregiver(as_role, client, db):
    as_role("coordinator")
    page = "/staff/participants/S-002/pairing"
    missing = post_form(client, page, page, {"role": "caregiver", "caregiver": "new", "caregiver_name": ""})
    assert missing.status_code == 400 and "Give the new caregiver" in missing.get_data(as_text=True)
    resp = post_form(client, page, page, {"role": "caregiver", "caregiver": "new", "caregiver_name": "daughter"})
    assert "For the computer of daughter, caregiver of S-002." in resp.get_data(as_text=True)
    paired = client.post("/api/v1/devices/pair",
                         json={"code": CODE.search(resp.get_data(as_text=True)).group(1), "device_name": "laptop"})
    assert paired.get_json()["role"] == "caregiver"
    assert paired.get_json()["originator"].startswith("caregiver:")


def test_revoking_a_device_needs_a_reason_and_stops_it_at_once(as_role, client, db):
    code = post_form(as_role("investigator"), "/staff/participants/S-002/pairing", "/staff/participants/S-002/pairing",
                     {"role": "participant"}).get_data(as_text=True)
    dev = client.post("/api/v1/devices/pair", json={"code": CODE.search(code).group(1), "device_name": "pc"}).get_json()
    page = f"/staff/devices/{dev['device_id']}/revoke"
    refused = post_form(client, page, page, {"reason": ""})
    assert refused.status_code == 400
    assert db.execute("SELECT revoked_at FROM devices WHERE id = ?", [dev["device_id"]]).fetchone()[0] is None
    done = post_form(client, page, page, {"reason": "computer lost on the train"})
    assert done.status_code == 303 and done.headers["Location"] == "/staff/participants/S-002/devices"
    entry = make_nasal("S-002", day=datetime.now(timezone.utc).date(), device_seq=1,
                       entered_at=datetime.now(timezone(timedelta(hours=8))))
    assert_error(upload(client, dev["token"], [entry]), 401, "auth.device_revoked")
    assert _last_audit(db, "device.revoke")["detail"]["reason"] == "computer lost on the train"
    assert "computer lost on the train" in client.get("/staff/participants/S-002/devices", headers=HTML).get_data(as_text=True)


@pytest.fixture
def site_dosing_app(db_path, tmp_path):
    text = (PROTOCOL_DIR / "nct06598202.toml").read_text(encoding="utf-8")
    path = tmp_path / "site-dosing.toml"
    path.write_text(text.replace('location = "home"', 'location = "site"'), encoding="utf-8")
    return create_app({"DB": str(db_path), "TESTING": True, "PROTOCOL": str(path)})


def _dose_form(now_local: datetime, **over) -> dict:
    given = now_local - timedelta(minutes=20)    # date and time of the same moment (also just after midnight)
    return {"dose_number": "3", "nostrils": "both", "date": given.date().isoformat(),
            "time": given.strftime("%H:%M"), "left_volume": "full",
            "left_retained": "yes", "right_volume": "full", "right_retained": "yes", "kit_number": "K-77", **over}


def test_staff_enter_a_dose_given_at_the_site_through_the_ingest(site_dosing_app, db):
    client = site_dosing_app.test_client()
    login(client, "coord@bj01.example")
    now_local = datetime.now(timezone(timedelta(hours=8)))
    page = "/staff/participants/S-003/doses/new"
    assert "Enter a dose given at the site" in client.get("/staff/participants/S-003", headers=HTML).get_data(as_text=True)
    resp = post_form(client, page, page, _dose_form(now_local, notes="<b>given in clinic</b>"))
    assert resp.status_code == 303, resp.get_data(as_text=True)[-1500:]
    row = db.execute("SELECT originator, channel, staff_entered, staff_id, device_id, envelope FROM records"
                     " WHERE channel = 'staff'").fetchone()
    staff_id = _staff_id(db, "coord@bj01.example")
    assert tuple(row[:5]) == (f"staff:{staff_id}", "staff", 1, staff_id, None)
    payload = json.loads(row[5])["payload"]
    assert payload["administered_by"] == "site_staff" and payload["dose_number"] == 3
    audit = _last_audit(db, "record.accept")
    assert audit["actor"] == f"staff:{staff_id}" and audit["detail"]["channel"] == "staff"
    body = client.get("/staff/participants/S-003/doses", headers=HTML).get_data(as_text=True)
    assert "Staff-entered" in body and "&lt;b&gt;given in clinic&lt;/b&gt;" in body


def test_staff_dose_errors_are_shown_in_words(site_dosing_app, db):
    client = site_dosing_app.test_client()
    login(client, "inv@bj01.example")
    now_local = datetime.now(timezone(timedelta(hours=8)))
    page = "/staff/participants/S-003/doses/new"
    future = _dose_form(now_local, time=(now_local + timedelta(hours=2)).strftime("%H:%M"),
                        date=(now_local + timedelta(hours=2)).date().isoformat())
    resp = post_form(client, page, page, future)
    assert resp.status_code == 400 and "later than now" in resp.get_data(as_text=True)
    not_given = post_form(client, page, page, _dose_form(now_local, nostrils="none"))
    assert not_given.status_code == 400 and "Please say why the dose was not given." in not_given.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM records WHERE channel = 'staff'").fetchone()[0] == 0


def test_staff_dose_entry_exists_only_for_site_dosing_and_permitted_roles(site_dosing_app, as_role, client):
    as_role("coordinator")
    assert_error(client.get("/staff/participants/S-003/doses/new"), 404)  # the default protocol doses at home
    assert "/doses/new" not in client.get("/staff/participants/S-003", headers=HTML).get_data(as_text=True)
    monitor = site_dosing_app.test_client()
    login(monitor, "mon@bj01.example")
    assert_error(monitor.get("/staff/participants/S-003/doses/new"), 403, "auth.forbidden")


def test_site_work_pages_render_in_both_languages(as_role, client):
    as_role("investigator")
    for lang, word in (("en", "Issue a pairing code"), ("zh-CN", "生成配对码")):
        client.post("/staff/language", data={"csrf_token": re.search(
            r'name="csrf_token" value="([^"]+)"', client.get("/staff/enroll", headers=HTML).get_data(as_text=True)).group(1),
            "lang": lang})
        for url in ("/staff/enroll", "/staff/participants/S-003/first-dose", "/staff/participants/S-003/caregivers/new",
                    "/staff/participants/S-003/pairing"):
            body = client.get(url, headers=HTML).get_data(as_text=True)
            assert f'<html lang="{lang}">' in body and "staff." not in re.sub(r'href="[^"]*"|action="[^"]*"|\.css|\.js', "", body), url
        assert word in client.get("/staff/participants/S-003/pairing", headers=HTML).get_data(as_text=True)


def test_every_label_has_its_input(as_role, client):
    as_role("investigator")
    for url in ("/staff/enroll", "/staff/participants/S-003/first-dose", "/staff/participants/S-003/pairing",
                "/staff/login"):
        body = client.get(url, headers=HTML).get_data(as_text=True)
        for field_id in re.findall(r'<(?:input|select|textarea) id="([^"]+)"', body):
            assert f'<label for="{field_id}"' in body, (url, field_id)
