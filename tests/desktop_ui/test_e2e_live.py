"""As a new user would: pair against a served instance, fill in an ALSFRS-R, a nasal diary and a dose
confirmation while the server is stopped, start it again, press Send now, and see all three received
by the site with receipts — through the real window, the real HTTP transport and a real server."""

from __future__ import annotations

import sqlite3

import pytest

from desktop.clock import SystemClock
from desktop.store import Store
from desktop.ui.context import UiContext
from desktop.ui.main_window import Navigator
from desktop.ui.qt import QLabel, QLineEdit, isValid
from desktop.ui.widgets import WrapButton

from tests.desktop_ui import flows
from tests.desktop_ui.conftest import App, K, show_window
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.qt]


@pytest.fixture
def live_app(qtbot, tmp_path):
    with LiveServer(subjects=("S-017",)) as srv:
        store = Store(tmp_path / "client")
        ctx = UiContext(store, SystemClock(), server_url=srv.url, language="en")
        w = show_window(qtbot, Navigator(ctx))
        app = App(qtbot, w, None)
        yield app, srv
        app.settle()
        if ctx._engine is not None:
            ctx._engine.transport.close()
        if isValid(w):
            w.close()
        store.close()


def test_offline_entries_reach_the_site_with_receipts(live_app):
    app, srv = live_app
    assert app.screen() == "pairing"
    code = srv.pairing_code("S-017", "caregiver")["code"]
    app.find(QLineEdit, "code").setFocus()        # the server address came prefilled (--server)
    app.type(code[:4] + " - " + code[4:])          # spaces and dashes do not matter
    app.find(WrapButton, "pair").setFocus()
    app.key(K.Key_Return)
    app.qtbot.waitUntil(lambda: app.screen() == "paired", timeout=10000)
    labels = [lab.text() for lab in app.w.current().findChildren(QLabel) if lab.isVisible()]
    assert "This computer is paired as: caregiver of participant S-017" in labels
    app.key(K.Key_Return)                          # Start
    assert app.screen() == "today"

    srv.terminate()                                # no connection from here on
    flows.start_new(app, "alsfrs_r")
    flows.alsfrs(app, score=4)
    flows.start_new(app, "nasal_symptoms")
    flows.nasal_no_symptoms(app)
    flows.start_new(app, "dose_confirmation")
    app.key(K.Key_1)                               # which dose: dose 1
    flows.dose_given_both_full(app)
    app.settle()
    assert app.store.outbox.counts()["saved"] == 3
    assert "3 entries waiting since today" in app.w.status.text.text()

    srv.start()
    app.w.status.send.setFocus()
    app.key(K.Key_Return)                          # Send now
    app.settle()
    entries = app.store.outbox.entries()
    assert [e.state for e in entries] == ["received"] * 3
    con = sqlite3.connect(srv.db_path)
    rows = dict(con.execute("SELECT id, sha256 FROM records").fetchall())
    con.close()
    assert rows == {e.id: e.sha256 for e in entries}          # each once, as saved
    assert all(e.receipt["sha256"] == e.sha256 for e in entries)
    assert app.w.status.text.text().startswith("✓✓ Nothing waiting — last received by the site today")
    app.w.show_history()
    text = " ".join(lab.text() for lab in app.w.current().findChildren(QLabel) if lab.isVisible())
    assert text.count("✓✓ Received by the site") == 3 and text.count("check code") == 3
