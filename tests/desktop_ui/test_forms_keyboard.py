"""Each form driven by keyboard only, from Today to a stored outbox row."""

from __future__ import annotations

from shared.schemas import load_record
from shared.vocab import ALSFRS_ITEM_KEYS_5A

from desktop.ui.widgets import WrapButton

from tests.desktop_ui import flows
from tests.desktop_ui.conftest import K


def submitted(app, kind):
    app.settle()
    rows = [e for e in app.store.outbox.entries() if e.type == kind]
    assert len(rows) == 1, rows
    load_record(rows[0].envelope)
    return rows[0]


def test_alsfrs_by_keyboard(app):
    flows.start_new(app, "alsfrs_r")
    flows.alsfrs(app, score=3)
    e = submitted(app, "alsfrs_r")
    assert e.envelope["respondent"] == "caregiver"
    assert e.envelope["payload"] == {"gastrostomy": False, "items": {k: 3 for k in ALSFRS_ITEM_KEYS_5A}}
    assert app.screen() == "today"
    assert app.w.banner("saved") is not None
    assert app.store.drafts.all() == []


def test_nasal_no_symptoms_in_one_step(app):
    app.w.open_form("nasal_symptoms", {"date": "2026-03-13", "dosing_day": True})
    flows.nasal_no_symptoms(app)
    e = submitted(app, "nasal_symptoms")
    assert set(e.envelope["payload"]["symptoms"].values()) == {0}
    assert e.envelope["payload"]["date"] == "2026-03-13"


def test_nasal_with_symptoms_notes_and_the_safety_notice(app):
    app.w.open_form("nasal_symptoms", {"date": "2026-03-12", "dosing_day": False})
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    app.key(K.Key_Down)                       # "Yes, record symptoms"
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    grades = {"epistaxis": 2, "headache": 1}
    form = app.w.current()
    seen = []
    while form.step_id.startswith("symptom:"):
        name = form.step_id.split(":")[1]
        seen.append(name)
        app.key(getattr(K, f"Key_{grades.get(name, 0)}"))   # answers and goes on
    assert "cough_choking_dosing" not in seen and len(seen) == 13     # not a dosing day
    assert form.step_id == "epistaxis_help"
    assert app.focus().objectName() == "stem"
    app.key(K.Key_Down)                       # into the answers
    app.key(K.Key_Return)                     # Yes, it needed help
    app.key(K.Key_Return)
    app.key(K.Key_Down)                       # saw a doctor: No
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    assert form.step_id == "notes"
    app.type("Nosebleed after lunch")
    app.key(K.Key_Tab)                        # out of the text box to Next
    assert app.focus().objectName() == "next"
    app.key(K.Key_Return)
    app.key(K.Key_Return)                     # Submit
    e = submitted(app, "nasal_symptoms")
    p = e.envelope["payload"]
    assert p["symptoms"]["epistaxis"] == 2 and p["symptoms"]["cough_choking_dosing"] is None
    assert p["epistaxis_needed_help"] is True and p["sought_medical_care"] is False
    assert p["notes"] == "Nosebleed after lunch"
    assert app.screen() == "safety"
    assert app.focus().objectName() == "heading"
    texts = " ".join(lab.text() for lab in app.w.current().findChildren(type(app.focus())))
    assert "nosebleed that needed help" in texts and "010-8319 8899" in texts and "120" in texts
    app.find(WrapButton, "readIt").setFocus()
    app.key(K.Key_Return)
    assert app.screen() == "today"


def test_dose_confirmation_by_keyboard(app):
    card = app.find(WrapButton, "card_0")
    assert "Dose 2" in card.accessibleName()
    card.setFocus()
    app.key(K.Key_Return)
    form = app.w.current()
    assert form.draft.context["dose_number"] == 2 and form.draft.context["planned_date"] == "2026-03-13"
    flows.dose_given_both_full(app)
    e = submitted(app, "dose_confirmation")
    p = e.envelope["payload"]
    assert p["given"] is True and p["administered_by"] == "caregiver"
    assert p["administered_at"] == "2026-03-13T10:15:00+08:00" == e.envelope["event_time"]
    assert p["nostrils"]["right"] == {"given": True, "volume": "full", "retained": True}
    assert p["loss"] == [] and p["missed_reason"] is None and p["kit_number"] == "K-0417"
    assert e.envelope["respondent"] == "caregiver"


def test_dose_partly_lost_by_keyboard(app):
    app.w.open_form("dose_confirmation", {"dose_number": 2, "planned_date": "2026-03-13"})
    form = app.w.current()
    form.draft.answers.update(respondent="caregiver", given=True, administered_at="2026-03-13T09:00:00+08:00",
                              administered_by="participant", nostrils="both",
                              volume={"left": "full", "right": "partial"}, retained={"left": True})
    form.go("retained:right")
    app.key(K.Key_Down)                       # right: some was lost
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    assert form.step_id == "loss"
    app.key(K.Key_Down, 3)                    # coughed or choked
    app.key(K.Key_Return)                     # toggles it on
    app.key(K.Key_Right)                      # Next
    assert form.step_id == "kit"
    form.go("review")
    app.key(K.Key_Return)
    e = submitted(app, "dose_confirmation")
    p = e.envelope["payload"]
    assert p["nostrils"]["right"] == {"given": True, "volume": "partial", "retained": False}
    assert p["loss"] == ["coughed_choked"]
    assert app.screen() == "safety"           # a coughed/choked loss calls for the notice


def test_dose_missed_needs_a_reason(app):
    app.w.open_form("dose_confirmation", {"dose_number": 2, "planned_date": "2026-03-13"})
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    app.key(K.Key_Down)                       # Not given
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    form = app.w.current()
    assert form.step_id == "reason"
    assert not form.next_button.isEnabled()
    app.key(K.Key_Down, 8)                    # "Other reason"
    app.key(K.Key_Return)
    app.key(K.Key_Return)
    assert form.step_id == "reason_text"
    app.type("Travelling")
    app.key(K.Key_Return)
    while form.step_id != "review":
        app.key(K.Key_Return)
        if form.step_id == "notes":
            app.key(K.Key_Tab)
    app.key(K.Key_Return)
    p = submitted(app, "dose_confirmation").envelope["payload"]
    assert p["given"] is False and p["missed_reason"] == "other" and p["missed_reason_text"] == "Travelling"
    assert p["administered_at"] is None


def test_time_after_now_is_refused_in_words(app):
    app.w.open_form("dose_confirmation", {"dose_number": 2, "planned_date": "2026-03-13"})
    form = app.w.current()
    form.draft.answers.update(respondent="caregiver", given=True)
    form.go("time")
    form.time_field.setText("11:30")
    app.find(WrapButton, "useTime").click()
    app.find(WrapButton, "timeOk").click()
    assert form.draft.answers.get("administered_at") is None
    assert any("later than now" in e for e in form.errors)
    assert not form.next_button.isEnabled()
