"""Benchmark 5 (issue 14): what a full ALSFRS-R costs by one switch, by two switches and by keyboard.

Real widgets offscreen (the window over a temp store, the fixed test clock), driven by key events
only. From the form's first page to Submit: respondent "the participant", no feeding tube, the
twelve items at 4,4,3,3,2,3,3,2,1,4,4,3. One switch: presses, and the time at the default speed,
counted as (highlight stops passed + selections) × interval: the highlight rests one interval on
every stop and the press comes at the latest at the end of the target's interval. Two switches:
"move" presses + "choose" presses. Keyboard: every key pressed (Enter chooses and Enter goes on for
the two first pages; on the items a digit chooses by score and goes on; on the review page → reaches
Submit and Enter submits).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SCORES = [4, 4, 3, 3, 2, 3, 3, 2, 1, 4, 4, 3]


class _Bot:
    """The two qtbot calls the switch user needs, on plain QTest."""

    def keyClick(self, widget, key):  # noqa: N802
        from PySide6.QtTest import QTest
        QTest.keyClick(widget, key)

    def waitUntil(self, *_a, **_k):  # noqa: N802
        pass


def _window(tmp: Path):
    from desktop.store import Store
    from desktop.ui.context import UiContext
    from desktop.ui.main_window import Navigator
    from desktop.ui.qt import QApplication
    from tests.desktop.fake_server import FakeServer
    from tests.tools.scenes import clock, pair
    store = Store(tmp / "data")
    pair(store)
    server = FakeServer(participant="001-017")
    w = Navigator(UiContext(store, clock(), transport_factory=lambda url, token: server, language="en"))
    w.resize(1024, 820)
    w.show()
    w.activateWindow()
    app = QApplication.instance()
    for _ in range(50):
        app.processEvents()
        if QApplication.focusWidget() is not None:
            break
    w.open_form("alsfrs_r", {})
    return w, store


def _finish(app, w, store) -> dict:
    from desktop.ui.ops import busy
    import time
    end = time.monotonic() + 10
    while busy() and time.monotonic() < end:
        app.processEvents()
    rows = [e for e in store.outbox.entries() if e.type == "alsfrs_r"]
    payload = rows[0].envelope["payload"] if rows else None
    w.close()
    store.close()
    return payload


def run() -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from shared.vocab import ALSFRS_ITEM_KEYS_5A
    from desktop.store.settings import SCAN_INTERVAL_MS
    from desktop.ui.qt import QApplication, Qt
    from tests.desktop_ui import switch_user as su
    app = QApplication.instance() or QApplication(["bench"])
    scores = dict(zip(ALSFRS_ITEM_KEYS_5A, SCORES))
    out: dict = {"interval_ms": SCAN_INTERVAL_MS[2]}
    for mode in ("one", "two"):
        with tempfile.TemporaryDirectory() as tmp:
            w, store = _window(Path(tmp))
            user = su.SwitchUser(_Bot(), w, mode)
            user.answer("participant")
            user.answer(False)
            form = w.current()
            while form.step_id.startswith("item:"):
                user.answer(scores[form.step_id.split(":")[1]])
            user.choose("submit")
            payload = _finish(app, w, store)
            out[mode] = {"presses": user.presses, "steps": user.steps, "selections": user.selections,
                         "stored_ok": payload == {"gastrostomy": False, "items": scores}}
    with tempfile.TemporaryDirectory() as tmp:
        w, store = _window(Path(tmp))
        keys = 0

        def key(k):
            nonlocal keys
            _Bot().keyClick(QApplication.focusWidget() or w, k)
            keys += 1
        K = Qt.Key
        key(K.Key_Return)                  # respondent: the participant (first answer)
        key(K.Key_Return)                  # Next
        key(K.Key_Down)                    # feeding tube: No
        key(K.Key_Return)
        key(K.Key_Return)
        form = w.current()
        while form.step_id.startswith("item:"):
            key(getattr(K, f"Key_{scores[form.step_id.split(':')[1]]}"))   # answers and goes on
        assert form.step_id == "review"
        key(K.Key_Right)                   # the review page: to Submit
        key(K.Key_Return)                  # Submit
        payload = _finish(app, w, store)
        out["keyboard"] = {"keys": keys, "stored_ok": payload == {"gastrostomy": False, "items": scores}}
    one = out["one"]
    out["one"]["seconds"] = (one["steps"] + one["selections"]) * out["interval_ms"] / 1000
    return out
