"""Dwell selection for head mice and eye gaze (issue 14): resting the pointer on a target for the
chosen time (0.5–3 s) presses it. A ring over the target fills as the time passes; leaving the
target cancels; after a press the same target needs the pointer to leave and come back. Never on
by default. The clock is :meth:`DwellController.step` (the QTimer calls it; tests call it)."""

from __future__ import annotations

from typing import Any

from desktop.ui.qt import (
    QAbstractButton, QApplication, QColor, QEvent, QObject, QPainter, QPen, QRect, Qt, QTimer, QWidget, isValid,
)

STEP_MS = 40


class DwellRing(QWidget):
    """A 56 px ring in the middle of the target; its arc fills clockwise from the top."""

    SIZE, WIDTH = 56, 8

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.host = host
        self.setObjectName("dwellRing")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.fraction = 0.0
        self.high_contrast = False
        self.hide()

    def show_on(self, target: QWidget, fraction: float) -> None:
        self.fraction = fraction
        centre = target.mapTo(self.host, target.rect().center())
        s = self.SIZE
        self.setGeometry(QRect(centre.x() - s // 2, centre.y() - s // 2, s, s))
        self.show()
        self.raise_()
        self.update()

    def paintEvent(self, _event: Any) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w = self.WIDTH
        r = self.rect().adjusted(w // 2 + 1, w // 2 + 1, -w // 2 - 1, -w // 2 - 1)
        track, fill = (QColor("#FFFFFF"), QColor("#00E5FF")) if self.high_contrast else \
            (QColor("#FFFFFF"), QColor("#1A1A1A"))
        p.setPen(QPen(QColor("#000000" if not self.high_contrast else "#FFFFFF"), w + 4))
        p.drawEllipse(r)
        p.setPen(QPen(track, w))
        p.drawEllipse(r)
        pen = QPen(fill, w)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        p.setPen(pen)
        p.drawArc(r, 90 * 16, -round(360 * 16 * self.fraction))
        p.end()


class DwellController(QObject):
    def __init__(self, nav: Any) -> None:
        super().__init__(nav)
        self.nav = nav
        self.dwell_ms = 0
        self.target: QWidget | None = None
        self.elapsed = 0
        self.spent: QWidget | None = None      # pressed; waits for the pointer to leave
        self.manual_clock = False
        self.ring = DwellRing(nav.centralWidget())
        self.timer = QTimer(self)
        self.timer.setInterval(STEP_MS)
        self.timer.timeout.connect(lambda: self.step(STEP_MS))
        self.activations = 0
        QApplication.instance().installEventFilter(self)

    def configure(self, dwell_ms: int) -> None:
        self.dwell_ms = dwell_ms
        if not dwell_ms:
            self.cancel()

    @property
    def active(self) -> bool:
        return self.dwell_ms > 0

    @staticmethod
    def target_of(w: QWidget | None) -> QWidget | None:
        while w is not None and not isinstance(w, QAbstractButton):
            w = w.parentWidget()
        return w if w is not None and w.isEnabled() and w.isVisible() else None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if not self.active or not isinstance(obj, QWidget) or obj.window() is not self.nav:
            return False
        t = event.type()
        if t in (QEvent.Type.MouseMove, QEvent.Type.HoverMove):
            # an ignored move goes on to the parents: judge it by what is under the pointer there,
            # not by the parent itself (else each move would cancel the dwell it is part of)
            under = obj.childAt(event.position().toPoint())
            self.hover(self.target_of(under or obj))
        elif t == QEvent.Type.Enter:
            self.hover(self.target_of(obj))
        elif t == QEvent.Type.Leave and obj is self.target:
            self.hover(None)
        elif t == QEvent.Type.Leave and obj is self.spent:
            self.spent = None
        return False

    def hover(self, target: QWidget | None) -> None:
        """The pointer is now over ``target`` (None: over nothing that can be pressed)."""
        if target is not None and target is self.spent:
            return
        if target is not self.spent:
            self.spent = None
        if target is self.target:
            return
        self.cancel()
        if target is None:
            return
        self.target = target
        self.ring.high_contrast = bool(getattr(self.nav.ctx, "high_contrast", False))
        self.ring.show_on(target, 0.0)
        if not self.manual_clock:
            self.timer.start()

    def cancel(self) -> None:
        self.timer.stop()
        self.target = None
        self.elapsed = 0
        self.ring.hide()

    def step(self, ms: int) -> None:
        t = self.target
        if t is None or not isValid(t) or not t.isVisible() or not t.isEnabled():
            self.cancel()
            return
        self.elapsed += ms
        if self.elapsed < self.dwell_ms:
            self.ring.show_on(t, self.elapsed / self.dwell_ms)
            return
        self.cancel()
        self.spent = t
        self.activations += 1
        t.click()
