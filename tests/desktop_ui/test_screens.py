"""Every screen: language switch, accessible names, 44 px targets, focus order, text size."""

from __future__ import annotations

import re

import pytest

from desktop.ui.qt import QAbstractButton, QApplication, QLabel, QLineEdit, QWidget, Qt
from desktop.ui.widgets import WrapButton

from tests.desktop_ui.conftest import K
from tests.tools.scenes import SCENES

CJK = re.compile(r"[\u3400-\u9fff]")
NEUTRAL = re.compile(r"^[\d\s\W]*$|^ALSFRS-R$|^https?://|^[A-Z]-\d+$|^\d{3}-\d{3}$|alsfrs-r/|"
                     r"nasal-symptoms/|dose-confirmation/")
LANGUAGE_NAMES = {"中文 / English", "English", "中文（简体）"}
SCENE_IDS = [name for name, _, _ in SCENES]


def visible_texts(window) -> list[tuple[str, str]]:
    """(kind, text) of every visible label, button and accessible name in the window."""
    out = []
    for w in window.findChildren(QWidget):
        if not w.isVisible():
            continue
        if isinstance(w, QLabel) and w.text().strip() and not isinstance(w.parentWidget(), QAbstractButton):
            out.append(("label", w.text()))
        elif isinstance(w, QAbstractButton):
            out.append(("button", w.text()))
            if w.accessibleName():
                out.append(("name", w.accessibleName()))
        elif isinstance(w, QLineEdit) and w.accessibleName():
            out.append(("name", w.accessibleName()))
    return [(k, t) for k, t in out if t.strip()]


def untranslated(texts, lang):
    bad = []
    for kind, text in texts:
        if any(n in text for n in LANGUAGE_NAMES) or NEUTRAL.search(text) or "Aa 汉字" in text:
            continue
        has_cjk = bool(CJK.search(text))
        if (lang == "zh-CN") != has_cjk:
            bad.append((kind, text))
    return bad


@pytest.mark.parametrize("scene", SCENE_IDS)
def test_language_switch_changes_every_visible_label(make_app, scene):
    name, paired, build = next(s for s in SCENES if s[0] == scene)
    app = make_app(paired=paired, lang="en", show_scores=scene == "23-history-chart")
    build(app.w)
    app.settle()
    assert untranslated(visible_texts(app.w), "en") == []
    page = app.screen()
    app.w.header.lang.click()                          # the header's "中文 / English" button
    app.settle()
    assert app.ctx.lang == "zh-CN" and app.screen() == page     # same page, draft kept
    texts = visible_texts(app.w)
    assert untranslated(texts, "zh-CN") == []
    app.w.header.lang.click()
    assert untranslated(visible_texts(app.w), "en") == []


@pytest.mark.parametrize("scene", SCENE_IDS)
def test_every_control_is_named_and_at_least_44_px(make_app, scene):
    name, paired, build = next(s for s in SCENES if s[0] == scene)
    app = make_app(paired=paired, show_scores=scene == "23-history-chart")
    build(app.w)
    app.settle()
    for w in app.w.findChildren(QWidget):
        if not w.isVisible() or not (w.focusPolicy() & Qt.FocusPolicy.TabFocus):
            continue
        label = w.accessibleName() or (w.text() if hasattr(w, "text") else "")
        assert label.strip(), f"{type(w).__name__} {w.objectName()} has no accessible name"
        if isinstance(w, (QAbstractButton, QLineEdit)):
            assert w.height() >= 44 and w.width() >= 44, (w.objectName(), label, w.size())


def test_item_page_focus_order(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False, items={"3": 2})
    form.go("item:3")
    start = app.find(WrapButton, "back")
    start.setFocus()
    order = [app.focus().objectName()]
    for _ in range(9):
        app.key(K.Key_Tab)
        order.append(app.focus().objectName())
    assert order == ["back", "pause", "readAloud", "opt_4", "opt_3", "opt_2", "opt_1", "opt_0", "who", "next"]


def test_digits_choose_by_score_arrows_move_without_choosing(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False)
    form.go("item:1")
    assert app.focus().objectName() == "opt_4"
    app.key(K.Key_Down, 2)
    assert app.focus().objectName() == "opt_2" and form.draft.answers.get("items") is None
    app.key(K.Key_0)                                   # answers and goes on
    assert form.draft.answers["items"]["1"] == 0 and form.step_id == "item:2"
    note = app.find(QLabel, "typedNote")
    assert note.text() == "Recorded for 1. Speech: 0 — Useful speech is lost. Press ← to change it."
    assert app.focus().objectName() == "stem"          # not an answer: a habitual Enter picks nothing
    app.key(K.Key_Return)
    assert form.step_id == "item:2" and "2" not in form.draft.answers["items"]
    app.key(K.Key_7)                                   # ignored
    assert form.step_id == "item:2" and "2" not in form.draft.answers["items"]
    app.key(K.Key_Down)                                # from the question into the answers
    assert app.focus().objectName() == "opt_4" and "2" not in form.draft.answers["items"]
    app.key(K.Key_Left)                                # Back: the typed answer is shown, and can change
    assert form.step_id == "item:1" and app.find(WrapButton, "opt_0").property("selected") is True
    assert app.focus().objectName() == "opt_0"
    app.key(K.Key_Up)
    app.key(K.Key_Return)                              # chosen by Enter: selects, no auto-advance
    assert form.step_id == "item:1" and form.draft.answers["items"]["1"] == 1
    assert app.focus().objectName() == "next"
    app.key(K.Key_Left)
    assert form.step_id == "gastrostomy"


def test_a_held_digit_answers_one_question_not_several(app):
    from desktop.ui.qt import QEvent, QKeyEvent
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False)
    form.go("item:1")
    QApplication.sendEvent(app.focus(), QKeyEvent(QEvent.Type.KeyPress, K.Key_3, Qt.KeyboardModifier.NoModifier, "3"))
    assert form.step_id == "item:2"
    for _ in range(5):                                 # the key is still down: auto-repeat presses
        QApplication.sendEvent(app.focus(), QKeyEvent(QEvent.Type.KeyPress, K.Key_3,
                                                      Qt.KeyboardModifier.NoModifier, "3", True))
    assert form.step_id == "item:2" and form.draft.answers["items"] == {"1": 3}


def test_a_digit_on_the_last_question_reaches_the_review_and_enter_there_submits_nothing(app):
    from shared.vocab import ALSFRS_ITEM_KEYS_5A
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False,
                              items={k: 4 for k in ALSFRS_ITEM_KEYS_5A if k != "12"})
    form.go("item:12")
    app.key(K.Key_2)
    assert form.step_id == "review" and app.focus().objectName() == "stem"
    assert app.find(QLabel, "typedNote").text() == ("Recorded for 12. Respiratory insufficiency: 2 — "
                                                    "Uses BiPAP (breathing machine) all through the night. "
                                                    "Press ← to change it, or → to go to “Submit answers”.")
    app.key(K.Key_Return)                              # out of habit (digit, Enter): nothing is sent
    app.settle()
    assert app.screen() == "form:alsfrs_r" and app.store.outbox.entries() == []
    app.key(K.Key_Right)                               # → reaches Submit; Enter submits
    assert app.focus().objectName() == "submit"
    app.key(K.Key_Return)
    app.settle()
    assert app.screen() == "today" and len(app.store.outbox.entries()) == 1


def test_pause_keeps_the_draft_and_resumes_on_the_same_page(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False)
    form.go("item:4")
    app.find(WrapButton, "opt_2").click()              # a click selects and stays on the page
    app.key(K.Key_Escape)
    assert app.screen() == "today" and app.w.banner("paused") is not None
    card = app.find(WrapButton, "card_0")
    assert "question 5 of 13" in card.text() or "question" in card.text()
    card.click()
    form = app.w.current()
    assert form.step_id == "item:4" and form.draft.answers["items"]["4"] == 2
    assert app.find(WrapButton, "opt_2").property("selected") is True


def test_changing_the_feeding_tube_answer_clears_item_5_with_a_notice(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False, items={"5a": 3, "1": 4})
    form.go("gastrostomy")
    app.find(WrapButton, "opt_True").click()
    assert "5a" not in form.draft.answers["items"] and form.draft.answers["items"]["1"] == 4
    notices = [lab.text() for lab in form.findChildren(QLabel) if lab.property("role") == "error"]
    assert any("question 5" in n for n in notices)
    assert [s.id for s in form.steps()].count("item:5b") == 1


def test_review_lists_unanswered_first_and_blocks_submit(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False,
                              items={k: 4 for k in ("1", "2", "4", "5a", "6", "7", "8", "9", "10", "11", "12")})
    form.go("review")
    submit = app.find(WrapButton, "submit")
    assert not submit.isEnabled() and submit.text() == "1 question not answered"
    assert app.focus().accessibleName() == "Go to question: 3. Swallowing"
    app.key(K.Key_Return)
    assert form.step_id == "item:3"
    app.key(K.Key_1)                                   # answers and returns to the review
    assert form.step_id == "review" and app.find(WrapButton, "submit").isEnabled()
    assert form.draft.answers["items"]["3"] == 1
    labels = " ".join(lab.text() for lab in form.findChildren(QLabel))
    assert "48" not in labels and "Total" not in labels    # never a total while entering


def test_text_size_has_four_steps_and_200_percent_grows_everything(app):
    app.w.show_settings()
    app.find(QWidget, "size_200").click()
    assert app.ctx.scale == 2.0 and QApplication.font().pixelSize() == 36
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False)
    form.go("item:11")
    for name in ("opt_4", "opt_3", "opt_0"):
        b = app.find(WrapButton, name)
        lab = b.text_label                              # the wrapped anchor text is never clipped
        app.qtbot.waitUntil(lambda b=b, lab=lab: b.height() >= 64 and lab.height() >= lab.heightForWidth(lab.width()),
                            timeout=3000)
    app.qtbot.keyClick(app.w, K.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert app.ctx.scale == 1.5


def test_high_contrast_follows_the_setting(app):
    app.w.show_settings()
    assert app.ctx.contrast == "system" and not app.ctx.high_contrast   # offscreen: no preference
    app.find(QWidget, "contrast_on").click()
    css = QApplication.instance().styleSheet()
    assert "#FFFF00" in css and "#0B4F8A" not in css
    assert app.w.ring.colour.name() == "#ffff00"
    app.find(QWidget, "contrast_off").click()
    assert "#0B4F8A" in QApplication.instance().styleSheet()
