"""Envelopes built from answers: contract rules, event_time, nulls on non-dosing days, safety."""

import pytest

from shared.schemas import load_record

from desktop.services.entries import EntryInvalid
from shared.protocol import load_protocol

from desktop.services.safety import safety_findings, safety_notice_needed

from tests.desktop.helpers import fill_alsfrs, fill_dose, fill_nasal
from tests.shared.factories import dose, nasal


def test_alsfrs_envelope_uses_entered_at_as_event_time_and_5b_with_a_tube(entries):
    d = fill_alsfrs(entries, score=3, gastrostomy=True)
    d.answers["items"] = {("5b" if k == "5a" else k): v for k, v in d.answers["items"].items()}
    d.answers["items"]["5a"] = 2            # an answer from before the tube question changed
    d.answers["item_respondent"] = {"3": "caregiver", "5a": "caregiver"}
    env = entries.envelope(d, "zh-CN")
    assert env["event_time"] == env["entered_at"] == "2026-03-10T09:30:00+08:00"
    assert "5a" not in env["payload"]["items"] and env["payload"]["items"]["5b"] == 3
    assert env["payload"]["item_respondent"] == {"3": "caregiver"}
    assert env["instrument_version"] == "alsfrs-r/cedarbaum-1999/zh-CN/draft-1"
    assert entries.check(d, "zh-CN") == []


def test_nasal_event_time_is_midnight_at_the_offset_and_cough_is_null_off_dosing_days(entries):
    d = fill_nasal(entries, day="2026-03-09")
    env = entries.envelope(d, "en")
    assert env["event_time"] == "2026-03-09T00:00:00+08:00"
    assert env["payload"]["symptoms"]["cough_choking_dosing"] is None
    d2 = fill_nasal(entries, dosing_day=True, grades={"cough_choking_dosing": 2})
    assert entries.envelope(d2, "en")["payload"]["symptoms"]["cough_choking_dosing"] == 2


def test_no_symptoms_today_is_one_step(entries):
    d = entries.start("nasal_symptoms", {"date": "2026-03-10", "dosing_day": True})
    d.answers = {"respondent": "caregiver", "none": True}
    sub = entries.submit(d, "en")
    p = sub.entry.envelope["payload"]
    assert set(p["symptoms"].values()) == {0}
    assert p["epistaxis_needed_help"] is False and p["sought_medical_care"] is False
    assert sub.safety_notice is False


def test_nosebleed_help_with_grade_0_is_refused_with_a_plain_message(entries):
    d = fill_nasal(entries)
    d.answers["epistaxis_needed_help"] = True
    assert entries.envelope(d, "en")["payload"]["epistaxis_needed_help"] is True   # kept, not dropped
    assert [e.rule for e in entries.consistency(d, "en")] == ["inconsistent_epistaxis_help"]
    with pytest.raises(EntryInvalid) as exc:
        entries.submit(d, "en")
    assert "nosebleed as 0" in exc.value.messages("en")[0]
    assert "鼻出血评为 0" in exc.value.messages("zh-CN")[0]
    d.answers["symptoms"]["epistaxis"] = 1
    assert entries.consistency(d, "en") == []


def test_cough_at_dosing_on_a_day_whose_dose_was_not_given_is_refused(entries):
    missed = fill_dose(entries, given=False)
    entries.submit(missed, "en")
    day = missed.context["planned_date"]
    d = fill_nasal(entries, day=day, dosing_day=True, grades={"cough_choking_dosing": 1})
    assert [e.rule for e in entries.consistency(d, "en")] == ["inconsistent_cough_without_dose"]
    d.answers["symptoms"]["cough_choking_dosing"] = 0
    assert entries.consistency(d, "en") == []


def test_a_diary_for_a_future_date_is_refused(entries):
    d = fill_nasal(entries, day="2026-03-12")            # the test clock is 2026-03-10
    assert [e.rule for e in entries.consistency(d, "en")] == ["inconsistent_future_date"]
    assert "not started yet" in EntryInvalid(entries.consistency(d, "en")).messages("en")[0]


@pytest.mark.parametrize("given", [True, False])
def test_dose_envelopes_pass_the_contract(entries, given):
    d = fill_dose(entries, given=given)
    env = entries.envelope(d, "en")
    assert entries.check(d, "en") == []
    if given:
        assert env["event_time"] == env["payload"]["administered_at"]
        assert env["payload"]["missed_reason"] is None
    else:
        assert env["event_time"] == "2026-03-10T00:00:00+08:00"
        assert env["payload"]["nostrils"]["left"] == {"given": False, "volume": None, "retained": None}
        assert env["payload"]["administered_by"] == "participant"  # the device's role stands in


def test_one_nostril_lost_by_coughing_needs_a_reason_and_raises_the_notice(entries):
    d = fill_dose(entries)
    d.answers.update(nostrils="left", retained={"left": False}, loss=["coughed_choked"])
    errors = entries.check(d, "en")
    assert [e.field for e in errors] == ["payload.missed_reason"]
    d.answers["missed_reason"] = "nasal_problem"
    sub = entries.submit(d, "en")
    assert sub.entry.envelope["payload"]["loss"] == ["coughed_choked"]
    assert sub.safety_notice is True


def test_a_time_after_submit_is_refused_in_words_and_nothing_is_saved(entries, paired):
    d = fill_dose(entries, at="2026-03-10T10:30:00+08:00")
    with pytest.raises(EntryInvalid) as err:
        entries.submit(d, "en")
    assert "The time given is later than now." in err.value.messages("en")
    assert paired.outbox.entries() == [] and paired.drafts.get(d.id) is not None


def test_unanswered_alsfrs_lists_every_missing_item(entries):
    d = entries.start("alsfrs_r")
    d.answers = {"respondent": "participant", "gastrostomy": False, "items": {"1": 4}}
    fields = {e.field for e in entries.check(d, "en")}
    assert {"payload.items.2", "payload.items.12", "payload.items.5a"} <= fields


@pytest.mark.parametrize("env,expected", [
    (nasal(grades={"headache": 3}), True),
    (nasal(grades={"headache": 2}), False),
    (nasal(grades={"allergic_signs": 1}), True),
    (nasal(grades={"cough_choking_dosing": 2}), True),
    (nasal(grades={"cough_choking_dosing": 1}), False),
    (nasal(grades={"cough_choking_dosing": None}), False),
    (dose(), False),
])
def test_safety_notice_conditions(env, expected):
    load_record(env)
    assert safety_notice_needed(env) is expected
    # the words shown name something exactly when the shared rule asks for the notice
    assert bool(safety_findings(env, load_protocol())) is safety_notice_needed(env, load_protocol())


def test_safety_findings_name_what_was_reported():
    env = nasal(grades={"epistaxis": 2})
    env["payload"]["epistaxis_needed_help"] = True
    assert safety_findings(env) == [("safety.finding.epistaxis_help", {})]


def test_breathing_item_at_1_or_a_drop_of_2_shows_the_safety_notice(entries):
    first = fill_alsfrs(entries, score=4)
    assert entries.submit(first, "en").safety_notice is False
    low = fill_alsfrs(entries, score=4)
    low.answers["items"]["10"] = 1
    sub = entries.submit(low, "en")
    assert sub.safety_notice is True
    assert ("safety.finding.breathing_low", {"item": "10"}) in safety_findings(sub.entry.envelope, load_protocol())
    drop = fill_alsfrs(entries, score=4)
    drop.answers["items"]["10"] = 1            # same as the previous entry: still at 1
    drop.answers["items"]["11"] = 2            # 4 -> 2: a drop of 2 since the previous entry
    sub = entries.submit(drop, "en")
    from desktop.services.safety import previous_alsfrs
    prev = previous_alsfrs(entries.store, sub.entry.envelope)
    assert prev is not None and prev["id"] == low.id
    assert ("safety.finding.breathing_drop", {"item": "11"}) in safety_findings(sub.entry.envelope, load_protocol(), prev)
    same = fill_alsfrs(entries, score=3)      # every item 3: no item at 1, drops of 1 only vs "drop"
    same.answers["items"].update({"10": 3, "11": 3, "12": 3})
    assert entries.submit(same, "en").safety_notice is False
