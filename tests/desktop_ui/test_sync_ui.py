"""Pairing, Send now, states and receipts, attention, revocation and export, unpair, reminders."""

from __future__ import annotations

import json
from datetime import datetime

from desktop.sync import RequestError
from desktop.ui.qt import QLabel, QLineEdit, QWidget
from desktop.ui.widgets import WrapButton

from tests.desktop.fake_server import FakeServer
from tests.desktop_ui.conftest import K
from tests.tools.scenes import BEIJING, seed_history


def labels(app) -> str:
    return " | ".join(lab.text() for lab in app.w.findChildren(QLabel) if lab.isVisible())


class PairingServer(FakeServer):
    def __init__(self, answer):
        super().__init__(participant="001-017")
        self.answer = answer
        self.codes = []

    def pair(self, code, device_name):
        self.codes.append((code, device_name))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_pairing_by_keyboard_shows_who_the_device_is(make_app, tmp_path):
    server = PairingServer({"device_id": "d1", "token": "t", "participant": "001-017", "role": "caregiver",
                            "originator": "caregiver:3", "protocol": {"site": {"phone": "010-1234"}},
                            "limits": {"max_records": 500, "max_bytes": 2097152},
                            "server_time": "2026-03-13T02:15:00+00:00"})
    app = make_app(paired=False, server=server)
    assert app.screen() == "pairing"
    app.find(QLineEdit, "serverUrl").setFocus()
    app.type("http://127.0.0.1:8000")
    app.key(K.Key_Tab)
    assert app.focus().objectName() == "code"
    app.type("ab12-cd34 ef")
    app.find(WrapButton, "pair").setFocus()
    app.key(K.Key_Return)
    app.qtbot.waitUntil(lambda: app.screen() == "paired", timeout=5000)
    assert server.codes[0][0] == "ab12cd34ef"
    assert "This computer is paired as: caregiver of participant 001-017" in labels(app)
    assert "010-1234" in labels(app)
    assert app.w.header.chip.text() == "Caregiver of 001-017"


def test_pairing_errors_are_in_words(make_app):
    server = PairingServer(RequestError("used", 410, "pairing.code_used"))
    app = make_app(paired=False, server=server)
    screen = app.w.current()
    screen.values.update(url="https://epro.example.org", code="K7QX-9M2P")
    screen.refresh()
    screen.pair()
    app.qtbot.waitUntil(lambda: "Code already used" in labels(app), timeout=5000)
    assert app.focus().objectName() == "code"
    server.answer = RequestError("slow down", 429, "pairing.rate_limited")
    app.w.current().pair()
    app.qtbot.waitUntil(lambda: "Too many tries — wait 10 minutes" in labels(app), timeout=5000)
    app.w.current().values["url"] = "http://epro.example.org"
    app.w.current().pair()
    app.qtbot.waitUntil(lambda: "not secure (http)" in labels(app), timeout=5000)
    assert app.focus().objectName() == "serverUrl"


def test_send_now_moves_entries_from_saved_to_received_with_receipts(app):
    seed_history(app.ctx, attention=False)
    app.w.show_today()
    assert "1 entry waiting since yesterday 20:30" in app.w.status.text.text()
    app.w.status.send.setFocus()
    app.key(K.Key_Return)
    app.settle()
    assert app.store.outbox.counts()["saved"] == 0
    assert "Nothing waiting — last received by the site" in app.w.status.text.text()
    app.w.show_history()
    text = labels(app)
    assert "✓✓ Received by the site" in text and "check code" in text and "Saved on this computer" not in text


def test_over_a_day_waiting_turns_the_status_amber(app):
    seed_history(app.ctx, attention=False)
    app.ctx.clock.set(datetime(2026, 3, 14, 21, 0, tzinfo=BEIJING))
    app.w.show_today()
    assert app.w.status.property("overdue") is True
    assert "more than a day" in app.w.status.text.text()


def test_conflict_shows_in_attention_with_the_servers_words(app):
    seed_history(app.ctx, attention=False)
    waiting = app.store.outbox.waiting()[0]
    app.server.stored[waiting.id] = {"sha256": "0" * 64, "receipt": {}, "envelope": {}}
    app.ctx.sync_now()
    app.settle()
    assert app.w.banner("attention") is not None
    assert app.w.status.attention.isVisible()
    app.w.status.attention.click()
    assert app.screen() == "history"
    assert "Needs the site's attention" in labels(app) and "different version" in labels(app)


def test_revoked_device_keeps_entries_and_exports_them(app, tmp_path, monkeypatch):
    seed_history(app.ctx, attention=False)
    app.server.faults = ["revoked"]
    app.ctx.sync_now()
    app.settle()
    banner = app.w.banner("revoked")
    assert banner is not None and "disconnected" in banner.text.text()
    assert not app.w.status.send.isVisible()
    out = tmp_path / "unsent.json"
    monkeypatch.setattr(app.w.screens["settings"], "ask_export_path", lambda: str(out))
    banner.action.click()
    doc = json.loads(out.read_text())
    assert doc["format"] == "als-epro-unsent/1" and len(doc["records"]) == 1
    assert app.store.outbox.counts()["saved"] == 1
    assert app.ctx.sync_now() is True
    app.settle()
    assert app.server.requests == []          # never tries again


def test_unpair_only_when_nothing_is_waiting(app):
    seed_history(app.ctx, attention=False)
    app.w.show_settings()
    assert not app.find(WrapButton, "unpair").isEnabled()
    assert "1 entry not yet received by the site" in labels(app)
    app.ctx.sync_now()
    app.settle()
    app.w.show_settings()
    app.find(WrapButton, "unpair").click()
    assert app.focus().objectName() == "unpairNo"
    app.find(WrapButton, "unpairYes").click()
    assert app.screen() == "pairing" and app.store.settings.pairing() is None


def test_token_in_a_file_is_a_visible_warning(app):
    assert app.ctx.tokens.save("dev-demo", "secret") == "file"     # no keyring on this machine
    app.w.show_settings()
    assert app.ctx.tokens.fallback
    assert "no system keyring" in labels(app)


def test_chart_only_when_the_protocol_allows(make_app):
    from PySide6.QtCharts import QChartView
    hidden = make_app(show_scores=False)
    seed_history(hidden.ctx)
    hidden.w.show_history()
    assert not [v for v in hidden.w.findChildren(QChartView) if v.isVisible()]
    assert "ALSFRS-R scores" not in labels(hidden)
    shown = make_app(show_scores=True)
    seed_history(shown.ctx)
    shown.w.show_history()
    assert [v for v in shown.w.findChildren(QChartView) if v.isVisible()]
    shown.find(WrapButton, "chartToggle").click()
    from desktop.ui.qt import QTableWidget
    table = shown.find(QTableWidget, "")
    assert table is not None and table.item(0, 1).text() == "45"


def test_reminders_missed_while_closed_show_as_banners_at_start(app):
    app.ctx.clock.set(datetime(2026, 3, 13, 21, 0, tzinfo=BEIJING))
    app.w.startup_checks()
    app.qtbot.waitUntil(lambda: app.w.banner("reminder:diary") is not None, timeout=3000)
    assert "dose 2" in app.w.banner("reminder:dose").text.text()
    assert app.ctx.notifier.delivered and app.ctx.check_reminders() == []


def test_safety_notice_comes_after_saved_and_names_the_site_phone(app):
    from tests.tools.scenes import _safety
    _safety(app.w)
    assert app.w.banner("saved") is not None
    assert app.screen() == "safety"
    app.settle()    # submitting starts a sync at once, which may already have sent it: saved, or further on
    counts = app.store.outbox.counts()
    assert sum(counts.values()) == 1 and counts["needs_attention"] == 0, counts
    heading = app.focus()
    assert heading.text() == "Your answers have been saved. Please read this."
    assert app.find(QLabel, "phone").text() == "010-8319 8899"


def test_draft_wording_footer(app):
    assert app.w.footer.text().startswith("Draft wording")


def test_language_defaults_from_the_system_locale(make_app, monkeypatch):
    from desktop.ui.qt import QLocale
    monkeypatch.setattr(QLocale, "system", staticmethod(lambda: QLocale("zh_CN")))
    from desktop.store import Store
    from desktop.ui.context import UiContext
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        try:
            assert UiContext(store, None).lang == "zh-CN"
            store.settings.set("language", "en")
            assert UiContext(store, None).lang == "en"
        finally:
            store.close()


def test_every_widget_is_reachable_by_keyboard_on_today(app):
    seed_history(app.ctx)
    app.w.show_today()
    stops = []
    start = app.focus()
    for _ in range(40):
        app.key(K.Key_Tab)
        w = app.focus()
        if w is start:
            break
        stops.append(w.objectName() or w.accessibleName())
    assert w is start                          # the chain comes round: no trap
    assert stops.index("history") < stops.index("sendNow") < stops.index("settings")
    assert all(isinstance(x, str) and x for x in stops)
    assert QWidget  # keep import used


def test_safety_notice_names_each_finding_in_the_persons_language(make_app):
    from shared.vocab import NASAL_SYMPTOMS
    app = make_app(lang="zh-CN")
    d = app.ctx.entries.start("nasal_symptoms", {"date": "2026-03-13", "dosing_day": True})
    d.answers = {"respondent": "caregiver", "sought_medical_care": False,
                 "symptoms": dict({n: 0 for n in NASAL_SYMPTOMS}, headache=3, allergic_signs=1,
                                  cough_choking_dosing=2)}
    app.w.after_submit(app.ctx.entries.submit(d, app.ctx.lang))
    text = labels(app)
    assert "您报告了：重度头痛。" in text and "您报告了：过敏迹象。" in text and "滴药时咳嗽或呛咳" in text
    assert "不会被实时查看" in text and "120" in text
