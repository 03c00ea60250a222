"""The participants list and the participant page: content, urgency order, masking, site scoping, roles."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from server.store.audit import Actor
from server.store.devices import get_device
from server.store.records import ingest
from server.store.versions import correct_record
from shared.protocol import load_protocol
from tests.server.helpers import assert_error
from tests.staff.conftest import HTML, csrf_of
from tests.staff.seed import HOSTILE_NOTE
from tests.support.records import make_nasal

#: words that would reveal allocation if they appeared on a staff page (BL-02, clinical.md §5)
MASKED = re.compile(r"\b(arm|cohort|placebo|exosome|dose[ _-]?level|concentration|randomi[sz]|allocation|kit[ _-]?lot)\b",
                    re.I)


def _text(resp) -> str:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:800]
    return resp.get_data(as_text=True)


def _rows(body: str) -> list[str]:
    """Subjects in list order."""
    return re.findall(r'<th scope="row" class="nowrap"><a href="/staff/participants/([^"]+)">', body)


def test_list_shows_only_the_own_site_most_urgent_first(as_role, client):
    as_role("investigator")
    body = _text(client.get("/staff/participants", headers=HTML))
    subjects = _rows(body)
    assert set(subjects) == {"S-001", "S-002", "S-003"}
    assert subjects[0] == "S-003"  # open high flag (severe nosebleed that needed help)
    assert "S-101" not in body and "S-102" not in body
    assert "1 participant(s) with open safety flags" in body
    # DLT window of S-003: dose 1 on calendar day 10 ago; the window counts 24-hour days from its time
    assert re.search(r"Day (9|10) of 14 · open", body)
    assert "1/3 given" in body and "1 not given" in body and "1 without confirmation" in body


def test_list_sorts_by_links_and_filters(as_role, client):
    as_role("coordinator")
    by_subject = _rows(_text(client.get("/staff/participants?sort=subject", headers=HTML)))
    assert by_subject == ["S-001", "S-002", "S-003"]
    assert _rows(_text(client.get("/staff/participants?only=flags", headers=HTML))) == ["S-003"]
    assert _rows(_text(client.get("/staff/participants?only=dlt", headers=HTML))) == ["S-003"]
    assert _rows(_text(client.get("/staff/participants?sort=nonsense", headers=HTML)))[0] == "S-003"


SECTIONS = ("flags", "diary", "doses", "records", "audit", "devices", "print")


def test_participant_summary_then_flags_with_every_section_a_link(as_role, client, seeded):
    as_role("investigator")
    body = _text(client.get("/staff/participants/S-003", headers=HTML))
    # the summary: study day, DLT window with its first and last day, compliance, last sync, open flags
    assert re.search(r"Day (9|10) of 14 · open", body) and re.search(r"Days 1–14: .+ to .+", body)
    assert "Compliance" in body and "1/3 given" in body and "Last sync" in body
    open_n = int(re.search(r"(\d+) open — see below", body).group(1))
    assert open_n == len(re.findall(r'<article class="flag flag-(?:high|medium)" id="flag-\d+">', body)) >= 2
    assert re.search(r"Open queries</dt><dd>0</dd>", body)  # no query raised on S-003 yet
    # each section is a link of its own; the summary page is the Safety flags section
    for section in SECTIONS[1:-1]:
        assert f'href="/staff/participants/S-003/{section}"' in body
    assert 'href="/staff/participants/S-003/flags" aria-current="page"' in body
    assert 'id="flags"' in body
    # flags with their explanation and a link to the record page
    assert "Nosebleed" in body and f'href="/staff/records/{seeded["ids"]["severe"]}"' in body
    assert "ALSFRS-R total dropped from baseline" in body and "6 points below the participant&#39;s baseline of 48" in body
    # what the other sections hold is not on this one
    assert 'role="img"' not in body and '<details class="record"' not in body
    flags = _text(client.get("/staff/participants/S-003/flags", headers=HTML))
    assert flags.count('<article class="flag') == body.count('<article class="flag')


def _set_lang(client, lang: str) -> None:
    client.post("/staff/language", data={"csrf_token": csrf_of(client.get("/staff/participants", headers=HTML)),
                                         "lang": lang, "next": "/staff/participants"})


UNTRANSLATED = re.compile(r"\b(staff|staff_pages|review)\.[a-z_]+\.[a-z_.]+")


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_every_section_has_its_own_url_in_both_languages(as_role, client, lang):
    as_role("coordinator")
    _set_lang(client, lang)
    for section in SECTIONS:
        body = _text(client.get(f"/staff/participants/S-003/{section}", headers=HTML))
        assert f'<html lang="{lang}">' in body
        assert not UNTRANSLATED.search(re.sub(r"<[^>]+>", " ", body)), (section, UNTRANSLATED.search(re.sub(r"<[^>]+>", " ", body)))


def test_diary_section_charts_first_with_doses_on_the_symptom_axis(as_role, client, seeded):
    as_role("investigator")
    body = _text(client.get("/staff/participants/S-003/diary", headers=HTML))
    # ALSFRS-R: accessible SVG charts (total + 4 domains) with their data table, baseline and ΔFS
    assert body.count('role="img"') >= 6 and '<title id="chart-total-t">' in body and '<desc id="chart-total-d">' in body
    assert "D−3: 48; D8: 42" in body  # the description carries every value
    assert "ALSFRS-R self-reports (data of the charts above)" in body
    main = body[body.index('<div class="section'):]
    assert main.index("<svg") < main.index("<table")  # charts first, their tables after them
    # the nasal chart: each day's sum of grades, doses marked on the same axis, in words too
    chart = body[body.index('<title id="chart-nasal-t">'):]
    chart = chart[:chart.index("</svg>")]
    assert "D1 ✓" in chart and "D2 ✗" in chart
    assert "dose 1 given" in chart and "dose 2 not given" in chart
    # heat map: doses as its first row, the grade a number in the cell (shading only repeats it)
    assert '<tr class="dose-row">' in body and '<td class="g3">3</td>' in body
    assert body.index("D1 ✓", body.index('<table class="heat">')) < body.index('<td class="g3">3</td>')
    assert "ΔFS" in body and "48 / 48 on" in body


def test_diary_windows_of_four_weeks(as_role, client):
    as_role("investigator")
    body = _text(client.get("/staff/participants/S-003/diary?window=0", headers=HTML))
    assert "Days −3 to 28" in body or "Days −1 to 28" in body or "Days 1 to 28" in body
    # a window that does not exist falls back to the latest one instead of failing
    assert _text(client.get("/staff/participants/S-003/diary?window=99", headers=HTML)).count('<table class="heat">') == 1
    assert _text(client.get("/staff/participants/S-003/diary?window=x", headers=HTML)).count('<table class="heat">') == 1


def test_doses_section(as_role, client):
    as_role("investigator")
    body = _text(client.get("/staff/participants/S-003/doses", headers=HTML))
    # dose 2 confirmed as not given, with its reason
    assert "Not given" in body and "forgot" in body


def test_records_section_pages_filters_and_shows_every_version(as_role, client, db, seeded):
    record_id = seeded["ids"]["severe"]
    correct_record(db, record_id, {"symptoms.epistaxis": 2}, reason="participant pressed the wrong grade",
                   requested_by="participant, by phone", actor=Actor.staff(2))
    as_role("investigator")
    body = _text(client.get("/staff/participants/S-003/records", headers=HTML))
    panels = len(re.findall(r'<details class="record" id="rec-', body))
    total = int(re.search(r"Records 1–\d+ of (\d+)", body).group(1))
    assert panels == min(total, 20) and "record.accept" in body
    seen = set(re.findall(r'<details class="record" id="rec-([^"]+)"', body))
    page = 2
    while f"page={page}" in body:
        body = _text(client.get(f"/staff/participants/S-003/records?page={page}", headers=HTML))
        seen |= set(re.findall(r'<details class="record" id="rec-([^"]+)"', body))
        page += 1
    assert len(seen) == total  # every record is reachable through the pages
    corrected = _text(client.get("/staff/participants/S-003/records?only=corrected", headers=HTML))
    assert re.findall(r'<details class="record" id="rec-([^"]+)"', corrected) == [record_id]
    assert "Nosebleed: <del>3</del> → <ins>2</ins>" in corrected
    doses = _text(client.get("/staff/participants/S-003/records?type=dose_confirmation", headers=HTML))
    assert len(re.findall(r'<details class="record"', doses)) == 2
    assert _text(client.get("/staff/participants/S-003/records?page=999", headers=HTML))  # clamped, no error


def test_audit_section_pages_the_participants_audit_rows(as_role, client, seeded):
    as_role("monitor")
    body = _text(client.get("/staff/participants/S-003/audit", headers=HTML))
    total = int(re.search(r"(\d+) rows about this participant", body).group(1))
    assert total > 10 and "record.accept" in body and "participant.enroll" in body
    assert 'id="signoffs"' in body


def test_hostile_text_in_notes_is_shown_as_text(as_role, client, seeded):
    as_role("investigator")
    for url in ("/staff/participants/S-003/records?type=nasal_symptoms&page=1",
                "/staff/participants/S-003/print", f"/staff/records/{seeded['ids']['severe']}"):
        body = _text(client.get(url, headers=HTML))
        assert "<script>alert" not in body
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body
        assert "&#39;; DROP TABLE records; --" in body


def test_no_baseline_is_said_in_words(as_role, client):
    as_role("investigator")
    body = _text(client.get("/staff/participants/S-001", headers=HTML))
    assert "No baseline yet — drop flag off" in body
    assert "No ALSFRS-R self-report yet." in _text(client.get("/staff/participants/S-001/diary", headers=HTML))


def test_corrections_show_every_version_and_the_audit_row(as_role, client, db, seeded):
    record_id = seeded["ids"]["severe"]
    correct_record(db, record_id, {"symptoms.epistaxis": 2}, reason="participant pressed the wrong grade",
                   requested_by="participant, by phone", actor=Actor.staff(2))
    as_role("investigator")
    body = _text(client.get(f"/staff/records/{record_id}", headers=HTML))
    assert "Version 1" in body and "Version 2" in body
    assert "Nosebleed: <del>3</del> → <ins>2</ins>" in body
    assert "participant pressed the wrong grade" in body and "participant, by phone" in body
    assert "coord@bj01.example (Coordinator)" in body and "record.correct" in body
    assert "Corrected: 2 versions" in body


def test_late_and_clock_drift_labels_are_shown(as_role, client, db, seeded):
    device = get_device(db, seeded["devices"]["participant"])
    now = datetime.now(timezone.utc)
    day = seeded["day1"] + timedelta(days=1)
    late = make_nasal("S-003", day=day, entered_at=now.astimezone(timezone(timedelta(hours=8))),
                      device_seq=device["last_device_seq"] + 1)
    ingest(db, device, [late], protocol=load_protocol(), client_time=now + timedelta(minutes=12), now=now)
    as_role("coordinator")
    body = _text(client.get(f"/staff/records/{late['id']}", headers=HTML))
    assert "Clock off by" in body and "Clock drift" in body
    assert "Second entry that day" in body or "Late" in body


@pytest.mark.parametrize("url", ["/staff/participants/S-101", "/staff/participants/S-102/pairing",
                                 "/staff/participants/S-102/first-dose"])
def test_another_sites_participant_is_forbidden_and_audited(as_role, client, db, url):
    as_role("investigator")
    assert_error(client.get(url), 403, "auth.forbidden")
    page = client.get(url, headers=HTML)
    assert page.status_code == 403 and "No access" in page.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action = 'security.forbidden'").fetchone()[0] == 2


def test_another_sites_record_and_device_are_forbidden(as_role, client, db):
    other = db.execute("SELECT r.id FROM records r JOIN participants p ON p.id = r.participant_id"
                       " WHERE p.subject = 'S-102' LIMIT 1").fetchone()[0]
    device = db.execute("SELECT d.id FROM devices d JOIN participants p ON p.id = d.participant_id"
                        " WHERE p.subject = 'S-102' LIMIT 1").fetchone()[0]
    as_role("coordinator")
    assert_error(client.get(f"/staff/records/{other}"), 403, "auth.forbidden")
    assert_error(client.get(f"/staff/devices/{device}/revoke"), 403, "auth.forbidden")


def test_admin_has_no_clinical_pages(as_role, client, seeded):
    as_role("admin")
    for url in ("/staff/participants", "/staff/participants/S-003", f"/staff/records/{seeded['ids']['severe']}",
                "/staff/enroll", "/staff/participants/S-003/pairing"):
        assert_error(client.get(url), 403, "auth.forbidden")
    home = client.get("/staff/", headers=HTML)
    assert home.headers["Location"] == "/staff/admin/users"
    nav = _text(client.get("/staff/admin/users", headers=HTML))
    assert 'href="/staff/participants"' not in nav and 'href="/staff/admin/devices"' in nav


def test_monitor_sees_no_site_work_and_is_refused_when_posting(as_role, client, db, seeded):
    as_role("monitor")
    body = "".join(_text(client.get(f"/staff/participants/S-003/{section}", headers=HTML)) for section in SECTIONS)
    for action in ("/pairing", "/first-dose", "/caregivers/new", "/revoke", "/staff/enroll"):
        assert action not in body, action
    token = csrf_of(client.get("/staff/account/sessions", headers=HTML))
    device = seeded["devices"]["participant"]
    for url, data in (("/staff/enroll", {"subject": "S-950", "onset": "2024-01", "first_dose": "2026-01-01"}),
                      ("/staff/participants/S-003/pairing", {"role": "participant"}),
                      (f"/staff/devices/{device}/revoke", {"reason": "monitor tries"}),
                      ("/staff/participants/S-003/first-dose", {"first_dose": "2026-02-02", "reason": "x"})):
        assert_error(client.post(url, data={**data, "csrf_token": token}), 403, "auth.forbidden")
    assert db.execute("SELECT revoked_at FROM devices WHERE id = ?", [device]).fetchone()[0] is None


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_no_page_names_an_arm_cohort_dose_level_or_product(as_role, client, seeded, lang):
    as_role("investigator")
    _set_lang(client, lang)
    for url in ("/staff/participants", f"/staff/records/{seeded['ids']['dose1']}", "/staff/participants/S-003/pairing",
                *(f"/staff/participants/S-003/{section}" for section in SECTIONS)):
        body = _text(client.get(url, headers=HTML))
        assert f'<html lang="{lang}">' in body
        assert not MASKED.search(re.sub(r"<[^>]+>", " ", body)), url
        assert "队列" not in body and "安慰剂" not in body and "剂量组" not in body


def test_hostile_note_fixture_is_really_hostile():
    assert "<script>" in HOSTILE_NOTE and "DROP TABLE" in HOSTILE_NOTE
