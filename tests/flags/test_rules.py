"""Each safety-flag rule at its threshold edge, with thresholds read from the protocol file."""

from __future__ import annotations

import copy
import random
from datetime import date, datetime, timedelta

import pytest

from shared.flags import (
    NOTE_NO_BASELINE, RULES, Flag, FlagList, baseline_alsfrs, evaluate_flags, safety_notice_needed,
)
from shared.protocol import Protocol, load_protocol
from shared.schedule import Timeline
from tests.exports.factories import RecordMaker, alsfrs_items, at, symptoms

D1 = date(2026, 3, 2)
DOSE1_AT = at(2026, 3, 2, 9, 30)
PROTOCOL = load_protocol()


def timeline(dose1: datetime | None = DOSE1_AT) -> Timeline:
    return Timeline(D1, "Asia/Shanghai", dose1)


def day(n: int) -> date:
    return D1 + timedelta(days=n - 1)


def evening(n: int, hh: int = 21) -> datetime:
    d = day(n)
    return at(d.year, d.month, d.day, hh)


def with_flags(**changes) -> Protocol:
    data = copy.deepcopy(PROTOCOL.data)
    data["flags"].update(changes)
    return Protocol(data, source="synthetic")


def fired(records, protocol=PROTOCOL, tl=None, rule=None) -> list[Flag]:
    flags = evaluate_flags(protocol, tl or timeline(), records)
    return [f for f in flags if rule is None or f.rule == rule]


@pytest.fixture
def mk() -> RecordMaker:
    return RecordMaker("P-001")


def dose1(mk: RecordMaker):
    return mk.dose(1, D1, DOSE1_AT)


# --- nasal rules ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,grade,fires", [
    ("headache", 2, False), ("headache", 3, True), ("epistaxis", 3, True), ("dizziness", 3, True),
    ("cough_choking_dosing", 2, False), ("cough_choking_dosing", 3, True), ("rhinorrhea", 0, False),
])
def test_symptom_severe(mk, name, grade, fires):
    rec = mk.nasal(day(3), evening(3), symptoms(**{name: grade}) if name != "cough_choking_dosing"
                   else symptoms(cough=grade))
    flags = fired([dose1(mk), rec], rule="symptom_severe")
    assert bool(flags) is fires
    if fires:
        assert flags[0].record_id == rec["id"] and flags[0].severity == "high"
        assert flags[0].detail["symptoms"] == [name] and flags[0].detail["grades"] == {name: 3}


def test_symptom_severe_lists_every_severe_symptom_once(mk):
    rec = mk.nasal(day(3), evening(3), symptoms(headache=3, dizziness=3, itching=2))
    (flag,) = fired([rec], rule="symptom_severe")
    assert flag.detail["symptoms"] == ["headache", "dizziness"]
    assert flag.key == f"symptom_severe:{rec['id']}"


# allergic signs: the diary day D is [00:00 D, 24:00 D) at the entry's offset; a dose counts when it was
# given between 24 h before 00:00 D and the earlier of 24:00 D and the diary's entered_at
@pytest.mark.parametrize("dose_at,diary_day,entered_hh,fires", [
    (at(2026, 3, 5, 9, 30), 4, 21, True),       # same day, entry in the evening
    (at(2026, 3, 4, 9, 30), 4, 21, True),       # the day before: within 24 h of the day's start
    (at(2026, 3, 4, 0, 0), 4, 21, True),        # exactly 24 h before the day starts: inclusive
    (at(2026, 3, 3, 23, 59), 4, 21, False),     # one minute more than 24 h before
    (at(2026, 3, 5, 22, 0), 4, 21, False),      # dose given after the diary was filled in
    (at(2026, 3, 5, 21, 0), 4, 21, True),       # dose at the very minute of entry: inclusive
    (at(2026, 3, 6, 9, 30), 4, 21, False),      # dose on the next day cannot precede this day's signs
])
def test_allergic_after_dose_window(mk, dose_at, diary_day, entered_hh, fires):
    dose = mk.dose(2, day(4), dose_at)
    rec = mk.nasal(day(diary_day), evening(diary_day, entered_hh), symptoms(allergic_signs=1))
    flags = fired([dose, rec], rule="allergic_after_dose")
    assert bool(flags) is fires
    if fires:
        assert flags[0].detail["doses"] == [{"record_id": dose["id"], "dose_number": 2,
                                            "administered_at": dose["payload"]["administered_at"]}]


def test_allergic_after_dose_needs_signs_and_a_given_dose(mk):
    given = mk.dose(2, day(4), at(2026, 3, 5, 9, 30))
    missed = mk.dose(3, day(8), given=False)
    none = mk.nasal(day(4), evening(4), symptoms(allergic_signs=0))
    after_missed = mk.nasal(day(8), evening(8), symptoms(allergic_signs=2))
    assert fired([given, missed, none, after_missed], rule="allergic_after_dose") == []


def test_allergic_pre_dose_baseline_entry_is_not_after_dose_one(mk):
    pre = mk.nasal(day(1), at(2026, 3, 2, 8, 0), symptoms(allergic_signs=1))
    assert fired([dose1(mk), pre], rule="allergic_after_dose") == []


def test_allergic_window_hours_come_from_the_protocol(mk):
    dose = mk.dose(2, day(4), at(2026, 3, 4, 9, 30))
    rec = mk.nasal(day(4), evening(4), symptoms(allergic_signs=1))
    assert fired([dose, rec], rule="allergic_after_dose")
    narrow = with_flags(allergic_window_hours=12)
    assert fired([dose, rec], narrow, rule="allergic_after_dose") == []
    edge = mk.dose(2, day(4), at(2026, 3, 4, 12, 0))   # exactly 12 h before the day starts
    assert fired([edge, rec], narrow, rule="allergic_after_dose")


@pytest.mark.parametrize("grade,help_,fires,severity", [
    (1, False, False, None), (2, False, True, "medium"), (3, False, True, "medium"),
    (1, True, True, "high"), (0, True, True, "high"),
])
def test_epistaxis(mk, grade, help_, fires, severity):
    rec = mk.nasal(day(5), evening(5), symptoms(epistaxis=grade), needed_help=help_)
    flags = fired([rec], rule="epistaxis")
    assert bool(flags) is fires
    if fires:
        assert flags[0].severity == severity and flags[0].detail["needed_help"] is help_


@pytest.mark.parametrize("cough,fires", [(None, False), (0, False), (1, False), (2, True), (3, True)])
def test_cough_choking_in_the_diary(mk, cough, fires):
    rec = mk.nasal(day(4), evening(4), symptoms(cough=cough))
    assert bool(fired([rec], rule="cough_choking_dosing")) is fires


@pytest.mark.parametrize("loss,fires", [
    ((), False), (("sneezed",), False), (("coughed_choked",), True), (("ran_out", "coughed_choked"), True),
])
def test_cough_choking_as_a_dose_loss(mk, loss, fires):
    rec = mk.dose(2, day(4), at(2026, 3, 5, 9, 30), loss=loss, retained=not loss)
    flags = fired([rec], rule="cough_choking_dosing")
    assert bool(flags) is fires
    if fires:
        assert flags[0].detail["source"] == "dose" and flags[0].detail["nostrils_lost"] == ["left", "right"]


@pytest.mark.parametrize("care,fires", [(False, False), (True, True)])
def test_sought_medical_care(mk, care, fires):
    rec = mk.nasal(day(5), evening(5), sought_care=care)
    assert bool(fired([rec], rule="sought_medical_care")) is fires


# --- ALSFRS-R rules --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scores,fires", [
    ({}, False), ({"i10": 3}, True), ({"i11": 3}, True), ({"i12": 0}, True), ({"i9": 0, "i1": 1}, False),
])
def test_respiratory_item_low(mk, scores, fires):
    rec = mk.alsfrs(evening(8, 10), alsfrs_items(**scores))
    flags = fired([rec], rule="respiratory_item_low")
    assert bool(flags) is fires
    if fires:
        assert set(flags[0].detail["items"]) == {k[1:] for k in scores if k in ("i10", "i11", "i12")}


def _baseline_and_later(mk, later_items, *, baseline_items=None):
    base = mk.alsfrs(at(2026, 2, 27, 10), baseline_items or alsfrs_items(i3=3, i8=3))  # total 46
    later = mk.alsfrs(evening(8, 10), later_items)
    return base, later


@pytest.mark.parametrize("drop,fires", [(0, False), (3, False), (4, True), (7, True)])
def test_alsfrs_drop_at_the_edge(mk, drop, fires):
    items = alsfrs_items(i3=3, i8=3, default=4)
    for key in ("1", "2", "4", "6", "7", "9", "8", "3")[:drop]:
        items[key] -= 1
    base, later = _baseline_and_later(mk, items)
    flags = fired([dose1(mk), base, later], rule="alsfrs_drop")
    assert bool(flags) is fires
    if fires:
        assert flags[0].record_id == later["id"]
        assert flags[0].detail["baseline_total"] == 46 and flags[0].detail["drop"] == drop


def test_alsfrs_drop_points_come_from_the_protocol(mk):
    base, later = _baseline_and_later(mk, alsfrs_items(i3=3, i8=2))   # 45: one point below baseline
    assert fired([dose1(mk), base, later], rule="alsfrs_drop") == []
    assert fired([dose1(mk), base, later], with_flags(alsfrs_drop_points=1), rule="alsfrs_drop")


def test_no_baseline_means_no_drop_flag_and_says_so(mk):
    later = mk.alsfrs(evening(8, 10), alsfrs_items(default=1))
    flags = evaluate_flags(PROTOCOL, timeline(), [dose1(mk), later])
    assert isinstance(flags, FlagList) and flags.baseline is None
    assert flags.notes == (NOTE_NO_BASELINE,)
    assert not [f for f in flags if f.rule == "alsfrs_drop"]


def test_baseline_is_the_last_report_before_dose_one(mk):
    early = mk.alsfrs(at(2026, 2, 20, 10), alsfrs_items(default=3))
    last = mk.alsfrs(at(2026, 3, 2, 9, 29), alsfrs_items(i3=3))        # one minute before dose 1
    at_dose = mk.alsfrs(DOSE1_AT, alsfrs_items(default=2))             # not before: the same minute
    b = baseline_alsfrs(PROTOCOL, timeline(), [at_dose, early, last])
    assert b is not None and b.record_id == last["id"] and b.total == 47 and b.scale == "5a"
    flags = evaluate_flags(PROTOCOL, timeline(), [early, last, at_dose])
    assert flags.baseline == b and flags.notes == ()
    assert [f.record_id for f in flags if f.rule == "alsfrs_drop"] == [at_dose["id"]]


def test_baseline_before_dose_one_is_confirmed_uses_the_planned_date(mk):
    on_day1 = mk.alsfrs(at(2026, 3, 2, 18), alsfrs_items())
    day2 = mk.alsfrs(at(2026, 3, 3, 8), alsfrs_items(default=3))
    assert baseline_alsfrs(PROTOCOL, timeline(None), [on_day1, day2]).record_id == on_day1["id"]
    assert baseline_alsfrs(PROTOCOL, timeline(), [on_day1, day2]) is None


def test_a_baseline_can_be_passed_in(mk):
    base, later = _baseline_and_later(mk, alsfrs_items(default=3))
    flags = evaluate_flags(PROTOCOL, timeline(), [later], baseline=base)
    assert [f.rule for f in flags if f.rule == "alsfrs_drop"] == ["alsfrs_drop"]


def test_scale_switch_flags_and_keeps_the_drop_comparison(mk):
    base = mk.alsfrs(at(2026, 2, 27, 10), alsfrs_items())
    same = mk.alsfrs(evening(8, 10), alsfrs_items(i9=3))
    switched = mk.alsfrs(evening(15, 10), alsfrs_items(True, default=2))   # 24 points lower, on 5b
    back = mk.alsfrs(evening(22, 10), alsfrs_items(default=2))
    flags = fired([dose1(mk), base, same, switched, back])
    switches = [(f.record_id, f.detail["from"], f.detail["to"]) for f in flags if f.rule == "alsfrs_scale_switch"]
    assert switches == [(switched["id"], "5a", "5b"), (back["id"], "5b", "5a")]
    drops = [f for f in flags if f.rule == "alsfrs_drop"]
    assert [f.record_id for f in drops] == [switched["id"], back["id"]]
    assert (drops[0].detail["scale"], drops[0].detail["baseline_scale"], drops[0].detail["drop"]) == ("5b", "5a", 24)


def test_drop_of_44_to_27_across_a_5a_to_5b_switch_raises_the_drop_flag(mk):
    """The issue's case: a 44→27 fall with the switch raised only the one-time "switched" flag."""
    base = mk.alsfrs(at(2026, 2, 27, 10), alsfrs_items(i1=3, i2=3, i8=3, i9=3))            # 44 on 5a
    after = mk.alsfrs(evening(15, 10), alsfrs_items(True, default=2, i10=4, i11=4, i1=1))  # 27 on 5b
    flags = fired([dose1(mk), base, after])
    assert {f.rule for f in flags if f.record_id == after["id"]} >= {"alsfrs_scale_switch", "alsfrs_drop"}
    (drop,) = [f for f in flags if f.rule == "alsfrs_drop"]
    assert (drop.detail["baseline_total"], drop.detail["total"]) == (44, 27)
    assert (drop.detail["baseline_fine_motor"], drop.detail["fine_motor"], drop.detail["fine_motor_drop"]) == (12, 6, 6)


def test_fine_motor_domain_drop_alone_raises_the_drop_flag(mk):
    base = mk.alsfrs(at(2026, 2, 27, 10), alsfrs_items())
    two = mk.alsfrs(evening(8, 10), alsfrs_items(i4=3, i6=3))           # fine motor -2, total -2: nothing
    three = mk.alsfrs(evening(15, 10), alsfrs_items(True, i4=3, i5=3, i6=3))   # fine motor -3 on 5b: flag
    drops = fired([dose1(mk), base, two, three], rule="alsfrs_drop")
    assert [(f.record_id, f.detail["drop"], f.detail["fine_motor_drop"]) for f in drops] == [(three["id"], 3, 3)]


# --- doses and diaries -------------------------------------------------------------------------------------

def test_dose_missed_only_when_not_given(mk):
    missed = mk.dose(3, day(8), given=False, missed_reason="other", missed_reason_text="travelling")
    partial = mk.dose(2, day(4), at(2026, 3, 5, 9, 30), right=False)
    flags = fired([missed, partial], rule="dose_missed")
    assert [f.record_id for f in flags] == [missed["id"]]
    assert flags[0].detail == {"dose_number": 3, "planned_date": "2026-03-09", "missed_reason": "other",
                               "missed_reason_text": "travelling"}


def test_second_diary_excludes_the_planned_pre_dose_baseline(mk):
    pre = mk.nasal(day(1), at(2026, 3, 2, 8), symptoms(cough=None))
    post = mk.nasal(day(1), evening(1), symptoms())
    assert fired([dose1(mk), pre, post], rule="second_diary_same_day") == []
    third = mk.nasal(day(1), evening(1, 22), symptoms())
    flags = fired([dose1(mk), pre, post, third], rule="second_diary_same_day")
    assert [f.record_id for f in flags] == [third["id"]]
    assert flags[0].detail["earlier_record_ids"] == [post["id"]]
    assert flags[0].detail["pre_dose_baseline_record_id"] == pre["id"]


def test_second_diary_on_an_ordinary_day(mk):
    first = mk.nasal(day(5), evening(5), symptoms())
    second = mk.nasal(day(5), evening(5, 23), symptoms())
    other_day = mk.nasal(day(6), evening(6), symptoms())
    flags = fired([second, other_day, first], rule="second_diary_same_day")
    assert [(f.record_id, f.detail["count"], f.detail["position"]) for f in flags] == [(second["id"], 2, 2)]


def test_two_post_dose_diaries_on_day_one_without_a_baseline_entry(mk):
    a = mk.nasal(day(1), evening(1), symptoms())
    b = mk.nasal(day(1), evening(1, 22), symptoms())
    assert [f.record_id for f in fired([dose1(mk), a, b], rule="second_diary_same_day")] == [b["id"]]


def test_nasal_flags_carry_the_pre_dose_baseline_for_comparison(mk):
    pre = mk.nasal(day(1), at(2026, 3, 2, 8), symptoms(cough=None, headache=3))
    later = mk.nasal(day(3), evening(3), symptoms(headache=3))
    flags = fired([dose1(mk), pre, later], rule="symptom_severe")
    assert [(f.record_id, f.detail["pre_dose_baseline"]) for f in flags] == [(pre["id"], True), (later["id"], False)]
    assert flags[1].detail["baseline_grades"] == {"headache": 3}


# --- thresholds are data -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,value,rule,build,default_fires,changed_fires", [
    ("symptom_severe", 2, "symptom_severe", lambda m: m.nasal(day(3), evening(3), symptoms(headache=2)), False, True),
    ("epistaxis_min", 3, "epistaxis", lambda m: m.nasal(day(3), evening(3), symptoms(epistaxis=2)), True, False),
    ("cough_choking_min", 3, "cough_choking_dosing",
     lambda m: m.nasal(day(4), evening(4), symptoms(cough=2)), True, False),
    ("allergic_signs_min", 2, "allergic_after_dose",
     lambda m: m.nasal(day(1), evening(1), symptoms(allergic_signs=1)), True, False),
    ("respiratory_item_below", 3, "respiratory_item_low",
     lambda m: m.alsfrs(evening(8, 10), alsfrs_items(i11=3)), True, False),
])
def test_changing_a_threshold_in_the_protocol_changes_the_result(mk, name, value, rule, build, default_fires,
                                                                  changed_fires):
    recs = [dose1(mk), build(mk)]
    assert bool(fired(recs, rule=rule)) is default_fires
    assert bool(fired(recs, with_flags(**{name: value}), rule=rule)) is changed_fires


def test_a_protocol_without_a_threshold_is_an_error(mk):
    data = copy.deepcopy(PROTOCOL.data)
    del data["flags"]["epistaxis_min"]
    with pytest.raises(KeyError):
        evaluate_flags(Protocol(data), timeline(), [mk.nasal(day(3), evening(3))])


# --- determinism -----------------------------------------------------------------------------------------

def _course(mk: RecordMaker):
    from tests.exports.factories import participant_records
    return participant_records("P-001", D1, seed="det")


def test_same_records_in_any_order_give_the_same_flags(mk):
    recs = _course(mk)
    first = evaluate_flags(PROTOCOL, timeline(), recs)
    assert {f.rule for f in first} == set(RULES) - {"alsfrs_scale_switch", "dose_missed", "swallowing_tube_feeding",
                                                    "respiratory_critical", "allergic_in_dlt_window",
                                                    "dose_off_schedule"}
    for seed in range(5):
        shuffled = list(recs)
        random.Random(seed).shuffle(shuffled)
        again = evaluate_flags(PROTOCOL, timeline(), copy.deepcopy(shuffled))
        assert again == first and [f.key for f in again] == [f.key for f in first]
    assert len({f.key for f in first}) == len(first)
    assert {f for f in first} == set(again)          # hashable, equal by value


def test_keys_are_stable_when_a_correction_changes_the_detail(mk):
    rec = mk.nasal(day(3), evening(3), symptoms(headache=3))
    before = fired([rec], rule="symptom_severe")[0]
    corrected = copy.deepcopy(dict(rec))
    corrected["payload"]["symptoms"]["dizziness"] = 3
    after = fired([corrected], rule="symptom_severe")[0]
    assert after.key == before.key and after.detail != before.detail


def test_flag_rejects_unknown_rule_and_severity():
    with pytest.raises(ValueError):
        Flag("made_up", "x", "high")
    with pytest.raises(ValueError):
        Flag("dose_missed", "x", "low")


# --- client safety notice (contract §4) -------------------------------------------------------------------------

@pytest.mark.parametrize("grades,help_,expected", [
    ({}, False, False), ({"headache": 2}, False, False), ({"headache": 3}, False, True),
    ({"allergic_signs": 1}, False, True), ({"epistaxis": 2}, False, False), ({}, True, True),
    ({"cough": 1}, False, False), ({"cough": 2}, False, True), ({"cough": None}, False, False),
])
def test_safety_notice_for_a_diary(mk, grades, help_, expected):
    grades = dict(grades)
    cough = grades.pop("cough", 0)
    rec = mk.nasal(day(4), evening(4), symptoms(cough=cough, **grades), needed_help=help_)
    assert safety_notice_needed(rec) is expected
    assert safety_notice_needed(rec, PROTOCOL) is expected


@pytest.mark.parametrize("loss,expected", [((), False), (("sneezed",), False), (("coughed_choked",), True)])
def test_safety_notice_for_a_dose(mk, loss, expected):
    rec = mk.dose(2, day(4), at(2026, 3, 5, 9, 30), loss=loss, retained=not loss)
    assert safety_notice_needed(rec) is expected


def test_safety_notice_for_alsfrs_only_for_breathing(mk):
    assert safety_notice_needed(mk.alsfrs(evening(8), alsfrs_items(default=0))) is True
    assert safety_notice_needed(mk.alsfrs(evening(8), alsfrs_items(default=0, i10=2, i11=2, i12=2))) is False
    prev = mk.alsfrs(evening(1), alsfrs_items())
    assert safety_notice_needed(mk.alsfrs(evening(8), alsfrs_items(i11=2)), PROTOCOL, prev) is True
    assert safety_notice_needed(mk.alsfrs(evening(8), alsfrs_items(i11=3)), PROTOCOL, prev) is False


def test_safety_notice_thresholds_follow_a_protocol(mk):
    rec = mk.nasal(day(4), evening(4), symptoms(cough=2))
    assert safety_notice_needed(rec, with_flags(cough_choking_min=3)) is False
