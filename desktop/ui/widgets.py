"""Reusable widgets: large wrapping buttons, answer options, state chips, banners, scrolling pages,
and the focus ring. All sizes come from the stylesheet (:mod:`desktop.ui.theme`)."""

from __future__ import annotations

from typing import Any, Callable

from desktop.ui.qt import (
    QApplication, QEvent, QFrame, QHBoxLayout, QLabel, QObject, QPainter, QPen, QColor, QPushButton, QRect,
    QScrollArea, QSize, QSizePolicy, Qt, QTextLayout, QVBoxLayout, QWidget, isValid,
)

BODY_MAX_WIDTH = 760


def repolish(widget: QWidget) -> None:
    """Re-apply the stylesheet after a dynamic property changed (to the widget and its children)."""
    for w in [widget, *widget.findChildren(QWidget)]:
        w.style().unpolish(w)
        w.style().polish(w)
    widget.update()


def label(text: str = "", name: str = "", role: str = "", wrap: bool = True) -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(wrap)
    lab.setTextFormat(Qt.TextFormat.PlainText)
    if name:
        lab.setObjectName(name)
    if role:
        lab.setProperty("role", role)
    return lab


class WrapButton(QPushButton):
    """A push button whose text wraps, so long anchors and 200 % text are never clipped."""

    def __init__(self, text: str = "", parent: QWidget | None = None, number: str | None = None,
                 min_height: int = 44) -> None:
        super().__init__(parent)
        self._min_h = min_height
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 8, 14, 8)
        lay.setSpacing(14)
        self.num: QLabel | None = None
        if number is not None:
            self.num = QLabel(number)
            self.num.setObjectName("num")
            self.num.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.num.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            self.num.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            lay.addWidget(self.num, 0, Qt.AlignmentFlag.AlignVCenter)
        self.text_label = QLabel()
        self.text_label.setWordWrap(True)
        self.text_label.setTextFormat(Qt.TextFormat.PlainText)
        self.text_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        lay.addWidget(self.text_label, 1)
        if number is None:
            self.text_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.mark = QLabel()
        self.mark.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.mark.hide()
        lay.addWidget(self.mark, 0, Qt.AlignmentFlag.AlignVCenter)
        sp = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        sp.setHeightForWidth(True)
        self.setSizePolicy(sp)
        self.setText(text)

    def setEnabled(self, enabled: bool) -> None:  # noqa: N802 (greys the inner label too)
        super().setEnabled(enabled)
        if bool(self.property("off")) == enabled:
            self.setProperty("off", not enabled)
            repolish(self)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt naming)
        self.text_label.setText(text)
        self.setAccessibleName(text)
        self.updateGeometry()

    def text(self) -> str:
        return self.text_label.text()

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return max(self._min_h, self.layout().heightForWidth(width) + 6)

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = self.layout().sizeHint()
        width = min(max(hint.width(), 120), BODY_MAX_WIDTH)
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        m = self.layout().minimumSize()
        return QSize(max(44, m.width()), self._min_h)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        plain = not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and plain:
            if self.isEnabled():
                self.click()
            return
        if event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            event.ignore()   # arrows belong to the page (Next/Back on forms), not to button groups
            return
        super().keyPressEvent(event)


class OptionButton(WrapButton):
    """One answer option: number square, full anchor text, ✓ + word when selected (ux rules 1, 4, 9)."""

    def __init__(self, value: Any, number: str | None, text: str, selected_word: str,
                 on_pick: Callable[["OptionButton"], None], min_height: int = 64) -> None:
        super().__init__(text, number=number, min_height=min_height)
        self.value = value
        self.number = number
        self._selected_word = selected_word
        self.siblings: list[OptionButton] = []
        self.setProperty("option", True)
        self.setProperty("selected", False)
        self.setCheckable(False)
        self.clicked.connect(lambda: on_pick(self))
        self._name()

    def _name(self) -> None:
        text = self.text()
        name = f"{self.number}, {text}" if self.number is not None else text
        if self.property("selected"):
            name = f"{name} ({self._selected_word})"
        self.setAccessibleName(name)

    def set_selected(self, selected: bool, word: str | None = None) -> None:
        if word is not None:
            self._selected_word = word
        self.setProperty("selected", selected)
        self.mark.setText(f"✓ {self._selected_word}")
        self.mark.setVisible(selected)
        self._name()
        repolish(self)

    def is_selected(self) -> bool:
        return bool(self.property("selected"))

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.siblings:
            i = self.siblings.index(self)
            j = i - 1 if key == Qt.Key.Key_Up else i + 1
            if 0 <= j < len(self.siblings):
                self.siblings[j].setFocus(Qt.FocusReason.TabFocusReason)
            return
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            event.ignore()   # the form turns these into Back / Next
            return
        super().keyPressEvent(event)


class ElidedLabel(QLabel):
    """A label that shows at most ``max_lines`` wrapped lines and elides the rest with "…"; the full
    text stays in ``text()``, the tooltip and the accessible description (for the compact chrome)."""

    def __init__(self, text: str = "", name: str = "", role: str = "", max_lines: int = 1) -> None:
        super().__init__()
        self.max_lines = max_lines
        self.setTextFormat(Qt.TextFormat.PlainText)
        if name:
            self.setObjectName(name)
        if role:
            self.setProperty("role", role)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self.setToolTip(text)
        self.setAccessibleDescription(text)
        self.updateGeometry()
        self.update()

    def lines(self, width: int) -> list[str]:
        """The text as drawn at ``width``: wrapped lines, the last one elided if it does not fit."""
        text, fm = self.text(), self.fontMetrics()
        if width <= 0 or not text:
            return [text] if text else []
        layout = QTextLayout(text, self.font())
        layout.beginLayout()
        spans = []
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            spans.append((line.textStart(), line.textLength()))
        layout.endLayout()
        out = [text[a:a + n].rstrip() for a, n in spans[:self.max_lines]]
        if len(spans) > self.max_lines:
            rest = text[spans[self.max_lines - 1][0]:]
            out[-1] = fm.elidedText(rest, Qt.TextElideMode.ElideRight, width)
        return out

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        m = self.contentsMargins()
        n = max(1, len(self.lines(width - m.left() - m.right())))
        return n * self.fontMetrics().lineSpacing() + m.top() + m.bottom()

    def sizeHint(self) -> QSize:  # noqa: N802
        m = self.contentsMargins()
        return QSize(self.fontMetrics().horizontalAdvance(self.text()) + m.left() + m.right(),
                     self.fontMetrics().lineSpacing() + m.top() + m.bottom())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(40, self.fontMetrics().lineSpacing())

    def paintEvent(self, _event: Any) -> None:  # noqa: N802
        painter = QPainter(self)
        rect = self.contentsRect()
        step = self.fontMetrics().lineSpacing()
        for i, line in enumerate(self.lines(rect.width())):
            r = QRect(rect.left(), rect.top() + i * step, rect.width(), step)
            self.style().drawItemText(painter, r, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                                      self.palette(), self.isEnabled(), line, self.foregroundRole())


class Chip(QLabel):
    """A state chip: icon + word + colour, never colour alone (ux rule 11)."""

    def __init__(self, colour: str = "grey", text: str = "") -> None:
        super().__init__(text)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.set(colour, text)

    def set(self, colour: str, text: str) -> None:
        self.setText(text)
        self.setProperty("chip", colour)
        self.setAccessibleName(text)
        repolish(self)


class Banner(QFrame):
    """An in-page banner with a 44 px dismiss button (never a pop-up)."""

    def __init__(self, colour: str, text: str, dismiss_text: str, action_text: str = "",
                 on_action: Callable[[], None] | None = None, dismissible: bool = True) -> None:
        super().__init__()
        self.setProperty("banner", colour)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(16, 10, 10, 10)
        self.text = label(text)
        self.text.setObjectName("bannerText")
        lay.addWidget(self.text, 1)
        self.action: QPushButton | None = None
        if action_text and on_action:
            self.action = WrapButton(action_text)
            self.action.clicked.connect(on_action)
            lay.addWidget(self.action)
        self.dismiss: QPushButton | None = None
        if dismissible:
            self.dismiss = QPushButton(dismiss_text)
            self.dismiss.setAccessibleName(dismiss_text)
            self.dismiss.clicked.connect(self.close_banner)
            lay.addWidget(self.dismiss)

    def close_banner(self) -> None:
        self.hide()
        self.deleteLater()


class Page(QScrollArea):
    """A scrolling screen body: one centred column at most 760 px wide. The scroll area itself is
    not a focus stop, and the focused widget is always scrolled fully into view."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.verticalScrollBar().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        outer = QWidget()
        outer.setObjectName("page")
        row = QHBoxLayout(outer)
        row.setContentsMargins(24, 20, 24, 24)
        self.column = QWidget()
        self.column.setMaximumWidth(BODY_MAX_WIDTH)
        self.body = QVBoxLayout(self.column)
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setSpacing(14)
        row.addStretch(1)
        row.addWidget(self.column, 100)
        row.addStretch(1)
        self.setWidget(outer)
        app = QApplication.instance()
        if app is not None:
            app.focusChanged.connect(self._focus_changed)

    pass_keys = False   # forms: arrows and Page keys go to the form (Next/Back), not to scrolling

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if self.pass_keys:
            event.ignore()
            return
        super().keyPressEvent(event)

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if not isValid(self) or new is None or not isValid(new) or not self.isVisible():
            return
        if self.widget() is not None and self.widget().isAncestorOf(new):
            self.ensureWidgetVisible(new, 24, 24)

    def clear(self) -> None:
        while self.body.count():
            item = self.body.takeAt(0)
            w = item.widget()
            if w is not None:
                w.hide()
                w.deleteLater()
            elif item.layout() is not None:
                _clear_layout(item.layout())


def _clear_layout(layout: Any) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().hide()
            item.widget().deleteLater()
        elif item.layout() is not None:
            _clear_layout(item.layout())


class FocusRing(QWidget):
    """A 3 px ring with a 2 px white gap drawn around the focused control (ux rule 10).

    It lives on top of the window's central widget, ignores the mouse, follows the focus, and is
    clipped to the visible part of the scroll area so it never covers the header or status bar.
    """

    GAP, WIDTH = 2, 3

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.host = host
        self.target: QWidget | None = None
        self.clip = QRect()
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.colour = QColor("#1A1A1A")
        self.gap_colour = QColor("#FFFFFF")
        self._hooked: set[int] = set()
        QApplication.instance().focusChanged.connect(self._focus)
        self._watched: list[QWidget] = []
        host.installEventFilter(self)
        self.hide()

    def _focus(self, _old: QWidget | None, new: QWidget | None) -> None:
        if not isValid(self):
            return
        for w in self._watched:
            if isValid(w) and w is not self.host:
                w.removeEventFilter(self)
        self._watched = []
        self.target = new if new is not None and self.host.isAncestorOf(new) else None
        if self.target is not None:
            w = self.target
            while w is not None and w is not self.host:   # the target and every ancestor
                w.installEventFilter(self)
                self._watched.append(w)
                w = w.parentWidget()
            for area in self._scroll_areas(self.target):
                if id(area) not in self._hooked:
                    self._hooked.add(id(area))
                    area.verticalScrollBar().valueChanged.connect(self.follow)
        self.follow()

    @staticmethod
    def _scroll_areas(w: QWidget) -> list[QScrollArea]:
        out, p = [], w.parentWidget()
        while p is not None:
            if isinstance(p, QScrollArea):
                out.append(p)
            p = p.parentWidget()
        return out

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() in (QEvent.Type.Move, QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Hide):
            self.follow()
        return False

    def follow(self, *_: Any) -> None:
        if not isValid(self):
            return
        t = self.target
        if t is None or not isValid(t) or not t.isVisible():
            self.hide()
            return
        pad = self.GAP + self.WIDTH
        top_left = t.mapTo(self.host, t.rect().topLeft())
        ring = QRect(top_left.x() - pad, top_left.y() - pad, t.width() + 2 * pad, t.height() + 2 * pad)
        clip = self.host.rect()
        for area in self._scroll_areas(t):
            vp = area.viewport()
            clip = clip.intersected(QRect(vp.mapTo(self.host, vp.rect().topLeft()), vp.size()))
        self.clip = clip.translated(-ring.x(), -ring.y())
        self.setGeometry(ring)
        self.show()
        self.raise_()
        self.update()

    def paintEvent(self, _event: Any) -> None:  # noqa: N802
        p = QPainter(self)
        p.setClipRect(self.clip)
        white = QPen(self.gap_colour, self.GAP)
        p.setPen(white)
        p.drawRect(self.rect().adjusted(self.WIDTH + 1, self.WIDTH + 1, -self.WIDTH - 1, -self.WIDTH - 1))
        pen = QPen(self.colour, self.WIDTH)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        p.setPen(pen)
        half = self.WIDTH // 2 + 1
        p.drawRect(self.rect().adjusted(half, half, -half, -half))
        p.end()
