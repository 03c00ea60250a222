"""History: entries with their state, pinned "needs the site's attention", the optional ALSFRS-R
chart (only when the protocol's ``show_scores_to_participant`` is true), and one entry read-only."""

from __future__ import annotations

from datetime import datetime

from desktop.services.i18n import tr as t

from desktop.services.describe import describe
from desktop.services.fmt import long_date, receipt_line, short_date
from desktop.services.history import alsfrs_series, event_date, history
from desktop.services.today import protocol_of
from desktop.store import Entry
from desktop.ui.qt import (
    QFrame, QGridLayout, QHBoxLayout, QSizePolicy, QTableWidget, QTableWidgetItem, Qt, QVBoxLayout, QWidget,
)
from desktop.ui.screens.base import Screen
from desktop.ui.widgets import Chip, WrapButton, label

STATE_CHIPS = {"saved": ("blue", "state.saved"), "sent": ("blue", "state.sent"),
               "received": ("green", "state.received"), "needs_attention": ("red", "state.needs_attention")}
DOMAINS = ("total", "bulbar", "fine_motor", "gross_motor", "respiratory")


def local_stamp(iso: str, now: datetime) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def state_chip(entry: Entry, lang: str) -> Chip:
    colour, key = STATE_CHIPS[entry.state]
    return Chip(colour, t(key, lang))


def entry_title(entry: Entry, lang: str) -> str:
    if entry.type == "dose_confirmation":
        return t("kind.dose_n", lang, n=entry.envelope["payload"]["dose_number"])
    return t(f"kind.{entry.type}", lang)


def server_words(entry: Entry, lang: str) -> str:
    """The server's message in plain words: its rules from the catalogue, else its own text."""
    if entry.server_message == "receipt_mismatch":
        return t("attention.receipt_mismatch", lang)
    if entry.server_status == "conflict":
        return t("attention.conflict", lang)
    words = []
    for e in entry.server_errors:
        key = f"rule.{e.get('rule')}"
        text = t(key, lang)
        words.append(text if text != key else str(e.get("message", "")))
    return " ".join(dict.fromkeys(w for w in words if w)) or (entry.server_message or "")


class HistoryScreen(Screen):
    name = "history"
    live = True

    def __init__(self, ctx, nav) -> None:
        super().__init__(ctx, nav)
        self.as_table = False

    def title(self) -> str:
        return self.tr("history.title")

    def build(self) -> None:
        self.back_button()
        lang = self.ctx.lang
        if self.ctx.store.settings.get("revoked"):
            self.text(self.tr("history.revoked"))
            self.button(self.tr("export.button"), self.nav.screens["settings"].export_unsent, primary=True)
        attention, weeks = history(self.ctx.store)
        if attention:
            self.text("⚠ " + self.tr("history.attention_heading"), "stem")
            phone = (protocol_of(self.ctx.store).site.get("phone", "") if protocol_of(self.ctx.store) else "")
            for e in attention:
                box = self._row(e)
                box.layout().addWidget(label(server_words(e, lang)))
                box.layout().addWidget(label(self.tr("history.call_site", phone=phone)))
        protocol = protocol_of(self.ctx.store)
        if protocol is not None and protocol.show_scores_to_participant:
            self._chart()
        if not weeks and not attention:
            self.text(self.tr("history.empty"))
        for week in weeks:
            self.text(self.tr("history.week_of", day=short_date(week.start, lang)), "stem")
            for e in week.entries:
                self._row(e)

    def _row(self, e: Entry) -> QFrame:
        lang = self.ctx.lang
        frame = QFrame()
        frame.setObjectName("card")
        outer = QVBoxLayout(frame)
        outer.setContentsMargins(14, 10, 14, 10)
        top = QHBoxLayout()
        col = QVBoxLayout()
        title = label(f"{short_date(event_date(e), lang)} · {entry_title(e, lang)}", "stem")
        title.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        col.addWidget(title)
        col.addWidget(state_chip(e, lang), 0, Qt.AlignmentFlag.AlignLeft)
        if e.receipt and e.state == "received":
            col.addWidget(label(receipt_line(e.receipt, self.ctx.clock.now(), lang), role="small"))
        top.addLayout(col, 1)
        view = WrapButton(self.tr("history.view"))
        view.setAccessibleName(f"{self.tr('history.view')}: {entry_title(e, lang)}, {short_date(event_date(e), lang)}")
        view.clicked.connect(lambda: self.nav.show_entry(e.id))
        top.addWidget(view, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(top)
        self.add(frame)
        return frame

    def _chart(self) -> None:
        series = alsfrs_series(self.ctx.store)
        self.text(self.tr("history.chart_title"), "stem")
        if not series:
            self.text(self.tr("history.chart_empty"))
            return
        toggle = self.button(self.tr("history.show_chart") if self.as_table else self.tr("history.show_table"),
                             self._toggle_table, name="chartToggle")
        toggle.setAccessibleName(toggle.text())
        if self.as_table:
            self.add(self._table(series))
        else:
            self.add(self._chart_view(series))

    def _toggle_table(self) -> None:
        self.as_table = not self.as_table
        self.refresh()
        self.focus_named("chartToggle")

    def _table(self, series) -> QTableWidget:
        table = QTableWidget(len(series), 1 + len(DOMAINS))
        table.setAccessibleName(self.tr("history.chart_title"))
        table.setHorizontalHeaderLabels([self.tr("history.col_date")] + [self.tr(f"score.{d}") for d in DOMAINS])
        for r, (day, score) in enumerate(series):
            table.setItem(r, 0, QTableWidgetItem(short_date(day, self.ctx.lang)))
            for c, d in enumerate(DOMAINS, start=1):
                table.setItem(r, c, QTableWidgetItem(str(getattr(score, d))))
        table.verticalHeader().setVisible(False)
        table.resizeColumnsToContents()
        table.setMinimumHeight(min(400, 60 + 40 * len(series)))
        return table

    def _chart_view(self, series):
        from PySide6.QtCharts import QChart, QChartView, QDateTimeAxis, QLineSeries, QValueAxis
        from PySide6.QtCore import QDateTime
        from desktop.ui.qt import QPainter
        chart = QChart()
        chart.setTitle(self.tr("history.chart_title"))
        axis_x = QDateTimeAxis()
        axis_x.setFormat("MM-dd")
        axis_y = QValueAxis()
        axis_y.setRange(0, 48)
        axis_y.setLabelFormat("%d")
        chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        lines = []
        for d in DOMAINS:
            line = QLineSeries()
            lines.append(line)
            line.setName(self.tr(f"score.{d}"))
            line.setPointsVisible(True)
            line.setPointLabelsVisible(True)
            line.setPointLabelsFormat("@yPoint")
            for day, score in series:
                moment = QDateTime(datetime(day.year, day.month, day.day, 12))
                line.append(moment.toMSecsSinceEpoch(), getattr(score, d))
            chart.addSeries(line)
            line.attachAxis(axis_x)
            line.attachAxis(axis_y)
        first, last = series[0][0], series[-1][0]
        lo = QDateTime(datetime(first.year, first.month, first.day)).addDays(-3)
        hi = QDateTime(datetime(last.year, last.month, last.day)).addDays(4)
        axis_x.setRange(lo, hi)
        axis_x.setTickCount(min(8, max(3, (last - first).days // 7 + 2)))
        view = QChartView(chart)
        view.setRenderHint(QPainter.RenderHint.Antialiasing)
        view.setMinimumHeight(round(360 * self.ctx.scale))
        chart.legend().hide()
        view.setAccessibleName(self.tr("history.chart_title"))
        view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        view.viewport().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(view)
        col.addWidget(self._legend([(line.name(), line.color().name()) for line in lines]))
        return box

    def _legend(self, entries: list[tuple[str, str]]) -> QWidget:
        """The chart's legend as wrapping page labels (Qt's own legend elides names at large text)."""
        legend = QWidget()
        legend.setObjectName("chartLegend")
        grid = QGridLayout(legend)
        grid.setContentsMargins(8, 0, 8, 0)
        grid.setHorizontalSpacing(20)
        columns = 3 if self.ctx.scale >= 1.5 else len(entries)
        side = max(14, round(16 * self.ctx.scale))
        for i, (name, colour) in enumerate(entries):
            cell = QHBoxLayout()
            cell.setSpacing(8)
            swatch = QFrame()
            swatch.setFixedSize(side, side)
            swatch.setStyleSheet(f"background: {colour}; border: 2px solid #1A1A1A;")
            cell.addWidget(swatch)
            cell.addWidget(label(name), 1)
            grid.addLayout(cell, i // columns, i % columns)
        return legend


class EntryScreen(Screen):
    name = "entry"

    def __init__(self, ctx, nav) -> None:
        super().__init__(ctx, nav)
        self.entry_id = ""
        self.full_receipt = False

    def title(self) -> str:
        return self.tr("entry.title")

    def build(self) -> None:
        b = self.button(self.tr("nav.back_history"), self.nav.show_history, name="backHistory")
        b.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        self._first = b
        e = self.ctx.store.outbox.get(self.entry_id)
        if e is None:
            return
        lang = self.ctx.lang
        self.text(f"{entry_title(e, lang)} · {long_date(event_date(e), lang)}", "heading")
        self.add(state_chip(e, lang))
        entered = datetime.fromisoformat(e.envelope["entered_at"])
        self.text(self.tr("entry.entered_at", when=long_date(entered.date(), lang) + " " + entered.strftime("%H:%M")),
                  role="small")
        if e.state == "needs_attention":
            self.text(server_words(e, lang), role="error")
        if e.receipt and e.state == "received":
            self.text(receipt_line(e.receipt, self.ctx.clock.now(), lang))
            self.button(self.tr("entry.hide_receipt") if self.full_receipt else self.tr("entry.full_receipt"),
                        self._toggle, name="receiptToggle")
            if self.full_receipt:
                for key in ("server_seq", "received_at", "sha256"):
                    value = str(e.receipt.get(key, ""))
                    if key == "received_at":
                        value = f"{local_stamp(value, self.ctx.clock.now())} ({value})"
                    lab = self.text(f"{self.tr('receipt.' + key)}: {value}")
                    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                                | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.text(self.tr("entry.read_only"), role="small")
        env = e.envelope
        protocol = protocol_of(self.ctx.store)
        if e.type == "alsfrs_r" and not (protocol and protocol.show_scores_to_participant):
            # the answers stay with the site so that each questionnaire is answered afresh (ux rule 24)
            self.text(self.tr("entry.alsfrs_hidden"))
            return
        for question, answer in describe(e.type, env["payload"], env.get("respondent"), lang):
            self.text(question, role="small")
            self.text(answer)

    def _toggle(self) -> None:
        self.full_receipt = not self.full_receipt
        self.refresh()
        self.focus_named("receiptToggle")


