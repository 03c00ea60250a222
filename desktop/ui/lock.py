"""The app lock in the window: idle watching, covering the current page, giving it back (PS-06).

:class:`LockController` is made by the navigator. It watches keyboard, mouse and touch input of the
whole application; after the chosen idle minutes without any, it puts the lock screen in front of
whatever is open — a form in the middle of a question stays exactly as it is, its draft saved, and
comes back after the right PIN. There is never a time limit inside a form: the lock only covers it.
While locked the header and the status bar are hidden, and any attempt to show another page is
ignored (:meth:`LockController.holds`), so an open form is never dropped. It also locks at start when a PIN is set.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from desktop.services.applock import AppLock
from desktop.ui.ops import BackgroundOp
from desktop.ui.qt import QApplication, QEvent, QObject, Qt, QTimer, isValid
from desktop.ui.screens.lock import LockScreen, LockSetupScreen

_INPUT = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.Wheel,
          QEvent.Type.TouchBegin, QEvent.Type.InputMethod}
CHECK_MS = 5000


class LockController(QObject):
    def __init__(self, nav: Any, monotonic: Callable[[], float] = time.monotonic,
                 check_ms: int = CHECK_MS) -> None:
        super().__init__(nav)
        self.nav = nav
        self.ctx = nav.ctx
        self.monotonic = monotonic
        self.service = AppLock(self.ctx.store, self.ctx.clock)
        self.screen = LockScreen(self.ctx, nav, self)
        self.setup = LockSetupScreen(self.ctx, nav, self)
        nav.screens["lock"] = self.screen
        nav.screens["lock_setup"] = self.setup
        nav.stack.addWidget(self.screen)
        nav.stack.addWidget(self.setup)
        self.behind: Any = None
        self.locked = False
        self.last_input = monotonic()
        QApplication.instance().installEventFilter(self)
        nav.stack.currentChanged.connect(self._page_changed)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check_idle)
        self.timer.start(check_ms)
        if self.service.enabled:
            self.lock()

    # --- idle -------------------------------------------------------------------------------------
    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt naming)
        kind = event.type()
        if kind in _INPUT:
            self.last_input = self.monotonic()
        elif kind == QEvent.Type.Close and obj is self.nav:
            self.stop()
        return False

    def stop(self) -> None:
        """The window closes: no timer may touch the store after it (as the status timer)."""
        self.timer.stop()
        self.screen.tick.stop()

    def idle_seconds(self) -> float:
        return self.monotonic() - self.last_input

    def check_idle(self) -> None:
        if self.service.enabled and not self.locked and self.idle_seconds() >= self.service.idle_minutes * 60:
            self.lock()

    # --- lock and unlock --------------------------------------------------------------------------
    def lock(self) -> None:
        if self.locked:
            return
        current = self.nav.stack.currentWidget()
        self.behind = current if current is not self.screen else None
        self.locked = True
        for part in (self.nav.header, self.nav.status, self.nav.banners):
            part.setVisible(False)
        self.screen.message = ""
        self.screen.reset_message = ""
        self.screen.refresh()
        self.nav.stack.setCurrentWidget(self.screen)
        self.nav.setWindowTitle(self.ctx.tr("app.name"))
        self.screen.field.setFocus(Qt.FocusReason.OtherFocusReason)

    def unlock(self) -> None:
        self.locked = False
        self.last_input = self.monotonic()
        for part in (self.nav.header, self.nav.status, self.nav.banners):
            part.setVisible(True)
        behind = self.behind
        self.behind = None
        if behind is not None and isValid(behind) and self.nav.stack.indexOf(behind) >= 0:
            self.nav.stack.setCurrentWidget(behind)      # the same page, the same question, as it was
            self.nav._chrome()
            target = behind.first_focus() if hasattr(behind, "first_focus") else None
            if target is not None and isValid(target):
                target.setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            self.nav.show_start()

    def holds(self, screen: Any) -> bool:
        """While locked, no other page is shown (a reminder, a finished sync): the person comes back
        to what they were doing, and an open form is never dropped."""
        return self.locked and screen is not self.screen

    def _page_changed(self, _index: int) -> None:
        if self.locked and self.nav.stack.currentWidget() is not self.screen:
            self.nav.stack.setCurrentWidget(self.screen)

    # --- settings and the site's reset --------------------------------------------------------------
    def show_setup(self) -> None:
        self.setup.message = self.setup.error = ""
        self.nav._show(self.setup)

    def reset_with_code(self, code: str) -> None:
        from desktop.services.applock import reset_by_pairing
        from desktop.sync.pairing import StillWaiting
        from desktop.sync.transport import TransportError

        engine = self.ctx.engine()

        def work() -> Any:
            try:
                return reset_by_pairing(self.ctx.store, self.ctx.tokens, self.ctx.clock, code,
                                        sync=engine.run if engine is not None else None)
            except StillWaiting as exc:
                return ("waiting", exc.waiting)
            except (TransportError, ValueError) as exc:
                return ("failed", str(exc))

        def done(result: Any) -> None:
            if isinstance(result, tuple):
                kind, value = result
                message = (self.ctx.tr("lock.reset_waiting", n=value) if kind == "waiting"
                           else self.ctx.tr("lock.reset_failed", reason=value))
                self.screen.reset_failed(message)
                return
            self.ctx.forget_engine()
            self.ctx.data_changed.emit()
            self.behind = None
            self.unlock()

        BackgroundOp(work, self).success(done).failure(lambda exc: self.screen.reset_failed(
            self.ctx.tr("lock.reset_failed", reason=str(exc)))).run()
