"""Screenshot every staff page in English and Simplified Chinese from a real server holding the demo
database: ``python -m tests.tools.staff_screenshots --out screenshots/staff``.

The demo database (:func:`server.demo.build_demo`) loads synthetic participants through real pairing
and ingest; one more site with a participant is added so the "another site" page can be shown. A real
server process serves it (:class:`tests.support.live_server.LiveServer`) and Debian's chromium
(Playwright) signs in through the forms. Each page is saved whole (``full_page``); a few pages are
also taken at 200 % zoom (a 640 px wide window at device scale 2, as a 1280 px screen at 200 %).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.support.live_server import LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "demo screenshots password"
LANGS = ("en", "zh-CN")


class DemoServer(LiveServer):
    """A LiveServer whose database is the demo database (plus a second site for the 403 page)."""

    def prepare(self) -> None:
        from server.demo import build_demo

        self.demo = build_demo(self.db_path, password=PASSWORD)
        self.cli("site", "add", "SH02", "Second site")
        self.cli("participant", "enroll", "002-001", "--site", "SH02", "--onset", "2025-01",
                 "--first-dose", "2025-12-01")
        self._prepared = True

    def email(self, role: str) -> str:
        return next(s["email"] for s in self.demo.staff if s["role"] == role)


def _login(page, url: str, email: str) -> None:
    page.goto(url + "/staff/login")
    page.fill("#f-email", email)
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_load_state("load")


def _set_lang(page, lang: str) -> None:
    if page.get_attribute("html", "lang") != lang:
        page.click("header form[action$='/language'] button")
        page.wait_for_load_state("load")


def shoot(out: Path, url: str, srv: DemoServer, only: str = "") -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

        def snap(page, lang: str, name: str, full_page: bool = True) -> None:
            if only and not name.startswith(only):
                return
            path = out / f"{lang}-{name}.png"
            page.screenshot(path=str(path), full_page=full_page)
            taken.append(path)

        for lang in LANGS:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang)
            page = ctx.new_page()
            page.goto(url + "/staff/login")
            _set_lang(page, lang)
            snap(page, lang, "01-login")
            page.fill("#f-email", srv.email("investigator"))
            page.fill("#f-password", "wrong password here")
            page.click("button[type=submit].primary")
            snap(page, lang, "02-login-failed")
            _login(page, url, srv.email("investigator"))
            _set_lang(page, lang)
            page.goto(url + "/staff/participants")
            snap(page, lang, "03-participants")
            for subject in ("001-002", "001-004", "001-006"):
                page.goto(f"{url}/staff/participants/{subject}")
                snap(page, lang, f"04-participant-{subject}")
            # the summary as it fits one 1280 x 800 screen, then each section of the page
            page.set_viewport_size({"width": 1280, "height": 800})
            page.goto(f"{url}/staff/participants/001-002")
            snap(page, lang, "04a-participant-one-screen", full_page=False)
            page.set_viewport_size({"width": 1280, "height": 900})
            for section in ("diary", "doses", "records", "audit", "devices", "print"):
                page.goto(f"{url}/staff/participants/001-002/{section}")
                snap(page, lang, f"04b-participant-{section}")
            page.goto(f"{url}/staff/participants/001-002/records")
            page.click("details.record summary >> nth=0")
            snap(page, lang, "04c-participant-records-open")
            first = page.get_attribute("details.record >> nth=0", "id").removeprefix("rec-")
            page.goto(f"{url}/staff/records/{first}")
            snap(page, lang, "05-record")
            page.goto(url + "/staff/enroll")
            page.click("button[type=submit].primary")
            snap(page, lang, "06-enroll-errors")
            for name, path in (("07-first-dose", "first-dose"), ("08-caregiver", "caregivers/new"),
                               ("09-pairing", "pairing")):
                page.goto(f"{url}/staff/participants/001-003/{path}")
                snap(page, lang, name)
            page.check("input[name=role][value=participant]")
            page.click("button[type=submit].primary")
            snap(page, lang, "10-pairing-code")
            page.goto(f"{url}/staff/participants/001-003/devices")
            page.click("a.button.danger >> nth=0")
            snap(page, lang, "11-revoke")
            page.goto(url + "/staff/account/sessions")
            snap(page, lang, "12-sessions")
            page.goto(url + "/staff/participants/002-001")
            snap(page, lang, "13-other-site-403")
            ctx.close()

            ctx = browser.new_context(viewport={"width": 640, "height": 450}, device_scale_factor=2, locale=lang)
            page = ctx.new_page()
            _login(page, url, srv.email("coordinator"))
            _set_lang(page, lang)
            for name, path in (("20-zoom200-participants", "/staff/participants"),
                               ("21-zoom200-participant", "/staff/participants/001-003"),
                               ("22-zoom200-diary", "/staff/participants/001-002/diary"),
                               ("23-zoom200-records", "/staff/participants/001-002/records")):
                page.goto(url + path)
                snap(page, lang, name)
            ctx.close()

            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang)
            page = ctx.new_page()
            _login(page, url, srv.email("monitor"))
            _set_lang(page, lang)
            page.goto(f"{url}/staff/participants/001-005")
            snap(page, lang, "30-monitor-participant")
            ctx.close()

            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang)
            page = ctx.new_page()
            _login(page, url, srv.email("admin"))
            _set_lang(page, lang)
            for name, path in (("40-admin-users", "/staff/admin/users"), ("41-admin-user-new", "/staff/admin/users/new"),
                               ("43-admin-sites", "/staff/admin/sites"), ("44-admin-devices", "/staff/admin/devices"),
                               ("45-admin-clinical-403", "/staff/participants")):
                page.goto(url + path)
                snap(page, lang, name)
            page.goto(url + "/staff/admin/users")
            page.click("table a:has-text('coordinator@')")
            snap(page, lang, "42-admin-user")
            ctx.close()
        browser.close()
    return taken


def shoot_site_dosing(out: Path, only: str = "") -> list[Path]:
    """The staff dose-entry form exists only where the protocol doses at the site: a second server
    whose protocol file says ``location = "site"``."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from shared.protocol import PROTOCOL_DIR

    if only and not any(name.startswith(only) for name in ("50-dose-entry", "51-dose-entry-errors")):
        return []
    tmp = Path(tempfile.mkdtemp(prefix="site-dosing-"))
    protocol = tmp / "site-dosing.toml"
    protocol.write_text((PROTOCOL_DIR / "nct06598202.toml").read_text(encoding="utf-8")
                        .replace('location = "home"', 'location = "site"'), encoding="utf-8")
    taken: list[Path] = []
    with DemoServer(staff_email="unused@demo.example", env={"ALS_EPRO_PROTOCOL": str(protocol)}) as srv, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for lang in LANGS:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale=lang)
            _login(page, srv.url, srv.email("coordinator"))
            _set_lang(page, lang)
            page.goto(f"{srv.url}/staff/participants/001-006/doses/new")
            for name in ("50-dose-entry", "51-dose-entry-errors"):
                path = out / f"{lang}-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                taken.append(path)
                page.check("input[name=nostrils][value=none]")
                page.click("button[type=submit].primary")
            page.close()
        browser.close()
    return taken


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="screenshots/staff")
    p.add_argument("--only", default="", help="only pages whose name starts with this")
    args = p.parse_args(argv)
    with DemoServer(staff_email="unused@demo.example") as srv:
        taken = shoot(Path(args.out), srv.url, srv, args.only)
        from tests.tools.review_screenshots import shoot as shoot_review  # the review pages (rNN-*)
        taken += shoot_review(Path(args.out), srv, args.only)
    taken += shoot_site_dosing(Path(args.out), args.only)
    for path in taken:
        print(path)
    print(f"{len(taken)} screenshots in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
