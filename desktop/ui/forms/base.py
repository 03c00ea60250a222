"""A one-question-per-page form (ux rules 4, 5, 12, 15, 17–19) that the three questionnaires share.

A form lists its :class:`Step` s from the answers so far; the wizard shows one at a time with Back,
Pause, a progress line and Next (disabled until answered), writes the draft on every answer, ends
with a review page, and submits through :class:`desktop.services.entries.EntryService`.
Keys: 0–4 pick the option with that score and go on to the next page (a held key answers one page,
never several; the next page says what was recorded, with its focus on the question, not on an answer,
so a following Enter picks nothing); ↑/↓ move between options; Space/Enter pick and move to Next
(no auto-advance: a click, a switch or a dwell only selects); →/Page Down = Next, and on the review
page they move to Submit; ←/Page Up/Backspace = Back; Esc = Pause (the draft is kept); F1 = help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from desktop.services.entries import EntryInvalid
from desktop.store import Draft
from desktop.ui.access import read_aloud_button
from desktop.ui.ops import BackgroundOp
from desktop.ui.qt import (
    QFrame, QHBoxLayout, QLineEdit, QPlainTextEdit, QProgressBar, Qt, QTimer, QVBoxLayout, QWidget,
    announce,
)
from desktop.ui.screens.base import Screen
from desktop.ui.widgets import OptionButton, WrapButton, label, repolish

DIGITS = {getattr(Qt.Key, f"Key_{n}"): n for n in range(10)}


@dataclass
class Opt:
    value: Any
    text: str
    number: str | None = None


@dataclass
class Step:
    id: str
    kind: str                            # choice | multi | text | custom | review
    stem: str
    progress: str = ""                   # "Question 3 of 12 · Swallowing"
    pos: tuple[int, int] | None = None   # for the progress bar
    help: str = ""
    options: list[Opt] = field(default_factory=list)
    get: Callable[[], Any] = lambda: None
    set: Callable[[Any], None] = lambda v: None
    digits: bool = False
    optional: bool = False
    who_item: str | None = None          # ALSFRS-R item: "someone else answered this one"
    multiline: bool = False
    max_length: int = 500
    review_label: str = ""
    notice: str = ""


@dataclass
class ReviewRow:
    label: str
    answer: str
    step_id: str | None
    answered: bool


class WizardForm(Screen):
    kind = ""

    def __init__(self, ctx, nav, draft: Draft) -> None:
        super().__init__(ctx, nav)
        self.name = f"form:{self.kind}"
        self.draft = draft
        self.step_id = draft.page or ""
        self.return_to_review = False
        self.errors: list[str] = []
        self.submitting = False
        self.show_help = False
        self.typed_note = ""             # "Question 1: 3 — …" after a digit answered the previous page
        self.options: list[OptionButton] = []
        self.next_button: WrapButton | None = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(800)
        self._save_timer.timeout.connect(self.save)
        self.page.pass_keys = True
        self.prepare()

    # --- for subclasses ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Fill in context the form needs (diary date, dose number…) before the first page."""

    def steps(self) -> list[Step]:
        raise NotImplementedError

    def render_custom(self, step: Step) -> None:
        raise NotImplementedError

    def header_lines(self) -> list[str]:
        """Lines shown above every page (e.g. the dose and its planned date)."""
        return []

    def extra_review_rows(self) -> list[ReviewRow]:
        return []

    # --- answers ----------------------------------------------------------------------------------
    @property
    def a(self) -> dict[str, Any]:
        return self.draft.answers

    def put(self, key: str, value: Any, save: bool = True) -> None:
        self.a[key] = value
        if save:
            self.save()

    def put_in(self, key: str, sub: str, value: Any) -> None:
        self.a.setdefault(key, {})[sub] = value
        self.save()

    def save(self) -> None:
        self._save_timer.stop()
        steps = self.steps()
        idx = self._index(steps)
        countable = [s for s in steps if s.kind != "review"]
        self.draft.page = self.step_id
        self.draft.context["progress"] = [min(idx + 1, len(countable)), len(countable)]
        self.ctx.entries.save(self.draft)

    def respondent_step(self) -> Step:
        role = (self.ctx.store.settings.pairing().role
                if self.ctx.store.settings.pairing() else "participant")
        prefix = "respondent_q.caregiver" if role == "caregiver" else "respondent_q.participant"
        opts = [Opt(v, self.tr(f"{prefix}.{v}")) for v in ("participant", "caregiver", "participant_assisted")]
        return Step("respondent", "choice", self.tr("respondent_q.stem"), self.tr("form.start"),
                    options=opts, get=lambda: self.a.get("respondent"),
                    set=lambda v: self.put("respondent", v), review_label=self.tr("review.respondent"))

    def yes_no(self) -> list[Opt]:
        return [Opt(True, self.tr("answer.yes")), Opt(False, self.tr("answer.no"))]

    # --- navigation -------------------------------------------------------------------------------
    def _index(self, steps: list[Step]) -> int:
        for i, s in enumerate(steps):
            if s.id == self.step_id:
                return i
        return 0

    def current(self) -> Step:
        steps = self.steps()
        return steps[self._index(steps)]

    def answered(self, step: Step) -> bool:
        if step.optional or step.kind in ("review",):
            return True
        value = step.get()
        if step.kind == "multi":
            return bool(value)
        if step.kind == "text":
            return bool((value or "").strip())
        return value is not None

    def go(self, step_id: str, focus_next: bool = False) -> None:
        self.step_id = step_id
        self.errors = []
        self.save()
        self.refresh()
        self.focus_first(focus_next)

    def next(self) -> None:
        steps = self.steps()
        i = self._index(steps)
        if not self.answered(steps[i]) or steps[i].kind == "review":
            return
        if not self.validate_step(steps[i]):
            return
        if self.return_to_review:
            self.return_to_review = False
            self.go(steps[-1].id)
            return
        self.go(steps[min(i + 1, len(steps) - 1)].id)

    def back(self) -> None:
        steps = self.steps()
        i = self._index(steps)
        if i == 0:
            self.pause()
            return
        self.return_to_review = False
        self.go(steps[i - 1].id)

    def pause(self) -> None:
        """Back to Today with everything kept; no dialog (ux rule 12, Esc)."""
        self.save()
        self.nav.add_banner("blue", "banner.paused", key="paused")
        announce(self, self.tr("banner.paused"))
        self.nav.show_today()

    def validate_step(self, step: Step) -> bool:
        return True

    def focus_first(self, prefer_next: bool = False) -> None:
        if prefer_next and self.next_button is not None and self.next_button.isEnabled():
            self.next_button.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        target = self.first_focus()
        if target is not None:
            target.setFocus(Qt.FocusReason.OtherFocusReason)

    # --- rendering --------------------------------------------------------------------------------
    def build(self) -> None:
        steps = self.steps()
        step = steps[self._index(steps)]
        self.step_id = step.id
        self.options = []
        self.next_button = None
        self._first_field: QWidget | None = None
        self._stem = None
        top = self.row()
        back = self.button(self.tr("form.back"), self.back, layout=top, name="back")
        back.setAccessibleName(self.tr("form.back_name"))
        top.addStretch(1)
        pause = self.button(self.tr("form.pause"), self.pause, layout=top, name="pause")
        pause.setAccessibleName(self.tr("form.pause_name"))
        read_aloud_button(self, step, top)
        for line in self.header_lines():
            self.text(line, role="small")
        if step.progress:
            self.text(step.progress, role="small")
        if step.pos:
            bar = QProgressBar()
            bar.setRange(0, step.pos[1])
            bar.setValue(step.pos[0])
            bar.setFormat(f"{step.pos[0]} / {step.pos[1]}")
            bar.setTextVisible(False)
            bar.setAccessibleName(f"{step.pos[0]} / {step.pos[1]}")
            bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.add(bar)
        self.setAccessibleDescription(step.progress or step.stem)
        if self.typed_note:
            self.text(self.typed_note, "typedNote", role="small")
        if step.kind == "review":
            self.render_review(steps)
            return
        stem = self.text(step.stem, "stem")
        stem.setAccessibleName(step.stem)
        self._stem = stem
        if step.help:
            self.text(step.help)
        if step.notice:
            self.text(step.notice, role="error")
        self.body.addSpacing(24)
        if step.kind in ("choice", "multi"):
            self.render_options(step)
        elif step.kind == "text":
            self.render_text(step)
        else:
            self.render_custom(step)
        if step.who_item:
            self.render_who(step.who_item)
        for message in self.errors:
            self.text(message, role="error")
        if self.show_help:
            self.text(self.tr("settings.keys_help"), role="small")
        bottom = self.row()
        bottom.addStretch(1)
        nxt_text = self.tr("form.skip") if step.optional and not (step.get() or "") and step.kind == "text" \
            else self.tr("form.next")
        self.next_button = self.button(nxt_text, self.next, primary=True, big=True, layout=bottom, name="next")
        self.next_button.setEnabled(self.answered(step))
        self._first = (self.options[0] if self.options else None) or self._first_field or self.next_button
        selected = [o for o in self.options if o.is_selected()]
        if selected:
            self._first = selected[0]

    _first_field: QWidget | None = None
    _stem: QWidget | None = None

    def render_options(self, step: Step) -> None:
        current = step.get()
        selected_word = self.tr("form.selected")
        for opt in step.options:
            chosen = (opt.value in (current or [])) if step.kind == "multi" else (current == opt.value and current is not None)
            b = OptionButton(opt.value, opt.number, opt.text, selected_word, lambda btn, s=step: self.pick(s, btn))
            b.setObjectName(f"opt_{opt.value}")
            b.set_selected(chosen)
            self.add(b)
            self.options.append(b)
        for b in self.options:
            b.siblings = self.options

    def pick(self, step: Step, button: OptionButton) -> None:
        if step.kind == "multi":
            values = list(step.get() or [])
            if button.value in values:
                values.remove(button.value)
            else:
                values.append(button.value)
            step.set(values)
            button.set_selected(button.value in values)
            if self.next_button is not None:
                self.next_button.setEnabled(self.answered(step))
            return
        before = self._signature()
        step.set(button.value)
        if self._signature() != before:
            # the answer changes which pages follow (or adds a notice): rebuild, focus Next
            self.refresh()
            self.focus_first(prefer_next=True)
            return
        for b in self.options:
            b.set_selected(b is button)
        if self.next_button is not None:
            self.next_button.setEnabled(True)
            self.next_button.setFocus(Qt.FocusReason.OtherFocusReason)
        announce(self, f"{self.tr('form.selected')}: {button.accessibleName()}")

    def _signature(self) -> tuple:
        steps = self.steps()
        return tuple((s.id, s.notice) for s in steps)

    def render_text(self, step: Step) -> None:
        if step.multiline:
            box = QPlainTextEdit(step.get() or "")
            box.setTabChangesFocus(True)
            box.setMinimumHeight(140)
            box.textChanged.connect(lambda: self._typed(step, box.toPlainText()))
        else:
            box = QLineEdit(step.get() or "")
            box.setMaxLength(step.max_length)
            box.textChanged.connect(lambda text: self._typed(step, text))
            box.returnPressed.connect(self.next)
        box.setObjectName("answerText")
        box.setAccessibleName(step.stem)
        self.add(box)
        self._first_field = box

    def _typed(self, step: Step, text: str) -> None:
        step.set(text[: step.max_length] if step.multiline else text)
        self._save_timer.start()
        if self.next_button is not None:
            self.next_button.setEnabled(self.answered(step))
            if step.optional:
                self.next_button.setText(self.tr("form.next") if text.strip() else self.tr("form.skip"))

    def render_who(self, item: str) -> None:
        who = (self.a.get("item_respondent") or {}).get(item)
        expanded = who is not None or self.a.get("_who_open") == item
        if not expanded:
            b = self.button(self.tr("form.someone_else"), lambda: self._open_who(item), name="who")
            b.setProperty("link", True)
            return
        self.text(self.tr("form.who_answered_this"))
        row = self.row()
        for value in ("participant", "caregiver", "participant_assisted"):
            b = WrapButton(("✓ " if who == value else "") + self.tr(f"respondent.{value}"))
            b.setObjectName(f"who_{value}")
            b.setProperty("selected", who == value)
            b.clicked.connect(lambda _=False, v=value: self._set_who(item, v))
            row.addWidget(b)

    def _open_who(self, item: str) -> None:
        self.a["_who_open"] = item
        self.refresh()
        self.focus_named("who_participant")

    def _set_who(self, item: str, value: str) -> None:
        self.a.pop("_who_open", None)
        self.put_in("item_respondent", item, value)
        self.refresh()
        self.focus_first(prefer_next=True)

    # --- review and submit ------------------------------------------------------------------------
    def review_rows(self, steps: list[Step]) -> list[ReviewRow]:
        rows = []
        for s in steps:
            if s.kind == "review":
                continue
            rows.append(ReviewRow(s.review_label or s.stem, self.answer_text(s), s.id, self.answered(s)))
        return rows + self.extra_review_rows()

    def answer_text(self, step: Step) -> str:
        value = step.get()
        if step.kind == "choice":
            for o in step.options:
                if o.value == value and value is not None:
                    text = f"{o.number} — {o.text}" if o.number is not None else o.text
                    if step.who_item and (self.a.get("item_respondent") or {}).get(step.who_item):
                        who = self.a["item_respondent"][step.who_item]
                        text += " · " + self.tr("review.answered_by", who=self.tr(f"respondent.{who}"))
                    return text
            return self.tr("answer.missing")
        if step.kind == "multi":
            names = [o.text for o in step.options if o.value in (value or [])]
            return ", ".join(names) or self.tr("answer.missing")
        if step.kind == "text":
            return (value or "").strip() or (self.tr("answer.skipped") if step.optional else self.tr("answer.missing"))
        return self.custom_answer_text(step)

    def custom_answer_text(self, step: Step) -> str:
        return ""

    def render_review(self, steps: list[Step]) -> None:
        self._stem = self.text(self.tr("review.heading"), "stem")
        self.text(self.tr("review.explain"))
        rows = self.review_rows(steps)
        missing = [r for r in rows if not r.answered]
        first: QWidget | None = None
        for r in missing + [r for r in rows if r.answered]:
            frame = QFrame()
            frame.setObjectName("reviewRow")
            frame.setProperty("missing", not r.answered)
            lay = QHBoxLayout(frame)
            lay.setContentsMargins(10, 8, 10, 8)
            col = QVBoxLayout()
            col.addWidget(label(r.label, role="small"))
            col.addWidget(label(("⚠ " + self.tr("review.not_answered")) if not r.answered else r.answer))
            lay.addLayout(col, 1)
            if r.step_id:
                text = self.tr("review.go_to") if not r.answered else self.tr("review.change")
                b = WrapButton(text)
                b.setAccessibleName(f"{text}: {r.label}")
                b.clicked.connect(lambda _=False, sid=r.step_id: self._change(sid))
                lay.addWidget(b, 0, Qt.AlignmentFlag.AlignVCenter)
                if first is None and not r.answered:
                    first = b
            repolish(frame)
            self.add(frame)
        problems = EntryInvalid(self.ctx.entries.consistency(self.draft, self.ctx.lang)).messages(self.ctx.lang)
        if problems:  # answers that contradict each other: named before Submit (issue 10)
            self.text(self.tr("consistency.title"), role="strong")
        for message in dict.fromkeys([*problems, *self.errors]):
            self.text(message, role="error")
        submit_text = (self.tr("review.not_answered_count", n=len(missing)) if missing
                       else self.tr("review.submit"))
        if self.submitting:
            submit_text = self.tr("review.saving")
        self.next_button = self.button(submit_text, self.submit, primary=True, big=True, name="submit")
        self.next_button.setEnabled(not missing and not problems and not self.submitting)
        self._first = first or self.next_button

    def _change(self, step_id: str) -> None:
        self.return_to_review = True
        self.go(step_id)

    def submit(self) -> None:
        if self.submitting:
            return
        self.save()
        self.submitting = True
        self.errors = []
        if self.next_button is not None:
            self.next_button.setEnabled(False)
            self.next_button.setText(self.tr("review.saving"))
        lang, entries, draft = self.ctx.lang, self.ctx.entries, self.draft
        BackgroundOp(lambda: entries.submit(draft, lang), self).success(self._saved).failure(self._not_saved).run()

    def _saved(self, submitted: Any) -> None:
        self.submitting = False
        self.nav.after_submit(submitted)

    def _not_saved(self, exc: Exception) -> None:
        self.submitting = False
        if isinstance(exc, EntryInvalid):
            self.errors = exc.messages(self.ctx.lang)
        else:
            self.errors = [self.tr("review.save_failed", error=str(exc))]
        self.refresh()
        self.focus_first()

    # --- keys -------------------------------------------------------------------------------------
    def answer_by_digit(self, step: Step, button: OptionButton) -> None:
        """A typed score answers the page and goes on, unless the answer put a notice on this page or
        changed which page this is. The next page names what was recorded (and announces it) and has
        its focus on the question (the heading on the review page), so an Enter typed out of habit
        neither picks an answer nor submits: ↓ reaches the answers, → reaches Submit."""
        button.click()
        now = self.current()
        if now.id != step.id or (now.notice and now.notice != step.notice) or not self.answered(now):
            return
        name = now.review_label or now.progress or now.stem
        steps = self.steps()
        to_review = self.return_to_review or self._index(steps) + 1 == len(steps) - 1
        key = "form.typed_note_review" if to_review else "form.typed_note"
        self.typed_note = self.tr(key, question=name, answer=self.answer_text(now).rstrip(".。"))
        try:
            self.next()
        finally:
            note, self.typed_note = self.typed_note, ""
        if self.step_id != step.id and self._stem is not None:
            self._stem.setFocusPolicy(Qt.FocusPolicy.ClickFocus)   # focusable, but no extra Tab stop
            self._stem.setFocus(Qt.FocusReason.OtherFocusReason)
            announce(self, note)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        key = event.key()
        step = self.current()
        if key in DIGITS and step.digits:
            if event.isAutoRepeat():
                return
            value = DIGITS[key]
            for b in self.options:
                if b.value == value:
                    self.answer_by_digit(step, b)
                    return
            return
        if key in (Qt.Key.Key_Right, Qt.Key.Key_PageDown):
            if step.kind == "review":
                if self.next_button is not None and self.next_button.isEnabled():
                    self.next_button.setFocus(Qt.FocusReason.OtherFocusReason)
            elif self.next_button is not None and self.next_button.isEnabled():
                self.next()
            return
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.options:
            # from the question text (after a typed answer): into the answers, nothing chosen
            target = next((b for b in self.options if b.is_selected()), self.options[0])
            target.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        if key in (Qt.Key.Key_Left, Qt.Key.Key_PageUp, Qt.Key.Key_Backspace):
            self.back()
            return
        if key == Qt.Key.Key_Escape:
            self.pause()
            return
        if key == Qt.Key.Key_F1:
            self.show_help = not self.show_help
            self.refresh()
            self.focus_first()
            return
        super().keyPressEvent(event)
