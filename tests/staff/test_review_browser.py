"""The review workflow in real headless Chromium against a real server holding the demo database: sign
in, open a flagged participant, acknowledge a flag (a hostile note stays text), sign off with the
password, correct a covered entry (the signature shows invalidated), export and verify an ODM file."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from server.exports.manifest import verify_manifest
from tests.tools.review_screenshots import (
    FLAGGED, ReviewDemoServer, acknowledge, correct, export, flag_article, launch, login, sign,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
HOSTILE = "<script>window.__pwned = 1</script> '; DROP TABLE audit; --"


@pytest.fixture(scope="module")
def server():
    with ReviewDemoServer(staff_email="unused@demo.example") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def test_reviewer_acknowledges_signs_corrects_and_exports_a_verified_odm_file(server, browser, tmp_path):
    url = server.url
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en", accept_downloads=True)
    page = ctx.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, url, server.email("investigator"))
    assert page.url.endswith("/staff/participants")

    # a flagged participant, understood from the page alone
    page.click(f"a[href='/staff/participants/{FLAGGED}']")
    page.wait_for_load_state("load")
    box = flag_article(page, "epistaxis")
    assert "needed help" in box.inner_text() and box.locator("input[name=outcome]").count() == 3

    acknowledge(page, "epistaxis", "not_ae", HOSTILE)
    assert "Flag acknowledged for 001-002." in page.inner_text("main")
    box = flag_article(page, "epistaxis")
    assert "Acknowledged: not an adverse event" in box.inner_text()
    assert HOSTILE in box.inner_text()                      # shown as text ...
    assert page.evaluate("window.__pwned") is None and dialogs == []   # ... never run
    record_id = box.locator("a[href^='/staff/records/']").last.get_attribute("href").rsplit("/", 1)[-1]

    # sign off the participant's period as reviewed, with the password re-entered
    sign(page, url, FLAGGED, "Dr. Demo Investigator", password="wrong password entirely")
    assert "The password is not correct" in page.inner_text("main")
    sign(page, url, FLAGGED, "Dr. Demo Investigator")
    main = page.inner_text("main")
    # the demo investigator's account has a name: it is the printed name, nothing typed
    assert "Valid" in main and "Dr. Li Wei (demo)" in main and "Reviewed" in main and "UTC" in main
    assert "Dr. Demo Investigator" not in main
    signoff_url = page.url

    # correct the flagged diary on the participant's request: the signature becomes invalidated
    correct(page, url, record_id, "symptoms.headache", "1", "Caregiver added a mild headache by phone.",
            "caregiver, by phone")
    main = page.inner_text("main")
    assert "Saved as version 2" in main and "Sign-offs invalidated: 1" in main
    page.goto(signoff_url)
    assert "Invalidated — re-signature required" in page.inner_text("main")

    # export ODM from the page, download the ODM file and the manifest, check them
    export(page, url, ("odm",))
    assert "Checked: every file matches its manifest" in page.inner_text("main")
    article = page.locator("article[id^='exp-']").first
    name = article.get_attribute("id").removeprefix("exp-")
    article.locator("details summary").click()
    with page.expect_download() as dl:
        article.locator("a[href$='_odm.xml']").click()
    odm = tmp_path / dl.value.suggested_filename
    dl.value.save_as(odm)
    with page.expect_download() as dl:
        article.locator("a[href$='/manifest.json']").click()
    manifest = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert hashlib.sha256(odm.read_bytes()).hexdigest() == listed[f"odm/{odm.name}"]
    assert manifest["marker"] == "DEMO — synthetic data" and manifest["generated_by"] == server.email("investigator")
    from server.exports.validate import standards_dir, validate_odm
    if standards_dir() is not None:
        assert validate_odm(odm) == []
    text = odm.read_text(encoding="utf-8")
    assert "Caregiver added a mild headache by phone." in text and "DEMO — synthetic data" in text

    # the whole export as one zip verifies; one flipped byte is caught and named
    with page.expect_download() as dl:
        article.locator("a[href$='.zip']").click()
    with zipfile.ZipFile(dl.value.path()) as zf:
        zf.extractall(tmp_path / "zip")
    folder = tmp_path / "zip" / name
    assert verify_manifest(folder) == []
    target = folder / "review" / "signatures.csv"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x20
    target.write_bytes(bytes(data))
    assert [p.path for p in verify_manifest(folder)] == ["review/signatures.csv"]
    ctx.close()


def test_another_sites_participant_and_a_monitor_without_review_rights(server, browser):
    url = server.url
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en")
    page = ctx.new_page()
    login(page, url, server.email("monitor"))
    page.goto(f"{url}/staff/participants/{FLAGGED}")
    assert flag_article(page, "epistaxis").count() == 0          # no acknowledgement form for a monitor
    assert page.locator("a[href$='/correct']").count() == 0
    assert page.locator(f"a[href='/staff/participants/{FLAGGED}/signoff']").count() == 0
    response = page.goto(f"{url}/staff/participants/{FLAGGED}/signoff")
    assert response.status == 403
    response = page.goto(f"{url}/staff/audit")
    assert response.status == 200 and "Audit trail" in page.inner_text("h1")
    ctx.close()
