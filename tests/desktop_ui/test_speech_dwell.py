"""Read aloud (with and without a speech engine) and dwell selection on real widgets."""

from __future__ import annotations

import pytest

from desktop.ui.speech import Speaker
from desktop.ui.widgets import WrapButton

from tests.desktop_ui.conftest import K


def item_page(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False)
    form.go("item:1")
    return form


def test_no_engine_says_so_in_words_and_nothing_fails(app):
    app.w.access.speaker = Speaker(engine="no-such-engine")
    item_page(app)
    button = app.find(WrapButton, "readAloud")
    button.setFocus()
    app.key(K.Key_Return)
    assert button.text() == "Reading aloud is not available: this computer has no speech engine"
    assert button.accessibleName() == button.text()
    assert app.screen() == "form:alsfrs_r"


def test_read_aloud_speaks_the_question_and_its_five_answers_in_the_language_shown(make_app):
    a = make_app(lang="zh-CN")
    a.w.access.speaker = speaker = Speaker(engine="mock")     # Qt's own test engine: no audio needed
    item_page(a)
    button = a.find(WrapButton, "readAloud")
    button.click()
    text = speaker.last_text
    assert text.count(", ") >= 5 and "4, " in text and "0, " in text
    assert not any("a" <= ch <= "z" for ch in text)               # the Chinese wording
    assert button.text() == "正在启动语音……"                       # the engine starts on its own thread
    a.qtbot.waitUntil(lambda: button.text() == "无法朗读：此电脑没有该语言的语音", timeout=5000)  # mock: no Chinese
    a.ctx.set_language("en")
    item_page(a)
    a.find(WrapButton, "readAloud").click()
    assert speaker.last_text.startswith(a.w.current().current().stem) and "4, " in speaker.last_text
    a.qtbot.waitUntil(lambda: "speaking" in speaker.states, timeout=3000)


REAL_ENGINE = """
import sys, time
from desktop.ui.qt import QApplication
from desktop.ui.speech import Speaker
app = QApplication([])
s = Speaker()
problem = s.problem("en")
end = time.monotonic() + 20
while problem == "speech.starting" and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
    problem = s.problem("en")
if problem:
    print(problem); sys.exit(3)
s.say("Question one. Four, normal speech.", "en")
end = time.monotonic() + 5
while time.monotonic() < end and "speaking" not in s.states:
    app.processEvents(); time.sleep(0.01)
ok = "speaking" in s.states
print(",".join(s.states)); s.shutdown(); sys.exit(0 if ok else 1)
"""


def test_real_speech_engine_starts_speaking():
    """speech-dispatcher + espeak-ng, in a child process with a bound (a stuck daemon must not hang
    the suite): the engine reports the Speaking state."""
    import subprocess
    import sys
    try:
        run = subprocess.run([sys.executable, "-c", REAL_ENGINE], capture_output=True, text=True, timeout=30,
                             env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    except subprocess.TimeoutExpired:
        pytest.skip("the speech engine did not answer within 30 s")
    if run.returncode == 3:
        pytest.skip(f"no usable speech engine here: {run.stdout.strip()}")
    assert run.returncode == 0 and "speaking" in run.stdout, run.stdout + run.stderr[-500:]


@pytest.mark.parametrize("lang,words", [
    ("en", "Reading aloud is not available: the speech engine did not start"),
    ("zh-CN", "无法朗读：语音引擎没有启动"),
])
def test_a_speech_engine_that_never_starts_does_not_hold_up_the_window(make_app, lang, words):
    """speech-dispatcher installed but stuck (no daemon, no sound): making the engine never returns.
    Simulated by the one seam, the engine factory; everything else is the real window."""
    import threading
    release, calls = threading.Event(), []

    def stuck_engine():
        calls.append(threading.current_thread())
        release.wait(30)                          # bounded, so a wrong build fails instead of hanging
        from PySide6.QtTextToSpeech import QTextToSpeech
        return QTextToSpeech("mock")              # comes too late: must be ignored

    a = make_app(lang=lang, speech_factory=stuck_engine)
    try:
        assert a.screen() == "today" and calls == []      # the window is up; no engine asked for yet
        item_page(a)
        speaker = a.w.access.speaker
        speaker.start_ms = 300
        button = a.find(WrapButton, "readAloud")
        button.setFocus()
        a.key(K.Key_Return)                                 # returns although the engine is stuck
        assert not release.is_set()
        assert button.text() == a.ctx.tr("speech.starting")
        a.qtbot.waitUntil(lambda: bool(calls), timeout=3000)
        assert calls[0] is not threading.main_thread()     # made off the UI thread
        a.qtbot.waitUntil(lambda: button.text() == words, timeout=5000)
        assert button.accessibleName() == words and speaker.status == "timeout"
        a.key(K.Key_3)                                      # the form goes on as before
        assert a.w.current().step_id == "item:2"
    finally:
        release.set()
    a.qtbot.waitUntil(lambda: speaker.late, timeout=5000)            # the engine came, too late
    assert speaker.status == "timeout" and speaker.problem(lang) == "speech.not_started"


def test_a_speech_engine_that_fails_to_start_says_so(make_app):
    def broken_engine():
        raise RuntimeError("Connection to speech-dispatcher failed")
    a = make_app(speech_factory=broken_engine)
    item_page(a)
    button = a.find(WrapButton, "readAloud")
    button.click()
    a.qtbot.waitUntil(lambda: button.text() == "Reading aloud is not available: this computer has no speech engine",
                      timeout=5000)
    assert a.w.access.speaker.status == "failed" and a.screen() == "form:alsfrs_r"


def test_dwell_is_off_by_default_then_resting_selects_and_moving_away_cancels(app):
    dwell = app.w.access.dwell
    assert not dwell.active
    form = item_page(app)
    app.w.access.preset("dwell")
    dwell.manual_clock = True
    three = app.find(WrapButton, "opt_3")
    two = app.find(WrapButton, "opt_2")
    dwell.hover(three)                                  # what an Enter event on the button does
    dwell.step(700)
    assert dwell.ring.isVisible() and 0.4 < dwell.ring.fraction < 0.5
    dwell.hover(two)                                    # moved away: cancelled, starts again on 2
    dwell.step(1400)
    assert (form.draft.answers.get("items") or {}).get("1") is None
    dwell.step(200)
    assert form.draft.answers["items"]["1"] == 2 and not dwell.ring.isVisible()
    dwell.step(5000)
    assert dwell.activations == 1                        # no repeat without leaving first


def _pointer(widget, kind: str) -> None:
    """A pointer event delivered straight to the real widget, through the application's filters
    (as the window system would deliver it; no global cursor, so no order between tests)."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QEnterEvent, QMouseEvent
    from desktop.ui.qt import QApplication, QEvent, Qt
    local = QPointF(widget.rect().center())
    glob = QPointF(widget.mapToGlobal(widget.rect().center()))
    if kind == "enter":
        event = QEnterEvent(local, local, glob)
    elif kind == "move":
        event = QMouseEvent(QEvent.Type.MouseMove, local, glob, Qt.MouseButton.NoButton,
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    else:
        event = QEvent(QEvent.Type.Leave)
    QApplication.sendEvent(widget, event)


def test_a_pointer_resting_on_an_answer_selects_it_and_leaving_early_cancels(app):
    """Real pointer events on the real answer buttons, the controller's own timer (the shortest
    dwell the settings allow), waits on conditions with a bound."""
    form = item_page(app)
    app.w.access.apply(dwell_ms=500)
    dwell = app.w.access.dwell
    assert dwell.active and not dwell.manual_clock
    three, two = app.find(WrapButton, "opt_3"), app.find(WrapButton, "opt_2")
    items = lambda: form.draft.answers.get("items") or {}           # noqa: E731

    _pointer(three, "enter")
    _pointer(three, "move")
    assert dwell.target is three and dwell.ring.isVisible()
    app.qtbot.waitUntil(lambda: dwell.elapsed > 0, timeout=3000)     # the ring has begun to fill
    assert "1" not in items()
    _pointer(three, "leave")                                         # left early: cancelled
    assert dwell.target is None and not dwell.ring.isVisible() and dwell.elapsed == 0

    _pointer(two, "enter")                                           # rest on 2 until it is pressed
    _pointer(two, "move")
    app.qtbot.waitUntil(lambda: dwell.activations == 1, timeout=5000)
    assert items()["1"] == 2                                         # 3 never fired, though it had a head start
    assert app.find(WrapButton, "opt_2").property("selected") is True
    assert form.step_id == "item:1"                                  # dwell selects; it never goes on by itself
    assert not dwell.ring.isVisible()
