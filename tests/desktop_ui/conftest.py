"""Real widgets offscreen: a window over a real store in a temp dir, a fixed clock (study day 4,
Friday 13 March 2026, 10:15 Beijing) and the in-process fake server as transport."""

from __future__ import annotations

import pytest

from desktop.store import Store
from desktop.ui.context import UiContext
from desktop.ui.main_window import Navigator
from desktop.ui.ops import busy
from desktop.ui.qt import QApplication, Qt, isValid

from tests.desktop.fake_server import FakeServer
from tests.tools.scenes import clock as scene_clock, pair as scene_pair

pytestmark = pytest.mark.qt


class App:
    """The window plus helpers to drive it by keyboard."""

    def __init__(self, qtbot, window: Navigator, server: FakeServer):
        self.qtbot, self.w, self.server = qtbot, window, server
        self.ctx = window.ctx
        self.store = window.ctx.store

    def focus(self):
        return QApplication.focusWidget()

    def key(self, key, times: int = 1) -> None:
        for _ in range(times):
            target = self.focus() or self.w
            self.qtbot.keyClick(target, key)

    def type(self, text: str) -> None:
        self.qtbot.keyClicks(self.focus(), text)

    def settle(self) -> None:
        self.qtbot.waitUntil(lambda: not busy(), timeout=5000)

    def find(self, cls, name: str):
        """The visible widget of that name on the current screen (old pages may await deletion)."""
        for w in self.w.current().findChildren(cls, name):
            if w.isVisible():
                return w
        return None

    def screen(self) -> str:
        return self.w.current_name()


def make_window(qtbot, tmp_path, paired: bool = True, lang: str = "en", show_scores: bool = False,
                server: FakeServer | None = None, speech_factory=None) -> App:
    store = Store(tmp_path / "data")
    if paired:
        scene_pair(store, show_scores=show_scores)
    server = server or FakeServer(participant="001-017")
    ctx = UiContext(store, scene_clock(), transport_factory=lambda url, token: server, language=lang,
                    speech_factory=speech_factory)
    return App(qtbot, show_window(qtbot, Navigator(ctx)), server)


def show_window(qtbot, w: Navigator) -> Navigator:
    """Show at 1024×820, exposed and active, with a focused control."""
    qtbot.addWidget(w)
    w.resize(1024, 820)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=3000)
    return w


@pytest.fixture
def app(qtbot, tmp_path):
    a = make_window(qtbot, tmp_path)
    yield a
    a.settle()
    if isValid(a.w):
        a.w.close()
    a.store.close()


@pytest.fixture
def make_app(qtbot, tmp_path):
    made = []

    def make(**kw) -> App:
        a = make_window(qtbot, tmp_path / f"w{len(made)}", **kw)
        made.append(a)
        return a
    yield make
    for a in made:
        a.settle()
        if isValid(a.w):
            a.w.close()
        a.store.close()


K = Qt.Key
