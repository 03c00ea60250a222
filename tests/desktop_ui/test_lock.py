"""The app lock in real widgets (PS-06): set a PIN in Settings, lock after idle time over a half-done
form, wrong PINs pause (keypad and keyboard), the right PIN gives the form back at the same question
with its answers; both languages; pages shown while locked wait behind the lock."""

from __future__ import annotations

import pytest

from desktop.ui.main_window import Navigator
from desktop.ui.qt import QLabel, QLineEdit, QRadioButton
from desktop.ui.widgets import WrapButton

from tests.desktop_ui.conftest import K, show_window
from tests.tools.scenes import clock as scene_clock

PIN = "482615"


class Ticks:
    """A monotonic clock the test moves (the idle timer reads it)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def set_pin(app, pin: str = PIN, minutes: int = 2) -> None:
    app.w.show_settings()
    app.find(WrapButton, "appLock").click()
    assert app.screen() == "lock_setup"
    app.find(QLineEdit, "newPin").setFocus()
    app.type(pin)
    app.find(QLineEdit, "newPinAgain").setFocus()
    app.type(pin)
    app.find(QRadioButton, f"idle_{minutes}").setChecked(True)
    app.key(K.Key_Return)                                   # Enter in the second field saves
    assert app.w.lock.service.enabled and app.w.lock.service.idle_minutes == minutes
    assert app.find(QLabel, "lockSaved") is not None


def idle(app, seconds: float) -> None:
    app.w.lock.monotonic = ticks = getattr(app, "_ticks", None) or Ticks()
    app._ticks = ticks
    app.w.lock.last_input = ticks.t
    ticks.t += seconds
    app.w.lock.check_idle()


def message(app) -> str:
    lab = app.find(QLabel, "pinMessage")
    return lab.text() if lab is not None else ""


def test_mismatched_or_short_pins_are_refused(app):
    app.w.show_settings()
    app.find(WrapButton, "appLock").click()
    app.find(QLineEdit, "newPin").setFocus()
    app.type("123")
    app.find(WrapButton, "savePin").click()
    assert app.find(QLabel, "pinError").text() == app.ctx.tr("lock.bad_pin")
    app.find(QLineEdit, "newPin").setFocus()
    app.type("1234")
    app.find(QLineEdit, "newPinAgain").setFocus()
    app.type("1243")
    app.find(WrapButton, "savePin").click()
    assert app.find(QLabel, "pinError").text() == app.ctx.tr("lock.mismatch")
    assert not app.w.lock.service.enabled


def test_idle_locks_over_a_form_and_the_right_pin_gives_it_back_unchanged(app):
    set_pin(app)
    app.w.open_form("nasal_symptoms", {"date": "2026-03-13", "dosing_day": True})
    app.key(K.Key_Return)                                   # respondent chosen, on to the next page
    form, step = app.w.current(), app.w.current().step_id
    idle(app, 119)
    assert app.screen() == form.name                        # not yet: 2 minutes were chosen
    idle(app, 120)
    assert app.screen() == "lock"
    assert not app.w.header.isVisible() and not app.w.status.isVisible()
    app.w.show_today()                                      # any other page: ignored while locked
    assert app.screen() == "lock"
    for digit in PIN:                                       # the keypad, with large targets
        key = app.find(WrapButton, f"key_{digit}")
        assert key.height() >= 72 and key.width() >= 120
        key.click()
    app.find(WrapButton, "key_unlock").click()
    assert app.w.current() is form and form.step_id == step
    idle(app, 121)                                          # again, unlocked by keyboard this time
    assert app.screen() == "lock"
    app.type(PIN)
    app.key(K.Key_Return)
    assert app.w.current() is form and form.step_id == step and app.w.header.isVisible()
    assert app.store.drafts.get(form.draft.id) is not None  # the draft is kept


def test_five_wrong_pins_pause_with_a_growing_wait_and_nothing_is_lost(app):
    set_pin(app)
    clock = app.ctx.clock
    app.w.lock.lock()
    for i in range(4):
        app.type("999999")
        app.key(K.Key_Return)
        assert message(app) == app.ctx.tr("lock.wrong", n=4 - i)
    app.type("999999")
    app.key(K.Key_Return)
    assert message(app) == app.ctx.tr("lock.paused", n=30)
    assert not app.find(WrapButton, "key_1").isEnabled() and not app.find(QLineEdit, "pin").isEnabled()
    clock.advance(seconds=30)
    app.w.lock.screen._tick()
    assert app.find(QLineEdit, "pin").isEnabled()
    app.find(QLineEdit, "pin").setFocus()
    for _ in range(5):
        app.type("111111")
        app.key(K.Key_Return)
    assert message(app) == app.ctx.tr("lock.paused", n=60)            # the pause grew
    clock.advance(seconds=60)
    app.w.lock.screen._tick()
    app.find(QLineEdit, "pin").setFocus()
    app.type(PIN)
    app.key(K.Key_Return)
    assert app.screen() == "lock_setup" and app.store.settings.pairing() is not None   # where it was


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_set_pin_locks_at_start_in_both_languages(qtbot, app, lang):
    set_pin(app)
    w2 = show_window(qtbot, Navigator(type(app.ctx)(app.store, scene_clock(), language=lang,
                                                      transport_factory=lambda u, t: app.server)))
    try:
        assert w2.current_name() == "lock"
        texts = [lab.text() for lab in w2.current().findChildren(QLabel) if lab.isVisible()]
        assert app.ctx.tr("lock.title") != w2.ctx.tr("lock.title") or lang == "en"
        assert w2.ctx.tr("lock.title") in texts and w2.ctx.tr("lock.forgot") in texts
    finally:
        w2.close()
