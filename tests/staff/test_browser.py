"""Staff pages in real headless Chromium (Debian's, through Playwright) against a real server process.

One server for the module: the LiveServer's site BJ01 with S-001/S-002 and an investigator, plus (added
through the store before it starts) a coordinator, a monitor and an admin, and a second site with S-101.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from server.clock import iso, utc_now
from server.db import open_db, write_tx
from server.store.audit import Actor
from server.store.participants import enroll
from server.store.sites import add_site
from server.store.staff import add_staff
from tests.staff.seed import HOSTILE_NOTE
from tests.support.live_server import LiveServer
from tests.support.records import make_nasal

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "correct horse battery staple"
SETUP = Actor("test", "browser-setup")


@pytest.fixture(scope="module")
def server():
    srv = LiveServer()
    try:
        srv.prepare()
        db = open_db(srv.db_path)
        for email, role in (("coord@site.example", "coordinator"), ("mon@site.example", "monitor"),
                            ("admin@site.example", "admin")):
            add_staff(db, email, "BJ01", role, PASSWORD, actor=SETUP, must_change=False)
        add_site(db, "SH02", "Second site", actor=SETUP)
        enroll(db, "S-101", "SH02", "2024-01", "2025-04-01", actor=SETUP)
        db.close()
        srv.start()
        # a device of S-001 sends a diary whose note is hostile text
        dev = srv.pair("S-001", "participant", device_name="home pc")
        now = datetime.now(timezone(timedelta(hours=8)))
        entry = make_nasal("S-001", day=now.date(), entered_at=now, device_seq=1)
        entry["payload"]["notes"] = HOSTILE_NOTE
        status, body = srv.request("POST", "/api/v1/sync/records", {"records": [entry], "client_time": now.isoformat()},
                                   token=dev["token"])
        assert status == 200 and body["results"][0]["status"] == "accepted", body
        srv.hostile_record = entry["id"]
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    yield pg
    ctx.close()


def sign_in(page, server, email: str = "investigator@site.example"):
    page.goto(server.url + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def test_sign_in_read_the_list_open_a_participant_enrol_pair_and_revoke(page, server):
    sign_in(page, server)
    assert page.get_by_role("heading", level=1).inner_text() == "Participants"
    rows = page.locator("table.participants tbody th[scope=row] a")
    assert sorted(rows.all_inner_texts()) == ["S-001", "S-002"]
    rows.filter(has_text="S-001").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Participant S-001"

    page.get_by_role("link", name="Enrol a participant").first.click()
    page.get_by_label("Subject ID").fill("S-900")
    page.get_by_label("Symptom onset").fill("2025-06")
    page.get_by_label("Planned first dose").fill("2026-12-01")
    page.get_by_role("button", name="Enrol").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Participant S-900"
    assert page.get_by_role("status").first.inner_text().strip().endswith("Participant S-900 enrolled.")

    page.get_by_role("link", name="Issue a pairing code").click()
    page.get_by_label("The participant (S-900)").check()
    page.get_by_role("button", name="Issue code").click()
    code = page.locator("#pairing-code").inner_text()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}", code)
    assert page.locator("figure.qr svg[role=img]").count() == 1
    status, paired = server.request("POST", "/api/v1/devices/pair", {"code": code, "device_name": "ward laptop"})
    assert status == 201 and paired["participant"] == "S-900"

    page.goto(f"{server.url}/staff/participants/S-900")
    page.get_by_role("navigation", name="Sections of the page of S-900").get_by_role("link", name="Devices and caregivers").click()
    assert page.url.endswith("/staff/participants/S-900/devices")
    assert page.locator("#devices ~ .table-wrap").first.get_by_text("ward laptop").count() == 1
    page.get_by_role("link", name="Revoke…").click()
    page.get_by_label("Reason").fill("laptop left on a train")
    page.get_by_role("button", name="Revoke the device now").click()
    assert "revoked" in page.get_by_role("status").first.inner_text()
    assert page.get_by_text("laptop left on a train").count() == 1
    status, err = server.request("POST", "/api/v1/sync/records", {"records": [], "client_time": None},
                                 token=paired["token"])
    assert status == 401 and err["code"] == "auth.device_revoked"


def test_hostile_strings_in_notes_are_shown_as_text(page, server):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server)
    page.goto(f"{server.url}/staff/participants/S-001/records")
    panel = page.locator(f"#rec-{server.hostile_record}")
    panel.locator("summary").click()
    assert HOSTILE_NOTE in panel.inner_text()
    page.goto(f"{server.url}/staff/records/{server.hostile_record}")
    assert HOSTILE_NOTE in page.locator("main").inner_text()
    assert page.locator("script:not([src])").count() == 0 and dialogs == []


def test_a_form_without_its_csrf_token_is_refused(page, server):
    sign_in(page, server)
    page.goto(server.url + "/staff/enroll")
    page.evaluate("document.querySelector('main form input[name=csrf_token]').remove()")
    page.get_by_label("Subject ID").fill("S-666")
    page.get_by_label("Symptom onset").fill("2025-06")
    page.get_by_label("Planned first dose").fill("2026-12-01")
    with page.expect_response(lambda r: r.url.endswith("/staff/enroll") and r.request.method == "POST") as resp:
        page.get_by_role("button", name="Enrol").click()
    assert resp.value.status == 400
    assert "The form expired" in page.locator("main").inner_text()
    db = open_db(server.db_path)
    assert db.execute("SELECT COUNT(*) FROM participants WHERE subject = 'S-666'").fetchone()[0] == 0
    db.close()


def test_another_sites_participant_is_403(page, server):
    sign_in(page, server)
    resp = page.goto(f"{server.url}/staff/participants/S-101")
    assert resp.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "No access"


def test_idle_session_ends_and_sign_in_returns_to_the_same_page(page, server):
    sign_in(page, server)
    page.goto(f"{server.url}/staff/participants/S-002")
    db = open_db(server.db_path)
    with write_tx(db):
        db.execute("UPDATE staff_sessions SET last_seen_at = ? WHERE ended_at IS NULL",
                   [iso(utc_now() - timedelta(minutes=20))])
    db.close()
    page.reload()
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in"
    assert "signed out after 15 minutes without activity" in page.locator("main").inner_text()
    page.get_by_label("Email").fill("investigator@site.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/staff/participants/S-002")


def test_idle_warning_offers_to_stay_signed_in(page, server):
    page.clock.install()
    sign_in(page, server)
    page.goto(f"{server.url}/staff/participants")
    warning = page.locator("#idle-warning")
    assert warning.is_hidden()
    page.clock.run_for("13:10")
    assert warning.is_visible() and "signed out in 2 minutes" in warning.inner_text()
    with page.expect_response(lambda r: r.url.endswith("/staff/session/ping")) as ping:
        page.get_by_role("button", name="Stay signed in").click()
    assert json.loads(ping.value.text())["signed_in"] is True
    warning.wait_for(state="hidden")


def test_monitor_sees_no_site_work_and_gets_403_posting_it(page, server):
    sign_in(page, server, "mon@site.example")
    page.goto(f"{server.url}/staff/participants/S-001")
    main = page.locator("main")
    assert main.get_by_role("link", name="Issue a pairing code").count() == 0
    page.goto(f"{server.url}/staff/participants/S-001/devices")
    assert main.get_by_role("table").count() == 1 and main.get_by_role("link", name="Revoke…").count() == 0
    assert page.get_by_role("link", name="Enrol a participant").count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    db = open_db(server.db_path)
    device = db.execute("SELECT id FROM devices LIMIT 1").fetchone()[0]
    db.close()
    for url, form in (("/staff/enroll", {"subject": "S-777", "onset": "2025-01", "first_dose": "2026-12-01"}),
                      ("/staff/participants/S-001/pairing", {"role": "participant"}),
                      (f"/staff/devices/{device}/revoke", {"reason": "monitor should not"})):
        resp = page.request.post(server.url + url, form={**form, "csrf_token": token})
        assert resp.status == 403 and resp.json()["code"] == "auth.forbidden", url


def test_admin_gets_403_on_clinical_pages(page, server):
    sign_in(page, server, "admin@site.example")
    assert page.get_by_role("heading", level=1).inner_text() == "Staff accounts"
    assert page.get_by_role("navigation").get_by_role("link", name="Participants").count() == 0
    for path in ("/staff/participants", "/staff/participants/S-001", "/staff/enroll"):
        resp = page.goto(server.url + path)
        assert resp.status == 403 and page.get_by_role("heading", level=1).inner_text() == "No access"


def test_targets_are_44px_focus_is_visible_and_200_percent_zoom_does_not_scroll_sideways(browser, server):
    ctx = browser.new_context(viewport={"width": 640, "height": 450}, device_scale_factor=2)
    page = ctx.new_page()
    try:
        sign_in(page, server, "coord@site.example")
        for path in ("/staff/participants", "/staff/participants/S-001", "/staff/participants/S-001/pairing",
                     *(f"/staff/participants/S-001/{section}" for section in
                       ("diary", "doses", "records", "audit", "devices", "print"))):
            page.goto(server.url + path)
            small = page.evaluate("""() => [...document.querySelectorAll(
                    'button, a.button, nav a, .filters a, input:not([type=hidden]):not([type=radio]):not([type=checkbox]), select, textarea, summary')]
                .filter(e => e.offsetParent !== null)
                .map(e => [e.outerHTML.slice(0, 60), e.getBoundingClientRect().height])
                .filter(([, h]) => h < 44 - 0.5)""")
            radios = page.evaluate("""() => [...document.querySelectorAll('label.choice')]
                .map(e => e.getBoundingClientRect().height).filter(h => h < 44 - 0.5)""")
            assert small == [] and radios == [], (path, small, radios)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, (path, overflow)
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineWidth")
        assert outline == "3px"
    finally:
        ctx.close()
