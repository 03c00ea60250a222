"""Screenshot the review pages in English and Simplified Chinese from a real server holding the demo
database. :func:`shoot` runs inside the staff screenshot tool (``python -m tests.tools.staff_screenshots
--out screenshots/staff``, files ``<lang>-rNN-*.png``); ``python -m tests.tools.review_screenshots --out DIR``
takes the review pages only.

The pages are reached the way a reviewer reaches them (sign in, open a flagged participant, acknowledge,
correct, sign off, export), so each screenshot shows real state. :class:`ReviewDemoServer` is also the
server of the review browser test (``tests/staff/test_review_browser.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.tools.staff_screenshots import CHROMIUM, CHROMIUM_ARGS, PASSWORD, DemoServer, _login, _set_lang

LANGS = ("en", "zh-CN")
FLAGGED = "001-002"   # the demo participant with a nosebleed that needed help and a missed dose


ReviewDemoServer = DemoServer   # the staff screenshot tool's demo server (demo database plus a second site)
login, set_lang = _login, _set_lang


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def signed_in_page(browser, url: str, email: str, lang: str):
    """A new browser context's page, signed in as ``email`` and showing ``lang``."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang, accept_downloads=True)
    page = ctx.new_page()
    login(page, url, email)
    set_lang(page, lang)
    return ctx, page


def flag_article(page, rule: str):
    """The participant page's flag box of the first flag of ``rule``."""
    return page.locator("article.flag", has=page.locator(f"input[name=flag_key][value^='{rule}:']")).first


def acknowledge(page, rule: str, outcome: str, note: str, ae_number: str = "") -> None:
    box = flag_article(page, rule)
    box.locator(f"input[name=outcome][value={outcome}]").check()
    if ae_number:
        box.locator("input[name=ae_number]").fill(ae_number)
    box.locator("textarea[name=note]").fill(note)
    box.locator("button[type=submit]").click()
    page.wait_for_load_state("load")


def correct(page, url: str, record_id: str, field: str, value: str, reason: str, requested_by: str) -> None:
    page.goto(f"{url}/staff/records/{record_id}/correct")
    page.select_option("#f-field_1", field)
    page.fill("#f-value_1", value)
    page.fill("#f-reason", reason)
    page.fill("#f-requested_by", requested_by)
    page.click("form[action$='/correct'] button[type=submit]")
    page.wait_for_load_state("load")


def sign(page, url: str, subject: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/staff/participants/{subject}/signoff")
    if page.locator("#f-printed_name").count():
        page.fill("#f-printed_name", name)
    page.fill("#f-password", password)
    page.click("form[action$='/signoff'][method=post] button[type=submit]")
    page.wait_for_load_state("load")


def export(page, url: str, formats: tuple[str, ...]) -> None:
    page.goto(url + "/staff/exports")
    for box in page.locator("input[name=formats]").all():
        box.set_checked(box.get_attribute("value") in formats)
    page.click("form[action$='/exports'] button[type=submit]")
    page.wait_for_load_state("load")


def shoot(out: Path, srv: ReviewDemoServer, only: str = "") -> list[Path]:
    from playwright.sync_api import sync_playwright

    url = srv.url
    out.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    with sync_playwright() as pw:
        browser = launch(pw)

        def snap(page, lang: str, name: str, at: str | None = None) -> None:
            """Save the whole page, or (``at``: a selector) the window scrolled to that element."""
            if only and not name.startswith(only):
                return
            path = out / f"{lang}-{name}.png"
            if at:
                page.locator(at).first.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.screenshot(path=str(path))
            else:
                page.screenshot(path=str(path), full_page=True)
            taken.append(path)

        for lang in LANGS:
            ctx, page = signed_in_page(browser, url, srv.email("coordinator"), lang)
            page.goto(f"{url}/staff/participants/{FLAGGED}")
            snap(page, lang, "r01-participant-flags", at="#flags")
            rid = flag_article(page, "epistaxis").locator("a[href^='/staff/records/']").last.get_attribute("href")
            rid = rid.rsplit("/", 1)[-1]
            page.goto(f"{url}/staff/participants/{FLAGGED}/flags/epistaxis:{rid}/acknowledge")
            page.check("form.ack-form input[name=outcome][value=ae_recorded]")
            page.click("form.ack-form button[type=submit]")  # no adverse event number: the server says so
            snap(page, lang, "r02-acknowledge-errors")
            page.goto(f"{url}/staff/participants/{FLAGGED}")
            acknowledge(page, "epistaxis", "ae_recorded", "Seen at the clinic; pressure stopped it." if lang == "en"
                        else "门诊已处理，压迫止血。", ae_number=f"AE-00{LANGS.index(lang) + 1}")
            snap(page, lang, "r03-participant-acknowledged", at="#flags")
            page.goto(f"{url}/staff/records/{rid}/correct")
            snap(page, lang, "r04-correct-form")
            correct(page, url, rid, "symptoms.headache", "1", "Caregiver added a mild headache by phone.",
                    "caregiver, by phone")
            snap(page, lang, "r05-record-corrected")
            ctx.close()

            ctx, page = signed_in_page(browser, url, srv.email("investigator"), lang)
            page.goto(f"{url}/staff/participants/{FLAGGED}/signoff")
            snap(page, lang, "r06-signoff-form")
            page.fill("#f-password", "not the password")
            if page.locator("#f-printed_name").count():
                page.fill("#f-printed_name", "Dr. Demo Investigator")
            page.click("form[action$='/signoff'][method=post] button[type=submit]")
            snap(page, lang, "r07-signoff-wrong-password")
            sign(page, url, FLAGGED, "Dr. Demo Investigator")
            snap(page, lang, "r08-signoff-detail")
            detail = page.url
            correct(page, url, rid, "symptoms.headache", "2", "Participant: the headache was moderate.",
                    "participant, at visit")
            page.goto(detail)
            snap(page, lang, "r09-signoff-invalidated")
            page.goto(f"{url}/staff/participants/{FLAGGED}/audit")
            snap(page, lang, "r10-participant-signoffs", at="#signoffs")
            page.goto(url + "/staff/review/reports")
            snap(page, lang, "r11-reports")
            page.goto(f"{url}/staff/audit?subject={FLAGGED}")
            snap(page, lang, "r12-audit-trail", at="main")
            export(page, url, ("odm",))
            page.locator("details.plain summary").first.click()
            snap(page, lang, "r13-exports")
            ctx.close()

            ctx, page = signed_in_page(browser, url, srv.email("monitor"), lang)
            page.goto(f"{url}/staff/participants/{FLAGGED}")
            snap(page, lang, "r14-monitor-participant", at="#flags")
            page.goto(url + "/staff/audit")
            snap(page, lang, "r15-monitor-audit-trail", at="#audit-filters")
            ctx.close()
        browser.close()
    return taken



def main(argv: list[str] | None = None) -> int:
    """The review pages only (the staff screenshot tool takes them together with every other page)."""
    from tests.tools import staff_screenshots
    return staff_screenshots.main([*(argv if argv is not None else sys.argv[1:]), "--only", "r"])


if __name__ == "__main__":
    raise SystemExit(main())
