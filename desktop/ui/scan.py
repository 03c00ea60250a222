"""Switch scanning on every screen (issue 14): the Qt side of :mod:`desktop.services.scan_order`.

It reads the current screen's focus chain (then banners, the status bar and the header), groups
the targets (the answers of a question, a radio group, a row of buttons, the status bar, the
header), and moves a thick highlight over them: by itself every ``interval`` ms with one switch
(``mode="one"``), or one step per press of the "move" switch with two (``mode="two"``). The select
switch presses the highlighted target (``click()``), enters a group, or leaves one. The
highlighted target also gets the keyboard focus, so the page scrolls to it and a screen reader
reads it. Nothing is selected by a tick, the scan loops without end and there is no time-out.
Tests step the clock by calling :meth:`ScanController.tick`.
"""

from __future__ import annotations

from typing import Any, Callable

from desktop.services.scan_order import GROUP, ITEM, LEAVE, ScanModel, same_value, start_value
from desktop.ui.qt import (
    QAbstractButton, QApplication, QColor, QEvent, QHBoxLayout, QLabel, QLineEdit, QObject, QPainter,
    QPen, QPlainTextEdit, QRect, QRadioButton, QScrollArea, Qt, QTimer, QWidget, isValid,
)
from desktop.ui.widgets import OptionButton

PLAIN = Qt.KeyboardModifier.NoModifier | Qt.KeyboardModifier.KeypadModifier


class ScanHighlight(QWidget):
    """A thick two-colour frame (6 px outer, 3 px inner) around the highlighted target or group.
    Black and yellow on the light theme, cyan and white in high contrast: visible on every ground."""

    OUTER, INNER, PAD = 6, 3, 7

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.host = host
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setObjectName("scanHighlight")
        self.targets: list[QWidget] = []
        self.kind = ITEM
        self.high_contrast = False
        self.hide()

    def colours(self) -> tuple[QColor, QColor]:
        return (QColor("#00E5FF"), QColor("#FFFFFF")) if self.high_contrast else \
            (QColor("#1A1A1A"), QColor("#FFD600"))

    def show_on(self, targets: list[QWidget], kind: str) -> None:
        self.targets, self.kind = targets, kind
        self.follow()

    def follow(self, *_: Any) -> None:
        if not isValid(self):
            return
        live = [t for t in self.targets if isValid(t) and t.isVisible()]
        if not live:
            self.hide()
            return
        rect = QRect()
        for t in live:
            rect = rect.united(QRect(t.mapTo(self.host, t.rect().topLeft()), t.size()))
        pad = self.PAD + self.OUTER + (4 if self.kind != ITEM else 0)
        self.setGeometry(rect.adjusted(-pad, -pad, pad, pad).intersected(self.host.rect()))
        self.show()
        self.raise_()
        self.update()

    def paintEvent(self, _event: Any) -> None:  # noqa: N802
        outer, inner = self.colours()
        p = QPainter(self)
        r = self.rect()
        pen = QPen(outer, self.OUTER)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        if self.kind == LEAVE:
            pen.setStyle(Qt.PenStyle.DashLine)
        p.setPen(pen)
        h = self.OUTER // 2
        p.drawRect(r.adjusted(h, h, -h - 1, -h - 1))
        p.setPen(QPen(inner, self.INNER))
        d = self.OUTER + self.INNER // 2
        p.drawRect(r.adjusted(d, d, -d - 1, -d - 1))
        p.end()


class ScanController(QObject):
    """Scanning for one :class:`desktop.ui.main_window.Navigator`."""

    def __init__(self, nav: Any, speak: Callable[[str], None] | None = None) -> None:
        super().__init__(nav)
        self.nav = nav
        self.speak = speak
        self.mode = "off"
        self.select_keys: set[int] = set()
        self.move_keys: set[int] = set()
        self.manual_clock = False          # tests: never start the timer, call tick() instead
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.model: ScanModel | None = None
        self.widgets: list[QWidget] = []
        self.built_for: Any = None
        self.stale = True
        self.capture: Callable[[int], None] | None = None     # "choose the switch key"
        self.presses = 0                   # counted for the benchmark
        self.ticks = 0
        self.ring = ScanHighlight(nav.centralWidget())
        QApplication.instance().installEventFilter(self)
        nav.stack.currentChanged.connect(self._screen_changed)
        nav.centralWidget().installEventFilter(self)
        self._hooked: set[int] = set()

    # --- configuration ----------------------------------------------------------------------------
    def configure(self, mode: str, interval_ms: int, select_keys: list[int], move_keys: list[int]) -> None:
        self.mode = mode
        self.timer.setInterval(interval_ms)
        self.select_keys = set(select_keys)
        self.move_keys = set(move_keys) if mode == "two" else set()
        if mode == "off":
            self.timer.stop()
            self.ring.hide()
            self.model = None
            return
        self.stale = True
        self.refresh()
        self._restart_timer()

    @property
    def active(self) -> bool:
        return self.mode in ("one", "two")

    def _restart_timer(self) -> None:
        if self.mode == "one" and not self.manual_clock:
            self.timer.start()
        else:
            self.timer.stop()

    # --- the targets of the page ------------------------------------------------------------------
    def stops(self) -> list[tuple[QWidget, str | None]]:
        nav = self.nav
        screen = nav.current()
        if screen is None:
            return []
        found = [w for w in screen.findChildren(QWidget) if self._is_stop(w, screen)]
        wanted = {id(w) for w in found}
        ordered, seen = [], set()
        w = screen.nextInFocusChain()
        while w is not None and w is not screen and id(w) not in seen:
            seen.add(id(w))
            if id(w) in wanted:
                ordered.append(w)
            w = w.nextInFocusChain()
        ordered += [w for w in found if w not in ordered]
        rows = self._rows(screen, wanted)
        out: list[tuple[QWidget, str | None]] = [(w, self._group(w, rows)) for w in ordered]
        for area, group in ((nav.banners, "banners"), (nav.status, "status"), (nav.header, "header")):
            for b in area.findChildren(QAbstractButton):
                if self._is_stop(b, area):
                    out.append((b, group))
        return out

    @staticmethod
    def _is_stop(w: QWidget, root: QWidget) -> bool:
        if isinstance(w, QLabel) or not (w.focusPolicy() & Qt.FocusPolicy.TabFocus):
            return False
        return w.isVisibleTo(root) and not w.isHidden() and w.isEnabled()

    @staticmethod
    def _rows(screen: QWidget, wanted: set[int]) -> dict[int, str]:
        rows: dict[int, str] = {}
        for lay in screen.findChildren(QHBoxLayout):
            members = [lay.itemAt(i).widget() for i in range(lay.count())]
            members = [m for m in members if m is not None and id(m) in wanted]
            if len(members) > 1:
                for m in members:
                    rows[id(m)] = f"row{id(lay)}"
        return rows

    @staticmethod
    def _group(w: QWidget, rows: dict[int, str]) -> str | None:
        explicit = w.property("scanGroup")
        if explicit:
            return str(explicit)
        if isinstance(w, OptionButton) and w.siblings:
            return f"options{id(w.siblings)}"
        if isinstance(w, QRadioButton) and w.group() is not None:
            return f"radio{id(w.group())}"
        return rows.get(id(w))

    # --- building the model -----------------------------------------------------------------------
    def _start_widget(self, widgets: list[QWidget]) -> QWidget | None:
        focus = QApplication.focusWidget()
        start = focus if focus in widgets else None
        if start is None:
            first = self.nav.current().first_focus() if self.nav.current() is not None else None
            start = first if first in widgets else (widgets[0] if widgets else None)
        if isinstance(start, OptionButton) and not any(o.is_selected() for o in start.siblings):
            start = self._previous_answer(start) or start
        return start

    def _previous_answer(self, option: OptionButton) -> QWidget | None:
        """On an unanswered question: the answer given on the previous page, if it is one of these."""
        form = self.nav.current()
        if not hasattr(form, "steps") or not hasattr(form, "step_id"):
            return None
        try:
            steps = form.steps()
            index = next(i for i, s in enumerate(steps) if s.id == form.step_id)
            earlier = [s.get() for s in steps[:index] if s.kind == "choice"]
        except Exception:   # noqa: BLE001 — a form without steps simply starts at the top
            return None
        values = [o.value for o in option.siblings]
        value = start_value(earlier, values)
        return next((o for o in option.siblings if value is not None and same_value(o.value, value)), None)

    def refresh(self) -> None:
        """Rebuild the targets from the page as it is now (after a screen change or a press)."""
        if not self.active:
            return
        pairs = self.stops()
        self.widgets = [w for w, _ in pairs]
        start = self._start_widget(self.widgets)
        self.model = ScanModel.from_stops([(i, g) for i, (_, g) in enumerate(pairs)],
                                          self.widgets.index(start) if start in self.widgets else None)
        self.built_for = self.nav.current()
        self.stale = False
        self._hook_scroll()
        self._show(speak=False)

    def _hook_scroll(self) -> None:
        screen = self.nav.current()
        for area in screen.findChildren(QScrollArea) if screen is not None else []:
            if id(area) not in self._hooked:
                self._hooked.add(id(area))
                area.verticalScrollBar().valueChanged.connect(self.ring.follow)

    def _fresh(self) -> None:
        if (self.stale or self.model is None or self.built_for is not self.nav.current()
                or any(not isValid(w) or not w.isVisible() or not w.isEnabled() for w in self.widgets)):
            self.refresh()

    def _screen_changed(self, _index: int) -> None:
        self.stale = True
        if self.active:
            QTimer.singleShot(0, self._fresh)

    # --- what is highlighted ----------------------------------------------------------------------
    def highlighted(self) -> list[QWidget]:
        h = self.model.current() if self.model is not None else None
        return [self.widgets[k] for k in h.keys] if h is not None else []

    def highlight_kind(self) -> str:
        h = self.model.current() if self.model is not None else None
        return h.kind if h is not None else ""

    def _show(self, speak: bool = True) -> None:
        targets, kind = self.highlighted(), self.highlight_kind()
        if not targets:
            self.ring.hide()
            return
        if kind == ITEM:
            targets[0].setFocus(Qt.FocusReason.TabFocusReason)
        else:
            for area in _scroll_areas(targets[0]):
                area.ensureWidgetVisible(targets[0], 24, 24)
        self.ring.high_contrast = bool(getattr(self.nav.ctx, "high_contrast", False))
        self.ring.show_on(targets, kind)
        if speak and self.speak is not None:
            self.speak(self.describe(targets, kind))

    def describe(self, targets: list[QWidget], kind: str) -> str:
        names = [t.accessibleName() or getattr(t, "text", lambda: "")() for t in targets]
        if kind == ITEM:
            return names[0]
        if kind == LEAVE:
            return self.nav.ctx.tr("scan.leave_group")
        return self.nav.ctx.tr("scan.group", first=names[0], n=len(names) - 1)

    # --- the switches -----------------------------------------------------------------------------
    def tick(self) -> None:
        """One step of the auto-scan clock (the QTimer calls it; tests call it directly)."""
        if self.mode != "one":
            return
        self._fresh()
        if self.model is not None and self.model.advance() is not None:
            self.ticks += 1
            self._show()

    def move(self) -> None:
        self._fresh()
        if self.model is not None and self.model.advance() is not None:
            self._show()

    def select(self) -> None:
        self._fresh()
        if self.model is None:
            return
        action = self.model.select()
        if action is None:
            return
        if action.kind == "activate":
            widget = self.widgets[action.key]
            self.stale = True
            activate(widget)
            if isValid(self) and self.active:
                self.refresh()
        else:
            self._show()
        self._restart_timer()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        t = event.type()
        if t in (QEvent.Type.Resize, QEvent.Type.LayoutRequest) and obj is self.nav.centralWidget():
            self.ring.follow()
            return False
        if t not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self.nav:
            return False
        key = event.key()
        if self.capture is not None:
            if t == QEvent.Type.KeyPress and not event.isAutoRepeat() and key not in _MODIFIER_KEYS:
                capture, self.capture = self.capture, None
                capture(int(key))
            return True
        if not self.active or (event.modifiers() & ~PLAIN):
            return False
        if key not in self.select_keys and key not in self.move_keys:
            return False
        if t == QEvent.Type.KeyPress and not event.isAutoRepeat():
            self.presses += 1
            if key in self.move_keys:
                self.move()
            else:
                self.select()
        return True


_MODIFIER_KEYS = {Qt.Key.Key_Shift, Qt.Key.Key_Control, Qt.Key.Key_Alt, Qt.Key.Key_Meta, Qt.Key.Key_AltGr}


def _scroll_areas(w: QWidget) -> list[QScrollArea]:
    out, p = [], w.parentWidget()
    while p is not None:
        if isinstance(p, QScrollArea):
            out.append(p)
        p = p.parentWidget()
    return out


def activate(widget: QWidget) -> None:
    """What selecting a target does: press a button, choose a radio button, put the cursor in a field."""
    if isinstance(widget, QRadioButton):
        widget.setFocus(Qt.FocusReason.OtherFocusReason)
        widget.click()
    elif isinstance(widget, QAbstractButton):
        widget.setFocus(Qt.FocusReason.OtherFocusReason)
        widget.click()
    elif isinstance(widget, (QLineEdit, QPlainTextEdit)):
        widget.setFocus(Qt.FocusReason.OtherFocusReason)
    else:
        widget.setFocus(Qt.FocusReason.OtherFocusReason)
