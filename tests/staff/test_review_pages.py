"""Review pages through the Flask test client: acknowledge, correct, sign off, audit trail, reports and
exports — each allowed only to the roles of contract §4 at their own site, each form CSRF-protected,
hostile text shown as text, nothing that could unblind."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pytest

from server.exports.manifest import verify_manifest
from server.store.audit import Actor, audit_rows
from server.store.participants import get_participant
from server.store.records import record_with_versions
from server.store.signoffs import signoffs_for_participant
from server.store.staff import add_staff
from tests.server.helpers import PASSWORD
from tests.staff.conftest import HTML, login, post_form
from tests.staff.seed import HOSTILE_NOTE

PAGE = "/staff/participants/S-003"
ACK = "/staff/participants/S-003/flags/acknowledge"


def _epistaxis_key(seeded) -> str:
    return f"epistaxis:{seeded['ids']['severe']}"


def test_coordinator_acknowledges_a_flag_and_the_page_shows_it_with_the_note_as_text(client, as_role, seeded, db):
    as_role("coordinator")
    page = client.get(PAGE, headers=HTML).get_data(as_text=True)
    assert f'value="{_epistaxis_key(seeded)}"' in page and "Acknowledge this flag" in page
    resp = post_form(client, PAGE, ACK, {"flag_key": _epistaxis_key(seeded), "outcome": "not_ae",
                                         "note": HOSTILE_NOTE})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(PAGE + "#flags")
    html = client.get(PAGE, headers=HTML).get_data(as_text=True)
    assert "Flag acknowledged for S-003." in html
    assert "Acknowledged: not an adverse event" in html
    assert "&lt;script&gt;alert(" in html and "<script>alert(" not in html
    row = audit_rows(db, action="flag.acknowledge")[0]
    assert row["detail"]["note"] == HOSTILE_NOTE and row["actor_kind"] == "staff"


def test_acknowledgement_errors_are_shown_on_a_form_page(client, as_role, seeded):
    as_role("investigator")
    resp = post_form(client, PAGE, ACK, {"flag_key": _epistaxis_key(seeded), "outcome": "ae_recorded"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "Adverse event number" in html and 'class="field-error"' in html
    missing = post_form(client, PAGE, ACK, {"flag_key": "epistaxis:nope", "outcome": "not_ae"})
    assert missing.status_code == 404


def test_forms_without_their_csrf_token_are_refused(client, as_role, seeded, db):
    as_role("investigator")
    resp = client.post(ACK, data={"flag_key": _epistaxis_key(seeded), "outcome": "not_ae"}, headers=HTML)
    assert resp.status_code == 400
    for url, data in ((f"/staff/records/{seeded['ids']['severe']}/correct", {"field_1": "notes", "value_1": "x",
                                                                            "reason": "r", "requested_by": "p"}),
                      ("/staff/participants/S-003/signoff", {"period_from": "2025-01-01", "period_to": "2025-01-02",
                                                              "password": PASSWORD}),
                      ("/staff/exports", {"formats": "odm"})):
        assert client.post(url, data={**data, "csrf_token": "forged"}, headers=HTML).status_code == 400, url
    assert audit_rows(db, action="flag.acknowledge") == [] and audit_rows(db, action="export.create") == []


@pytest.mark.parametrize("role,method,url,expected", [
    ("monitor", "POST", ACK, 403), ("monitor", "GET", "/staff/records/{severe}/correct", 403),
    ("coordinator", "GET", "/staff/participants/S-003/signoff", 403),
    ("coordinator", "GET", "/staff/audit", 403), ("coordinator", "GET", "/staff/exports", 403),
    ("admin", "GET", "/staff/review/reports", 403),
    ("other_site", "GET", PAGE, 403), ("other_site", "POST", ACK, 403),
    ("other_site", "GET", "/staff/records/{severe}/correct", 403),
    ("other_site", "GET", "/staff/participants/S-003/signoff", 403),
    ("monitor", "GET", "/staff/audit", 200), ("monitor", "GET", "/staff/exports", 200),
    ("coordinator", "GET", "/staff/review/reports", 200),
])
def test_who_may_use_which_review_page(client, as_role, seeded, role, method, url, expected):
    as_role(role)
    resp = client.open(url.format(severe=seeded["ids"]["severe"]), method=method, headers=HTML)
    assert resp.status_code == expected


def test_a_correction_through_the_form_makes_version_two_and_shows_both(client, as_role, seeded, db):
    as_role("coordinator")
    rid = seeded["ids"]["severe"]
    url = f"/staff/records/{rid}/correct"
    form = client.get(url, headers=HTML).get_data(as_text=True)
    assert 'value="symptoms.headache"' in form and 'value="notes"' in form
    bad = post_form(client, url, url, {"field_1": "symptoms.headache", "value_1": "seven", "reason": "r",
                                       "requested_by": "participant", "expected_version": "1"})
    assert bad.status_code == 400 and "Must be a whole number." in bad.get_data(as_text=True)
    none = post_form(client, url, url, {"field_1": "symptoms.headache", "value_1": "2", "reason": "",
                                        "requested_by": "participant", "expected_version": "1"})
    assert none.status_code == 400 and "Give a reason for the change." in none.get_data(as_text=True)
    ok = post_form(client, url, url, {"field_1": "symptoms.headache", "value_1": "2", "field_2": "notes",
                                      "value_2": "Headache too <b>bold</b>", "reason": "caregiver phoned",
                                      "requested_by": "caregiver, by phone", "expected_version": "1"})
    assert ok.status_code == 303 and ok.headers["Location"].endswith(f"/staff/records/{rid}")
    rec = record_with_versions(db, rid)
    assert [v["version"] for v in rec["versions"]] == [1, 2]
    assert rec["versions"][0]["payload"]["notes"] == HOSTILE_NOTE
    assert rec["current"]["payload"]["symptoms"]["headache"] == 2
    html = client.get(f"/staff/records/{rid}", headers=HTML).get_data(as_text=True)
    assert "Saved as version 2" in html and "caregiver phoned" in html and "&lt;b&gt;bold" in html
    stale = post_form(client, url, url, {"field_1": "symptoms.headache", "value_1": "1", "reason": "again",
                                         "requested_by": "participant", "expected_version": "1"})
    assert stale.status_code == 400 and "corrected by someone else" in stale.get_data(as_text=True)


def test_investigator_signs_with_the_password_and_a_later_correction_invalidates(client, as_role, seeded, db, app):
    as_role("investigator")
    url = "/staff/participants/S-003/signoff"
    day1 = seeded["day1"].isoformat()
    page = client.get(f"{url}?period_from={day1}&period_to={day1}", headers=HTML).get_data(as_text=True)
    assert "Entries covered: 3" in page and "Meaning of this signature: Reviewed" in page
    data = {"period_from": day1, "period_to": day1, "printed_name": "Dr. Li Wei"}
    wrong = post_form(client, url, url, {**data, "password": "not my password"})
    assert wrong.status_code == 401 and "The password is not correct" in wrong.get_data(as_text=True)
    pid = get_participant(db, "S-003")["id"]
    assert signoffs_for_participant(db, pid) == []
    ok = post_form(client, url, url, {**data, "password": PASSWORD})
    assert ok.status_code == 303
    detail = client.get(ok.headers["Location"], headers=HTML).get_data(as_text=True)
    assert "Dr. Li Wei" in detail and "Reviewed" in detail and "Valid" in detail
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC", detail), "UTC time shown"
    assert "+08:00" in detail or "Asia/Shanghai" in detail or "CST" in detail or "北京" in detail
    # the dose-1 confirmation on day 1 is covered: correcting it invalidates the signature
    coordinator = app.test_client()
    assert login(coordinator, "coord@bj01.example").status_code == 303
    rid = seeded["ids"]["dose1"]
    fixed = post_form(coordinator, f"/staff/records/{rid}/correct", f"/staff/records/{rid}/correct",
                      {"field_1": "kit_number", "value_1": "K-0043", "reason": "kit label misread",
                       "requested_by": "site pharmacist", "expected_version": "1"})
    assert fixed.status_code == 303
    detail = client.get(ok.headers["Location"], headers=HTML).get_data(as_text=True)
    assert "Invalidated — re-signature required" in detail
    participant = client.get(PAGE, headers=HTML).get_data(as_text=True)
    assert "Invalidated — re-signature required" in participant


def test_a_named_investigator_signs_without_typing_the_printed_name(client, seeded, db):
    add_staff(db, "li.wei@bj01.example", "BJ01", "investigator", PASSWORD, actor=Actor.cli(), name="Dr. Li Wei",
              must_change=False)
    assert login(client, "li.wei@bj01.example").status_code == 303
    url = "/staff/participants/S-003/signoff"
    day1 = seeded["day1"].isoformat()
    page = client.get(f"{url}?period_from={day1}&period_to={day1}", headers=HTML).get_data(as_text=True)
    assert 'name="printed_name"' not in page and "<strong>Dr. Li Wei</strong>" in page  # read-only
    assert '<span class="who-name">Dr. Li Wei</span>' in page  # the header names the signer
    # a typed name, if one is sent anyway, does not replace the account's
    ok = post_form(client, url, url, {"period_from": day1, "period_to": day1, "printed_name": "Someone Else",
                                      "password": PASSWORD})
    assert ok.status_code == 303
    [s] = signoffs_for_participant(db, get_participant(db, "S-003")["id"])
    assert s["printed_name"] == "Dr. Li Wei"


def test_an_unnamed_investigator_still_types_the_printed_name(client, as_role, seeded):
    as_role("investigator")
    day1 = seeded["day1"].isoformat()
    page = client.get(f"/staff/participants/S-003/signoff?period_from={day1}&period_to={day1}",
                      headers=HTML).get_data(as_text=True)
    assert 'name="printed_name"' in page and 'class="who-name"' not in page


def test_audit_trail_filters_and_csv_for_a_monitor(client, as_role, seeded):
    as_role("monitor")
    html = client.get("/staff/audit?subject=S-003&action=record.accept", headers=HTML).get_data(as_text=True)
    count = int(re.search(r"(\d+) matching rows", html).group(1))
    assert count > 5 and "S-102" not in html
    resp = client.get("/staff/audit.csv?subject=S-003&action=record.accept", headers=HTML)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "seq" and len(rows) == count + 1 and {r[5] for r in rows[1:]} == {"record.accept"}
    bad = client.get("/staff/audit?start=yesterday", headers=HTML)
    assert bad.status_code == 400 and "Not a valid date." in bad.get_data(as_text=True)


def test_export_from_the_page_is_audited_verified_and_downloadable(client, as_role, seeded, db, app, tmp_path):
    app.config["EXPORT_DIR"] = str(tmp_path / "exports")
    as_role("monitor")
    resp = post_form(client, "/staff/exports", "/staff/exports", {"formats": "odm"})
    assert resp.status_code == 303
    html = client.get("/staff/exports", headers=HTML).get_data(as_text=True)
    assert "Checked: every file matches its manifest" in html
    name = re.search(r'id="exp-([^"]+)"', html).group(1)
    assert name.startswith("BJ01-")
    zipped = client.get(f"/staff/exports/{name}.zip", headers=HTML)
    assert zipped.status_code == 200 and zipped.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as zf:
        zf.extractall(tmp_path / "unzipped")
    assert verify_manifest(tmp_path / "unzipped" / name) == []
    manifest = json.loads((tmp_path / "unzipped" / name / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["formats"] == ["odm"] and manifest["generated_by"] == "mon@bj01.example"
    odm = next(f["path"] for f in manifest["files"] if f["path"].endswith("_odm.xml"))
    one = client.get(f"/staff/exports/{name}/files/{odm}", headers=HTML)
    assert one.status_code == 200 and b"S-003" in one.data and b"S-102" not in one.data
    assert client.get(f"/staff/exports/{name}/files/../../server.sqlite", headers=HTML).status_code == 404
    created = audit_rows(db, action="export.create")[0]
    assert created["detail"]["counts"]["participants"] == 3 and created["entity_id"] == name
    assert [r["detail"]["what"] for r in audit_rows(db, action="export.download")] == [odm, "zip"]
    # another site's investigator cannot take this site's export
    other = app.test_client()
    assert login(other, "inv@sh02.example").status_code == 303
    assert other.get(f"/staff/exports/{name}.zip", headers=HTML).status_code == 404


def test_reports_page_shows_a_correction_and_the_pages_never_mention_allocation(client, as_role, seeded, app, tmp_path):
    app.config["EXPORT_DIR"] = str(tmp_path / "exports")
    as_role("investigator")
    rid = seeded["ids"]["severe"]
    post_form(client, f"/staff/records/{rid}/correct", f"/staff/records/{rid}/correct",
              {"field_1": "symptoms.headache", "value_1": "1", "reason": "phone follow-up",
               "requested_by": "participant", "expected_version": "1"})
    post_form(client, "/staff/exports", "/staff/exports", {"formats": "csv"})
    html = client.get("/staff/review/reports", headers=HTML).get_data(as_text=True)
    assert "phone follow-up" in html and "<td>Headache</td>" in html
    banned = re.compile(r"\b(arm|arms|cohort|dose level|concentration|placebo|exosome|randomi[sz]ed?)\b", re.I)
    for url in ("/staff/review/reports", "/staff/audit", "/staff/exports", PAGE, f"/staff/records/{rid}/correct",
                "/staff/participants/S-003/signoff"):
        text = re.sub(r"<[^>]+>", " ", client.get(url, headers=HTML).get_data(as_text=True))
        assert not banned.search(text), (url, banned.search(text))
