"""Data queries in real headless Chromium against a real server process: a monitor raises a query
beside a record, the coordinator finds it in the site-wide list and answers, in English and Chinese.
Screenshots go to ``$ALS_EPRO_SHOTS`` when set (not into the repository)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.db import open_db
from server.store.staff import add_staff
from tests.staff.test_browser import CHROMIUM_ARGS, PASSWORD, SETUP
from tests.support.live_server import LiveServer
from tests.support.records import make_nasal

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
SHOTS = os.environ.get("ALS_EPRO_SHOTS")


@pytest.fixture(scope="module")
def server():
    srv = LiveServer()
    try:
        srv.prepare()
        db = open_db(srv.db_path)
        for email, role in (("coord@site.example", "coordinator"), ("mon@site.example", "monitor")):
            add_staff(db, email, "BJ01", role, PASSWORD, actor=SETUP, must_change=False)
        db.close()
        srv.start()
        dev = srv.pair("S-001", "participant")
        now = datetime.now(timezone(timedelta(hours=8)))
        entries = [make_nasal("S-001", day=(now - timedelta(days=d)).date(), entered_at=now - timedelta(days=d),
                              device_seq=i + 1, grades={"congestion": 3 if d == 1 else 0}) for i, d in enumerate((2, 1))]
        status, body = srv.request("POST", "/api/v1/sync/records", {"records": entries}, token=dev["token"])
        assert status == 200 and all(r["status"] == "accepted" for r in body["results"]), body
        srv.record_ids = [e["id"] for e in entries]
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


def session(browser, server, email):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = ctx.new_page()
    page.set_default_timeout(15000)
    page.goto(server.url + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
    return ctx, page


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_raise_find_answer_and_close_a_query_in_both_languages(browser, server):
    ctx, mon = session(browser, server, "mon@site.example")
    mon.goto(f"{server.url}/staff/participants/S-001")
    assert mon.locator("#queries").get_by_text("No queries for this participant.").count() == 1
    rec = server.record_ids[1]
    mon.locator("nav.tabs").get_by_role("link", name="Records").click()   # the records are their own section
    mon.locator(f"#rec-{rec} summary").click()
    mon.locator(f"#rec-{rec}").get_by_role("link", name="Raise a query").click()
    assert mon.get_by_role("heading", level=1).inner_text() == "Raise a query for S-001"
    mon.get_by_label("Field").select_option("symptoms.congestion")
    mon.get_by_label("Question").fill("Congestion 3 here but 0 the day before — please confirm.")
    shot(mon, "query-new.en")
    mon.get_by_role("button", name="Raise a query").click()
    assert mon.get_by_role("heading", level=1).inner_text().startswith("Query 1")
    assert "Query 1 raised for S-001." in mon.get_by_role("status").first.inner_text()
    ctx.close()

    ctx, coord = session(browser, server, "coord@site.example")
    assert "1 open · 0 answered" in coord.locator("table.participants").inner_text()
    coord.get_by_role("link", name="Queries", exact=True).first.click()
    assert coord.get_by_role("heading", level=1).inner_text() == "Data queries"
    assert coord.locator("table.queries tbody tr").count() == 1
    shot(coord, "queries-list.en")
    coord.locator("table.queries tbody th a").first.click()
    coord.get_by_label("Your answer", exact=True).fill("Confirmed with the participant: it was 3.")
    coord.get_by_role("button", name="Send the answer").click()
    assert "Query 1 answered." in coord.get_by_role("status").first.inner_text()
    assert coord.locator(".query-msg").count() == 2
    shot(coord, "query-thread.en")
    # the same pages in Chinese
    coord.locator("header form button[lang]").first.click()
    coord.wait_for_load_state("load")
    assert coord.locator("html").get_attribute("lang") == "zh-CN"
    assert "已回复" in coord.locator("h1").inner_text()
    shot(coord, "query-thread.zh-CN")
    coord.goto(f"{server.url}/staff/queries")
    assert coord.get_by_role("heading", level=1).inner_text() == "数据质疑"
    shot(coord, "queries-list.zh-CN")
    coord.goto(f"{server.url}/staff/participants/S-001")
    assert coord.locator("#queries h2").inner_text().startswith("数据质疑")
    coord.locator("#queries").scroll_into_view_if_needed()
    if SHOTS:
        coord.locator("#queries").screenshot(path=str(Path(SHOTS) / "participant-queries.zh-CN.png"))
    ctx.close()

    ctx, mon = session(browser, server, "mon@site.example")
    mon.goto(f"{server.url}/staff/participants/S-001/queries/1")
    mon.get_by_role("button", name="Close the query").click()
    assert "Query 1 closed." in mon.get_by_role("status").first.inner_text()
    assert mon.get_by_role("button", name="Send the answer").count() == 0
    ctx.close()
