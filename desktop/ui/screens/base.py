"""The base of every screen: a scrolling centred body, a title, and rebuild-on-refresh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from desktop.ui.qt import QHBoxLayout, QPushButton, QSizePolicy, Qt, QVBoxLayout, QWidget
from desktop.ui.widgets import Page, WrapButton, label

if TYPE_CHECKING:
    from desktop.ui.context import UiContext
    from desktop.ui.main_window import Navigator


class Screen(QWidget):
    name = "screen"

    def __init__(self, ctx: "UiContext", nav: "Navigator") -> None:
        super().__init__()
        self.ctx = ctx
        self.nav = nav
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.page = Page()
        lay.addWidget(self.page)
        self.body = self.page.body
        self._first: QWidget | None = None

    def tr(self, key: str, **params: Any) -> str:
        return self.ctx.tr(key, **params)

    def title(self) -> str:
        return ""

    def refresh(self) -> None:
        """Rebuild the body from the store, in the current language."""
        self.page.clear()
        self._first = None
        self.build()
        self.body.addStretch(1)
        show_new_children(self.page.column)

    def build(self) -> None:
        raise NotImplementedError

    def first_focus(self) -> QWidget | None:
        return self._first

    def focus_named(self, name: str) -> bool:
        """Focus the control called ``name`` on the page as now built (old pages await deletion)."""
        for w in self.page.column.findChildren(QWidget, name):
            if not w.isHidden():
                w.setFocus(Qt.FocusReason.OtherFocusReason)
                return True
        return False

    # --- small builders ---------------------------------------------------------------------------
    def add(self, widget: QWidget) -> QWidget:
        self.body.addWidget(widget)
        return widget

    def text(self, text: str, name: str = "", role: str = "") -> Any:
        lab = label(text, name, role)
        self.body.addWidget(lab)
        return lab

    def button(self, text: str, on_click: Callable[[], None], primary: bool = False, big: bool = False,
               name: str = "", first: bool = False, layout: Any = None) -> QPushButton:
        b = WrapButton(text, min_height=64 if big else 44)
        if primary:
            b.setProperty("primary", True)
        if big:
            b.setProperty("big", True)
        if name:
            b.setObjectName(name)
        b.clicked.connect(lambda _checked=False: on_click())
        (layout or self.body).addWidget(b)
        if first or self._first is None:
            self._first = b if first or self._first is None else self._first
        return b

    def row(self) -> QHBoxLayout:
        r = QHBoxLayout()
        r.setSpacing(12)
        self.body.addLayout(r)
        return r

    def back_button(self, layout: Any = None) -> QPushButton:
        b = self.button(self.tr("nav.back_today"), self.nav.show_today, layout=layout, name="backToday")
        b.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        self._first = b
        return b


def show_new_children(root: QWidget) -> None:
    """Show freshly built widgets now (Qt would do it on the next event loop turn), so that focus
    can be given to them at once. Widgets hidden on purpose stay hidden."""
    for w in root.findChildren(QWidget):
        if not w.testAttribute(Qt.WidgetAttribute.WA_WState_ExplicitShowHide):
            w.show()
