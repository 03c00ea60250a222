"""The main window: header, in-page banners, the current screen, the draft-wording footer and the
always-visible status bar with "Send now" (ux Part C, rules 22 and 25)."""

from __future__ import annotations

from typing import Any, Callable

from shared.instruments import load_instrument

from desktop import __version__
from desktop.services.entries import Submitted
from desktop.services.reminders import Reminder
from desktop.sync import SyncResult
from desktop.ui.context import UiContext
from desktop.ui.qt import (
    QApplication, QColor, QFrame, QGridLayout, QGuiApplication, QKeySequence, QMainWindow, QShortcut,
    QStackedWidget, QSystemTrayIcon, Qt, QTimer, QVBoxLayout, QWidget, announce, isValid,
)
from desktop.ui.theme import apply_theme, chinese_font_available
from desktop.ui.widgets import Banner, Chip, ElidedLabel, FocusRing, WrapButton, label, repolish

LANG_BUTTON = "中文 / English"


def place(grid: QGridLayout, cells: list[tuple[QWidget, int, int, int]], stretch_column: int) -> None:
    """Re-lay ``grid`` with (widget, row, column, column span) cells; one column takes the slack."""
    for widget, *_ in cells:
        grid.removeWidget(widget)
    for c in range(grid.columnCount()):
        grid.setColumnStretch(c, 0)
    for widget, row, col, span in cells:
        grid.addWidget(widget, row, col, 1, span)
    grid.setColumnStretch(stretch_column, 1)


class Header(QFrame):
    """Title, "paired as" chip, language button, Settings. One row whenever it fits; when the title is
    too long for one row at large text sizes, the title sits above the chip and the buttons stay on
    the right beside both, so the header never takes more than about two text lines."""

    def __init__(self, ctx: UiContext, on_settings: Callable[[], None]) -> None:
        super().__init__()
        self.ctx = ctx
        self.setObjectName("header")
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(20, 6, 20, 6)
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(2)
        self.title = label("", "title", wrap=True)
        self.chip = Chip("blue")
        self.lang = WrapButton(LANG_BUTTON)
        self.lang.setObjectName("language")
        self.lang.clicked.connect(self.toggle_language)
        self.settings = WrapButton()
        self.settings.setObjectName("settings")
        self.settings.clicked.connect(on_settings)
        self.stacked: bool | None = None
        self.arrange(False)

    def arrange(self, stacked: bool) -> None:
        if stacked == self.stacked:
            return
        self.stacked = stacked
        if stacked:   # title over chip on the left; language and settings on the right beside both
            place(self.grid, [(self.title, 0, 0, 1), (self.chip, 1, 0, 1), (self.lang, 0, 2, 1),
                              (self.settings, 0, 3, 1)], stretch_column=0)
            self.grid.removeWidget(self.lang)
            self.grid.removeWidget(self.settings)
            self.grid.addWidget(self.lang, 0, 2, 2, 1, Qt.AlignmentFlag.AlignVCenter)
            self.grid.addWidget(self.settings, 0, 3, 2, 1, Qt.AlignmentFlag.AlignVCenter)
            self.grid.setAlignment(self.chip, Qt.AlignmentFlag.AlignLeft)
        else:
            place(self.grid, [(self.title, 0, 0, 1), (self.chip, 0, 1, 1), (self.lang, 0, 3, 1),
                              (self.settings, 0, 4, 1)], stretch_column=2)

    def fit(self) -> None:
        """Choose one row if title, chip and buttons fit side by side at the current width."""
        def one_line(w: QWidget, text: str, extra: int) -> int:
            return w.fontMetrics().horizontalAdvance(text) + extra
        need = one_line(self.title, self.title.text(), 8)
        if not self.chip.isHidden():
            need += self.chip.sizeHint().width() + 12
        for b in (self.lang, self.settings):
            need += one_line(b.text_label, b.text(), 64) + 12
        m = self.grid.contentsMargins()
        self.arrange(need > self.width() - m.left() - m.right())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit()

    def toggle_language(self) -> None:
        self.ctx.set_language("en" if self.ctx.lang == "zh-CN" else "zh-CN")

    def retranslate(self, title: str) -> None:
        tr = self.ctx.tr
        self.title.setText(title)
        self.lang.setAccessibleName(tr("header.language_name"))
        self.settings.setText(tr("header.settings"))
        p = self.ctx.store.settings.pairing()
        if p is None:
            self.chip.hide()
        else:
            key = "header.paired_caregiver" if p.role == "caregiver" else "header.paired_participant"
            self.chip.set("blue", tr(key, subject=p.participant))
            self.chip.show()
        self.fit()


class StatusBar(QFrame):
    """The sync sentence, the draft-wording / version note under it, and "Send now", always visible
    (ux rule 22), on one row. The sentence keeps to two lines (one at large text sizes unless it is a
    warning) and the note to one; anything cut is elided with "…" and stays whole in the tooltip and accessible description."""

    def __init__(self, ctx: UiContext, on_attention: Callable[[], None]) -> None:
        super().__init__()
        self.ctx = ctx
        self.setObjectName("statusbar")
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(20, 4, 20, 4)
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(0)
        self.text = ElidedLabel("", "statusText", max_lines=2)
        self.note = ElidedLabel("", role="small")
        self.note.setObjectName("footer")
        self.attention = WrapButton()
        self.attention.setObjectName("attention")
        self.attention.clicked.connect(on_attention)
        self.send = WrapButton()
        self.send.setObjectName("sendNow")
        self.send.clicked.connect(lambda: ctx.sync_now())
        self.grid.addWidget(self.text, 0, 0)
        self.grid.addWidget(self.note, 1, 0)
        self.grid.addWidget(self.attention, 0, 1, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        self.grid.addWidget(self.send, 0, 2, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        self.grid.setColumnStretch(0, 1)

        self.compact = False

    def arrange(self, compact: bool) -> None:
        self.compact = compact
        self.refresh()

    def refresh(self) -> None:
        tr, st = self.ctx.tr, self.ctx.status()
        now = self.ctx.clock.now()
        if self.ctx.syncing:
            sentence = tr("status.sending")
        else:
            sentence = st.sentence(now, self.ctx.lang)
        icon = "⚠ " if (st.overdue or st.revoked) else ("✓✓ " if st.last_received and not st.waiting else "")
        warning = bool(st.overdue or st.revoked)
        self.text.max_lines = 1 if self.compact and not warning else 2   # a warning is never cut short
        self.text.setText(icon + sentence)
        self.text.setAccessibleName(icon + sentence)
        self.setProperty("overdue", warning)
        repolish(self)
        self.send.setText(tr("status.send_now"))
        self.send.setAccessibleName(tr("status.send_now"))
        self.send.setVisible(st.paired and not st.revoked)
        self.send.setEnabled(not self.ctx.syncing)
        self.attention.setVisible(st.attention > 0)
        self.attention.setText(tr("status.attention", n=st.attention))


class Navigator(QMainWindow):
    """The window and the one place that switches screens."""

    def __init__(self, ctx: UiContext) -> None:
        super().__init__()
        from desktop.ui.screens.access import AccessScreen
        from desktop.ui.screens.history import EntryScreen, HistoryScreen
        from desktop.ui.screens.pairing import PairedScreen, PairingScreen
        from desktop.ui.screens.safety import SafetyScreen
        from desktop.ui.screens.settings import SettingsScreen
        from desktop.ui.screens.today import TodayScreen

        self.ctx = ctx
        self.resize(1024, 820)
        self.setMinimumSize(640, 560)
        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        self.header = Header(ctx, self.show_settings)
        col.addWidget(self.header)
        self.banners = QWidget()
        self.banner_box = QVBoxLayout(self.banners)
        self.banner_box.setContentsMargins(16, 8, 16, 0)
        self.banner_box.setSpacing(8)
        col.addWidget(self.banners)
        self.stack = QStackedWidget()
        col.addWidget(self.stack, 1)
        self.status = StatusBar(ctx, self.show_history)
        self.footer = self.status.note
        col.addWidget(self.status)
        self.setCentralWidget(central)
        self.ring = FocusRing(central)

        self.screens: dict[str, Any] = {
            "pairing": PairingScreen(ctx, self), "paired": PairedScreen(ctx, self),
            "today": TodayScreen(ctx, self), "history": HistoryScreen(ctx, self),
            "entry": EntryScreen(ctx, self), "settings": SettingsScreen(ctx, self),
            "safety": SafetyScreen(ctx, self), "access": AccessScreen(ctx, self),
        }
        for screen in self.screens.values():
            self.stack.addWidget(screen)
        self.form: Any = None
        self._keyed_banners: dict[str, Banner] = {}

        ctx.language_changed.connect(self._language_changed)
        ctx.scale_changed.connect(lambda _s: self._apply_theme())
        ctx.contrast_changed.connect(self._apply_theme)
        self._hints = QGuiApplication.styleHints()        # kept alive: Qt owns it, PySide must not drop it
        try:
            self._hints.accessibility().contrastPreferenceChanged.connect(
                lambda _p: self.ctx.contrast == "system" and self._apply_theme())
        except AttributeError:  # Qt < 6.10
            pass
        ctx.data_changed.connect(self._data_changed)
        ctx.sync_started.connect(self.status.refresh)
        ctx.sync_finished.connect(self._sync_finished)
        ctx.reminder.connect(self._reminder)
        QShortcut(QKeySequence("Ctrl+="), self, activated=lambda: ctx.step_scale(+1))
        QShortcut(QKeySequence("Ctrl++"), self, activated=lambda: ctx.step_scale(+1))
        QShortcut(QKeySequence("Ctrl+-"), self, activated=lambda: ctx.step_scale(-1))
        self.status_timer = QTimer(self)
        self.status_timer.timeout.connect(self.status.refresh)
        self.status_timer.start(30_000)
        from desktop.ui.access import Access
        self.access = Access(self)          # switch scanning, dwell, read aloud (issue 14)
        self._apply_theme()
        self.show_start()
        from desktop.ui.lock import LockController
        self.lock = LockController(self)       # the optional app lock (desktop/ui/lock.py)

    # --- screens ----------------------------------------------------------------------------------
    def current(self) -> Any:
        return self.stack.currentWidget()

    def current_name(self) -> str:
        w = self.current()
        return getattr(w, "name", "")

    def _show(self, screen: Any, focus: bool = True) -> None:
        if getattr(self, "lock", None) is not None and self.lock.holds(screen):
            return                              # locked: the page behind the lock stays as it is
        if self.stack.indexOf(screen) < 0:
            self.stack.addWidget(screen)
        screen.refresh()
        self.stack.setCurrentWidget(screen)
        self._chrome()
        if focus:
            target = screen.first_focus()
            if target is not None and isValid(target):
                target.setFocus(Qt.FocusReason.OtherFocusReason)
        self._drop_old_form(screen)

    def _drop_old_form(self, showing: Any) -> None:
        if self.form is not None and self.form is not showing:
            self.stack.removeWidget(self.form)
            self.form.deleteLater()
            self.form = None

    def show_start(self) -> None:
        if self.ctx.store.settings.pairing() is None:
            self._show(self.screens["pairing"])
        else:
            self.show_today()
            if self.ctx.store.settings.get("revoked"):
                self._revoked_banner()

    def show_pairing(self) -> None:
        self._show(self.screens["pairing"])

    def show_paired(self) -> None:
        self._show(self.screens["paired"])

    def show_today(self) -> None:
        self._show(self.screens["today"])

    def show_history(self) -> None:
        self._show(self.screens["history"])

    def show_settings(self) -> None:
        self._show(self.screens["settings"])

    def show_access(self) -> None:
        self._show(self.screens["access"])

    def show_entry(self, entry_id: str) -> None:
        self.screens["entry"].entry_id = entry_id
        self._show(self.screens["entry"])

    def open_form(self, kind: str, context: dict | None = None, draft: Any = None) -> None:
        from desktop.ui.forms import FORMS
        if draft is None:
            draft = self.ctx.entries.start(kind, context or {})
        form = FORMS[kind](self.ctx, self, draft)
        self._drop_old_form(form)
        self.form = form
        self._show(form)

    def after_submit(self, submitted: Submitted) -> None:
        """Rule 20 then 23: the Saved banner, then the safety notice if due, else Today."""
        self.add_banner("green", "banner.saved", key="saved")
        announce(self, self.ctx.tr("banner.saved"))
        self.ctx.data_changed.emit()
        if submitted.safety_notice:
            self.screens["safety"].entry = submitted.entry
            self._show(self.screens["safety"])
            announce(self, self.screens["safety"].heading_text(), assertive=True)
        else:
            self.show_today()
        self.ctx.sync_now()

    # --- banners ----------------------------------------------------------------------------------
    def add_banner(self, colour: str, msg: str, params: dict | None = None, action: str = "",
                   on_action: Callable[[], None] | None = None, key: str | None = None,
                   dismissible: bool = True) -> Banner:
        """Show an in-page banner; ``msg`` and ``action`` are catalogue keys (retranslated live)."""
        if key and key in self._keyed_banners and isValid(self._keyed_banners[key]):
            self._keyed_banners[key].close_banner()
        tr = self.ctx.tr
        banner = Banner(colour, tr(msg, **(params or {})), tr("banner.dismiss"),
                        tr(action) if action else "", on_action, dismissible)
        banner.keys = (msg, params or {}, action)
        self.banner_box.addWidget(banner)
        banner.show()
        if key:
            self._keyed_banners[key] = banner
        return banner

    def banner(self, key: str) -> Banner | None:
        b = self._keyed_banners.get(key)
        return b if b is not None and isValid(b) and not b.isHidden() else None

    def _retranslate_banners(self) -> None:
        tr = self.ctx.tr
        for b in self.findChildren(Banner):
            msg, params, action = getattr(b, "keys", ("", {}, ""))
            if msg:
                b.text.setText(tr(msg, **params))
            if b.action is not None and action:
                b.action.setText(tr(action))
            if b.dismiss is not None:
                b.dismiss.setText(tr("banner.dismiss"))
                b.dismiss.setAccessibleName(tr("banner.dismiss"))

    def _reminder(self, reminder: Reminder) -> None:
        self.add_banner("blue", reminder.message_key, reminder.params, key=f"reminder:{reminder.name}")
        announce(self, self.ctx.tr(reminder.message_key, **reminder.params))

    def _revoked_banner(self) -> None:
        state = (self.ctx.store.settings.get("revoked") or {}).get("outcome", "revoked")
        self.add_banner("red", f"banner.{state}", action="export.button",
                        on_action=lambda: self.screens["settings"].export_unsent(), key="revoked",
                        dismissible=False)

    # --- events -----------------------------------------------------------------------------------
    def _chrome(self) -> None:
        screen = self.current()
        self.header.retranslate(screen.title() if screen is not None else "")
        self.setWindowTitle(f"{self.ctx.tr('app.name')} — {screen.title()}" if screen else "")
        draft = any(load_instrument(k).is_draft for k in ("alsfrs_r", "nasal_symptoms", "dose_confirmation"))
        self.footer.setText(self.ctx.tr("footer.draft_wording") if draft else
                            self.ctx.tr("footer.version", version=__version__))
        self.status.refresh()
        self._tab_chain()

    def _tab_chain(self) -> None:
        """Tab goes through the page first, then Send now, then the header (ux Part C)."""
        screen = self.current()
        if screen is None:
            return
        stops = [w for w in screen.findChildren(QWidget)
                 if w.focusPolicy() & Qt.FocusPolicy.TabFocus and w.isVisibleTo(screen)]
        tail = [w for w in (self.status.attention, self.status.send, self.header.lang, self.header.settings)
                if not w.isHidden()]
        chain = [*self._in_chain_order(screen, stops), *tail]
        for a, b in zip(chain, chain[1:]):
            QWidget.setTabOrder(a, b)

    @staticmethod
    def _in_chain_order(screen: QWidget, stops: list[QWidget]) -> list[QWidget]:
        ordered, seen = [], set()
        w = screen.nextInFocusChain()
        wanted = {id(s) for s in stops}
        while w is not None and w is not screen and id(w) not in seen:
            seen.add(id(w))
            if id(w) in wanted:
                ordered.append(w)
            w = w.nextInFocusChain()
        return ordered

    def _apply_theme(self) -> None:
        app = QApplication.instance()
        high = self.ctx.high_contrast
        apply_theme(app, self.ctx.lang, self.ctx.scale, high)
        self.ring.colour = QColor("#FFFF00" if high else "#1A1A1A")
        self.ring.gap_colour = QColor("#000000" if high else "#FFFFFF")
        self.status.arrange(self.ctx.scale >= 1.5)
        screen = self.current()
        if screen is not None:
            screen.refresh()
            self._chrome()

    def _language_changed(self, _lang: str) -> None:
        focus = QApplication.focusWidget()
        self._apply_theme()
        self._retranslate_banners()
        if focus is not None and isValid(focus) and focus.isVisible():
            focus.setFocus()

    def _data_changed(self) -> None:
        screen = self.current()
        if screen is not None and getattr(screen, "live", False):
            screen.refresh()
        self._chrome()

    def _sync_finished(self, result: SyncResult) -> None:
        self.status.refresh()
        if result.outcome in ("revoked", "token_invalid"):
            self._revoked_banner()
        elif result.attention:
            self.add_banner("red", "banner.attention", {"n": result.attention}, "nav.history",
                            self.show_history, key="attention")
        announce(self, self.status.text.text())

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.status_timer.stop()
        self.access.speaker.shutdown()      # the speech thread, if read aloud was ever used
        super().closeEvent(event)

    def install_tray(self) -> None:
        """Add a tray icon where the desktop has a system tray (offscreen and Xvfb have none)."""
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        self.tray = QSystemTrayIcon(self.windowIcon(), self)
        self.tray.show()
        self.ctx.notifier.tray = self.ctx.tray_message.emit
        self.ctx.tray_message.connect(
            lambda r: self.tray.showMessage(self.ctx.tr("app.name"), self.ctx.tr(r.message_key, **r.params)))

    def startup_checks(self) -> None:
        """Run once the window shows: fonts, token storage, reminders missed while closed, a sync."""
        if self.ctx.lang == "zh-CN" and not chinese_font_available():
            self.add_banner("amber", "banner.font_missing", key="font")
        self.ctx.check_reminders()
        self.ctx.sync_now(only_if_due=True)
