"""Keyboard-only walks through the three forms, shared by the offscreen tests and the live e2e test."""

from __future__ import annotations

from shared.vocab import ALSFRS_ITEM_KEYS_5A

from desktop.ui.widgets import WrapButton

from tests.desktop_ui.conftest import K


def start_new(app, kind: str) -> None:
    """From Today: focus "Make another entry → <kind>" and press Enter."""
    app.w.show_today()
    app.find(WrapButton, f"new_{kind}").setFocus()
    app.key(K.Key_Return)
    assert app.screen() == f"form:{kind}"


def alsfrs(app, score: int = 3) -> None:
    """Respondent "my caregiver", no feeding tube, every item at ``score``, Submit."""
    app.key(K.Key_Down)
    app.key(K.Key_Return)                     # select → focus jumps to Next
    assert app.focus().objectName() == "next"
    app.key(K.Key_Return)
    app.key(K.Key_Down)                       # feeding tube: No
    app.key(K.Key_Space)
    app.key(K.Key_Return)
    for _ in ALSFRS_ITEM_KEYS_5A:
        assert app.w.current().step_id.startswith("item:")
        app.key(getattr(K, f"Key_{score}"))   # the option scored so, not the one in that place; goes on
    assert app.w.current().step_id == "review"
    assert app.focus().objectName() == "stem"   # the heading: an Enter here submits nothing
    app.key(K.Key_Right)
    assert app.focus().objectName() == "submit"
    app.key(K.Key_Return)
    app.settle()


def nasal_no_symptoms(app) -> None:
    app.key(K.Key_Return)                     # respondent: the participant
    app.key(K.Key_Return)
    assert app.w.current().step_id == "any"
    app.key(K.Key_Return)                     # "No symptoms today"
    app.key(K.Key_Return)
    assert app.w.current().step_id == "review"
    app.key(K.Key_Return)
    app.settle()


def dose_given_both_full(app) -> None:
    """From a dose form's first page: caregiver answers, given now, both nostrils full and kept."""
    form = app.w.current()
    app.key(K.Key_Down)
    app.key(K.Key_Return)                     # respondent: caregiver
    app.key(K.Key_Return)
    app.key(K.Key_Return)                     # Given
    app.key(K.Key_Return)
    assert form.step_id == "time" and app.focus().objectName() == "timeOk"
    app.key(K.Key_Return)                     # "That's right"
    app.key(K.Key_Return)
    app.key(K.Key_Down)
    app.key(K.Key_Return)                     # given by a caregiver
    app.key(K.Key_Return)
    app.key(K.Key_Return)                     # both nostrils
    app.key(K.Key_Return)
    for _ in range(4):                        # full, full, stayed in, stayed in
        app.key(K.Key_Return)
        app.key(K.Key_Return)
    assert form.step_id == "kit"
    app.type("K-0417")
    app.key(K.Key_Return)
    app.key(K.Key_Return)                     # other products: skip
    app.key(K.Key_Tab)                        # notes: out of the box to Next (Skip)
    app.key(K.Key_Return)
    assert form.step_id == "review"
    app.key(K.Key_Return)
    app.settle()
