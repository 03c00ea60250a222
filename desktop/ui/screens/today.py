"""Today: what is due, open, late or done, computed offline; unfinished drafts first (ux Part C)."""

from __future__ import annotations

from desktop.services.fmt import long_date, short_date
from desktop.services.today import Card, today_view
from desktop.ui.qt import QFrame, QHBoxLayout, QSizePolicy, Qt, QVBoxLayout
from desktop.ui.screens.base import Screen
from desktop.ui.widgets import Chip, WrapButton, label

KIND_KEYS = {"alsfrs_r": "kind.alsfrs_r", "nasal_symptoms": "kind.nasal_symptoms",
             "dose_confirmation": "kind.dose_confirmation"}


MAX_CARDS = 4


class TodayScreen(Screen):
    name = "today"
    live = True
    show_all = False

    def _show_all(self) -> None:
        self.show_all = True
        self.refresh()
        buttons = self._card_buttons
        (buttons[MAX_CARDS] if len(buttons) > MAX_CARDS else buttons[0] if buttons else self).setFocus()

    def title(self) -> str:
        return self.tr("today.title")

    def card_title(self, card: Card) -> str:
        if card.kind == "dose_confirmation" and card.dose_number:
            return self.tr("kind.dose_n", n=card.dose_number)
        if card.kind == "alsfrs_r" and card.key == "alsfrs:baseline":
            return self.tr("kind.alsfrs_baseline")
        if card.kind == "nasal_symptoms" and card.key == "nasal:baseline":
            return self.tr("kind.nasal_baseline")
        return self.tr(KIND_KEYS[card.kind])

    def chip(self, card: Card, today) -> tuple[str, str]:
        if card.draft is not None:
            return "blue", self.tr("chip.started")
        if card.status == "done":
            return "green", self.tr("chip.done")
        if card.status == "late":
            return "amber", self.tr("chip.late_since", day=short_date(card.due_date, self.ctx.lang))
        if card.due_date and card.due_date != today:
            return "blue", self.tr("chip.due_on", day=short_date(card.due_date, self.ctx.lang))
        return "blue", self.tr("chip.due_today")

    def action(self, card: Card) -> str:
        if card.draft is not None:
            progress = card.draft.context.get("progress")
            if progress:
                return self.tr("today.continue_at", n=progress[0], total=progress[1])
            return self.tr("today.continue")
        return self.tr("today.view") if card.status == "done" else self.tr("today.start")

    def build(self) -> None:
        now = self.ctx.clock.now()
        view = today_view(self.ctx.store, now)
        self._card_buttons: list[WrapButton] = []
        self.text(long_date(view.today, self.ctx.lang), "heading")
        if view.study_day is not None and view.study_day > 0:
            self.text(self.tr("today.study_day", n=view.study_day), role="small")
        if not view.timeline_known:
            self.text(self.tr("today.no_schedule"))
        shown = view.cards if self.show_all else view.cards[:MAX_CARDS]
        for index, card in enumerate(shown):
            self.add(self._card(card, view.today, index))
        if len(view.cards) > len(shown):
            more = len(view.cards) - len(shown)
            self.button(self.tr("today.show_more", n=more), self._show_all, name="showMore")
        if view.all_done:
            self.text("✓ " + self.tr("today.all_done"), "heading")
        elif view.timeline_known and not view.cards:
            self.text(self.tr("today.nothing_due"))
        self.text(self.tr("today.other_entries"), "stem")
        for kind in ("nasal_symptoms", "dose_confirmation", "alsfrs_r"):
            self.button(self.tr(f"today.new.{kind}"), lambda k=kind: self._new(k), name=f"new_{kind}")
        self.button(self.tr("nav.history"), self.nav.show_history, name="history")
        if view.cards:
            self._first = self._card_buttons[0]

    def _card(self, card: Card, today, index: int) -> QFrame:
        frame = QFrame()
        frame.setObjectName("card")
        frame.setMinimumHeight(96)
        lay = QHBoxLayout(frame)
        lay.setContentsMargins(16, 12, 16, 12)
        col = QVBoxLayout()
        name = label(self.card_title(card), "stem")
        name.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        col.addWidget(name)
        colour, words = self.chip(card, today)
        col.addWidget(Chip(colour, words), 0, Qt.AlignmentFlag.AlignLeft)
        lay.addLayout(col, 1)
        button = WrapButton(self.action(card), min_height=64)
        button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        button.setMinimumWidth(200)
        button.setProperty("big", True)
        if card.status != "done":
            button.setProperty("primary", True)
        button.setObjectName(f"card_{index}")
        button.setAccessibleName(f"{self.action(card)}: {self.card_title(card)}")
        button.clicked.connect(lambda: self._open(card))
        self._card_buttons.append(button)
        lay.addWidget(button, 0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return frame

    def _open(self, card: Card) -> None:
        if card.draft is not None:
            self.nav.open_form(card.kind, draft=card.draft)
        elif card.status == "done" and card.record_ids:
            self.nav.show_entry(card.record_ids[-1])
        else:
            self.nav.open_form(card.kind, card.context())

    def _new(self, kind: str) -> None:
        self.nav.open_form(kind, {})
