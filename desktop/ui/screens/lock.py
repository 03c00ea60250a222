"""The lock screen and the app-lock settings page (PS-06, ux: large targets, keyboard, both languages).

Both are ordinary :class:`Screen` pages in the navigator's stack, so keyboard focus, the focus ring
and switch scanning reach them like any other page. The lock screen covers whatever was open (a form
keeps its draft and its page) and gives it back unchanged after the right PIN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from desktop.services.applock import DEFAULT_IDLE_MIN, IDLE_CHOICES_MIN, MAX_DIGITS, AppLock, BadPin, normalize_pin
from desktop.ui.qt import QButtonGroup, QGridLayout, QLineEdit, QRadioButton, Qt, QTimer, announce
from desktop.ui.screens.base import Screen
from desktop.ui.widgets import WrapButton

if TYPE_CHECKING:
    from desktop.ui.lock import LockController

KEYPAD = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "erase", "0", "unlock")


def pin_field(name: str, accessible: str) -> QLineEdit:
    field = QLineEdit()
    field.setObjectName(name)
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setMaxLength(MAX_DIGITS)
    field.setAccessibleName(accessible)
    field.setMinimumHeight(56)
    field.setMaximumWidth(360)
    field.setInputMethodHints(Qt.InputMethodHint.ImhDigitsOnly | Qt.InputMethodHint.ImhSensitiveData)
    return field


class LockScreen(Screen):
    name = "lock"

    def __init__(self, ctx, nav, controller: "LockController") -> None:
        super().__init__(ctx, nav)
        self.controller = controller
        self.message = ""
        self.reset_message = ""
        self.tick = QTimer(self)
        self.tick.setInterval(1000)
        self.tick.timeout.connect(self._tick)

    @property
    def lock(self) -> AppLock:
        return self.controller.service

    def title(self) -> str:
        return self.tr("lock.title")

    def build(self) -> None:
        self.text(self.tr("lock.title"), "heading")
        self.text(self.tr("lock.explain"))
        self.field = pin_field("pin", self.tr("lock.pin_field"))
        self.field.returnPressed.connect(self.unlock)
        self.field.textChanged.connect(self._typed)
        self.text(self.tr("lock.pin_field"), "stem").setBuddy(self.field)
        self.add(self.field)
        self._first = self.field
        grid = QGridLayout()
        grid.setSpacing(12)
        self.keys: dict[str, WrapButton] = {}
        for i, key in enumerate(KEYPAD):
            text = self.tr(f"lock.{key}") if not key.isdigit() else key
            b = WrapButton(text, min_height=72)
            b.setObjectName(f"key_{key}")
            b.setProperty("big", True)
            if key == "unlock":
                b.setProperty("primary", True)
            b.setMinimumWidth(120)
            b.clicked.connect(lambda _c=False, k=key: self.press(k))
            grid.addWidget(b, i // 3, i % 3)
            self.keys[key] = b
        self.body.addLayout(grid)
        self.status = self.text(self.message, "pinMessage", role="error" if self.message else "")
        self.status.setVisible(bool(self.message))
        # the site's reset
        self.text(self.tr("lock.forgot"), role="small")
        self.code = QLineEdit()
        self.code.setObjectName("resetCode")
        self.code.setAccessibleName(self.tr("lock.reset_code"))
        self.code.setMinimumHeight(48)
        self.code.setMaximumWidth(360)
        self.text(self.tr("lock.reset_code")).setBuddy(self.code)
        self.add(self.code)
        self.reset_button = self.button(self.tr("lock.reset"), self.reset, name="resetPin")
        if self.reset_message:
            self.text(self.reset_message, "resetMessage", role="error")
        self._apply_pause()

    def press(self, key: str) -> None:
        if key == "unlock":
            self.unlock()
        elif key == "erase":
            self.field.backspace()
        elif len(self.field.text()) < MAX_DIGITS:
            self.field.insert(key)
        self.field.setFocus() if key in ("erase", "unlock") else None

    def _typed(self, text: str) -> None:
        self.field.setAccessibleDescription(self.tr("lock.digits_typed", n=len(text)))

    def unlock(self) -> None:
        attempt = self.lock.try_pin(self.field.text())
        self.field.clear()
        if attempt.ok:
            self.message = ""
            self.controller.unlock()
            return
        if attempt.paused_s:
            self.message = self.tr("lock.paused", n=attempt.paused_s)
        else:
            self.message = self.tr("lock.wrong", n=attempt.tries_left)
        self.refresh()
        self.field.setFocus()
        announce(self, self.message, assertive=True)

    def _apply_pause(self) -> None:
        paused = self.lock.paused_for()
        for b in self.keys.values():
            b.setEnabled(not paused)
        self.field.setEnabled(not paused)
        if paused:
            self.status.setText(self.tr("lock.paused", n=paused))
            self.status.setVisible(True)
            if not self.tick.isActive():
                self.tick.start()
        else:
            self.tick.stop()

    def _tick(self) -> None:
        if not self.lock.paused_for():
            self.message = ""
            self.refresh()
            self.field.setFocus()
        else:
            self._apply_pause()

    def reset(self) -> None:
        self.controller.reset_with_code(self.code.text())

    def reset_failed(self, message: str) -> None:
        self.reset_message = message
        self.refresh()
        self.code.setFocus()
        announce(self, message, assertive=True)


class LockSetupScreen(Screen):
    """Settings → App lock: choose (twice) or remove the PIN, and the idle time."""

    name = "lock_setup"

    def __init__(self, ctx, nav, controller: "LockController") -> None:
        super().__init__(ctx, nav)
        self.controller = controller
        self.message = ""
        self.error = ""

    def title(self) -> str:
        return self.tr("lock.settings.title")

    def build(self) -> None:
        self.back_button()
        lock = self.controller.service
        self.text(self.tr("lock.settings.title"), "heading")
        if self.message:
            self.text(self.message, "lockSaved")
        self.text(self.tr("lock.settings.on", n=lock.idle_minutes) if lock.enabled
                  else self.tr("lock.settings.off"))
        self.first = pin_field("newPin", self.tr("lock.choose"))
        self.text(self.tr("lock.choose"), "stem").setBuddy(self.first)
        self.add(self.first)
        self.again = pin_field("newPinAgain", self.tr("lock.confirm"))
        self.text(self.tr("lock.confirm"), "stem").setBuddy(self.again)
        self.add(self.again)
        self.again.returnPressed.connect(self.save)
        self.idle = QButtonGroup(self)
        current = lock.idle_minutes if lock.enabled else DEFAULT_IDLE_MIN
        for minutes in IDLE_CHOICES_MIN:
            rb = QRadioButton(self.tr("lock.settings.idle", n=minutes))
            rb.setObjectName(f"idle_{minutes}")
            rb.setChecked(minutes == current)
            rb.setProperty("minutes", minutes)
            self.idle.addButton(rb)
            self.add(rb)
        if self.error:
            self.text(self.error, "pinError", role="error")
        self.button(self.tr("lock.settings.set"), self.save, primary=True, name="savePin")
        if lock.enabled:
            self.button(self.tr("lock.settings.remove"), self.remove, name="removePin")
        self._first = self.first

    def _minutes(self) -> int:
        b: Any = self.idle.checkedButton()
        return int(b.property("minutes")) if b is not None else DEFAULT_IDLE_MIN

    def save(self) -> None:
        try:
            pin = normalize_pin(self.first.text())
        except BadPin:
            return self._fail("lock.bad_pin")
        if normalize_pin_or_none(self.again.text()) != pin:
            return self._fail("lock.mismatch")
        self.controller.service.set_pin(pin, self._minutes())
        self.error, self.message = "", self.tr("lock.saved")
        self.refresh()
        announce(self, self.message)

    def remove(self) -> None:
        self.controller.service.remove()
        self.error, self.message = "", self.tr("lock.removed")
        self.refresh()
        announce(self, self.message)

    def _fail(self, key: str) -> None:
        self.error, self.message = self.tr(key), ""
        self.refresh()
        self.first.setFocus()
        announce(self, self.error, assertive=True)


def normalize_pin_or_none(text: str) -> str | None:
    try:
        return normalize_pin(text)
    except BadPin:
        return None
