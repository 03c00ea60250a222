"""ONE table of every safety rule (issue 10): each nasal symptom × grade × timing, and each ALSFRS-R rule,
with the safety notice the participant sees and the staff flags (and which are urgent) for each cell.

Timings (dose 1 on 2026-03-02 09:30 +08:00, dose 2 on day 4 at 09:30; DLT window to 2026-03-16 09:30):
``before`` a diary for day −1, before dose 1; ``within_24h`` the diary of day 4, the day dose 2 was given;
``dlt`` the diary of day 7, inside the DLT window but more than 24 h after any dose; ``after`` day 20.
Thresholds are the protocol file's; ``Y`` = notice shown, ``-`` = nothing. A flag name with ``!`` is urgent.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.flags import RULES, evaluate_flags, safety_notice_needed
from shared.protocol import load_protocol
from shared.schedule import Timeline
from shared.vocab import NASAL_SYMPTOMS
from tests.exports.factories import RecordMaker, alsfrs_items, at, symptoms

P = load_protocol()
D1 = date(2026, 3, 2)
TL = Timeline(D1, "Asia/Shanghai", at(2026, 3, 2, 9, 30))
TIMINGS = {"before": -1, "within_24h": 4, "dlt": 7, "after": 20}

NASAL_TABLE = """
symptom                grade notice before              within_24h                               dlt                                        after
rhinorrhea             0     -      -                   -                                        -                                          -
rhinorrhea             1     -      -                   -                                        -                                          -
rhinorrhea             2     -      -                   -                                        -                                          -
rhinorrhea             3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
congestion             0     -      -                   -                                        -                                          -
congestion             1     -      -                   -                                        -                                          -
congestion             2     -      -                   -                                        -                                          -
congestion             3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
itching                0     -      -                   -                                        -                                          -
itching                1     -      -                   -                                        -                                          -
itching                2     -      -                   -                                        -                                          -
itching                3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
sneezing               0     -      -                   -                                        -                                          -
sneezing               1     -      -                   -                                        -                                          -
sneezing               2     -      -                   -                                        -                                          -
sneezing               3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
burning_stinging       0     -      -                   -                                        -                                          -
burning_stinging       1     -      -                   -                                        -                                          -
burning_stinging       2     -      -                   -                                        -                                          -
burning_stinging       3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
epistaxis              0     -      -                   -                                        -                                          -
epistaxis              1     -      -                   -                                        -                                          -
epistaxis              2     -      epistaxis           epistaxis                                epistaxis                                  epistaxis
epistaxis              3     Y      !symptom_severe+epistaxis !symptom_severe+epistaxis            !symptom_severe+epistaxis                   !symptom_severe+epistaxis
postnasal_drip_throat  0     -      -                   -                                        -                                          -
postnasal_drip_throat  1     -      -                   -                                        -                                          -
postnasal_drip_throat  2     -      -                   -                                        -                                          -
postnasal_drip_throat  3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
sinus_facial_pain      0     -      -                   -                                        -                                          -
sinus_facial_pain      1     -      -                   -                                        -                                          -
sinus_facial_pain      2     -      -                   -                                        -                                          -
sinus_facial_pain      3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
headache               0     -      -                   -                                        -                                          -
headache               1     -      -                   -                                        -                                          -
headache               2     -      -                   -                                        -                                          -
headache               3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
smell_change           0     -      -                   -                                        -                                          -
smell_change           1     -      -                   -                                        -                                          -
smell_change           2     -      -                   -                                        -                                          -
smell_change           3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
taste_change           0     -      -                   -                                        -                                          -
taste_change           1     -      -                   -                                        -                                          -
taste_change           2     -      -                   -                                        -                                          -
taste_change           3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
cough_choking_dosing   0     -      -                   -                                        -                                          -
cough_choking_dosing   1     -      -                   -                                        -                                          -
cough_choking_dosing   2     Y      !cough_choking_dosing !cough_choking_dosing                    !cough_choking_dosing                       !cough_choking_dosing
cough_choking_dosing   3     Y      !symptom_severe+!cough_choking_dosing !symptom_severe+!cough_choking_dosing !symptom_severe+!cough_choking_dosing !symptom_severe+!cough_choking_dosing
dizziness              0     -      -                   -                                        -                                          -
dizziness              1     -      -                   -                                        -                                          -
dizziness              2     -      -                   -                                        -                                          -
dizziness              3     Y      !symptom_severe      !symptom_severe                           !symptom_severe                             !symptom_severe
allergic_signs         0     -      -                   -                                        -                                          -
allergic_signs         1     Y      -                   !allergic_after_dose                     -                                          -
allergic_signs         2     Y      -                   !allergic_after_dose                     !allergic_in_dlt_window                    -
allergic_signs         3     Y      !symptom_severe      !symptom_severe+!allergic_after_dose      !symptom_severe+!allergic_in_dlt_window     !symptom_severe
"""

#: the diary's yes/no answers, with a nosebleed of grade 1 (needed help) or all grades 0 (medical care)
NASAL_EXTRA_TABLE = """
answer                 notice before              within_24h                               dlt                                        after
epistaxis_needed_help  Y      epistaxis           epistaxis                                epistaxis                                  epistaxis
sought_medical_care    -      !sought_medical_care !sought_medical_care                      !sought_medical_care                        !sought_medical_care
"""

#: ALSFRS-R: baseline (before dose 1) all 4 on 5a unless ``base`` says otherwise, the previous entry on day 8
#: (``prev``, all 4 on 5a unless given), the entry judged on day 15 (``now``); flags raised on that entry
ALSFRS_TABLE = [
    # name,                          base,                    prev,                      now,                                        notice, flags
    ("all normal",                    {},                      {},                        {},                                          False, set()),
    ("breathing item at 3",           {},                      {},                        {"i10": 3},                                  False, {"respiratory_item_low"}),
    ("breathing item at 2, prev 3",   {},                      {"i10": 3},                {"i10": 2},                                  False, {"respiratory_item_low"}),
    ("breathing item 4 -> 2",         {},                      {},                        {"i10": 2},                                  True,  {"respiratory_item_low", "!respiratory_critical"}),
    ("dyspnea at 1",                  {},                      {"i10": 2},                {"i10": 1},                                  True,  {"respiratory_item_low", "!respiratory_critical"}),
    ("orthopnea at 0",                {},                      {"i11": 1},                {"i11": 0},                                  True,  {"respiratory_item_low", "!respiratory_critical", "alsfrs_drop"}),
    ("respiratory insufficiency 1",   {},                      {"i12": 1},                {"i12": 1},                                  True,  {"respiratory_item_low", "!respiratory_critical"}),
    ("orthopnea 3 -> 1 (drop 2)",     {},                      {"i11": 3},                {"i11": 1},                                  True,  {"respiratory_item_low", "!respiratory_critical"}),
    ("swallowing 2",                  {},                      {},                        {"i3": 2},                                   False, set()),
    ("swallowing 1, no gastrostomy",  {},                      {},                        {"i3": 1},                                   False, {"swallowing_tube_feeding"}),
    ("swallowing 0, no gastrostomy",  {},                      {"i3": 0},                 {"i3": 0},                                   False, {"swallowing_tube_feeding", "alsfrs_drop"}),
    ("swallowing 1, gastrostomy",     {},                      {"g": True},               {"g": True, "i3": 1},                        False, set()),
    ("total -3",                      {},                      {},                        {"i1": 3, "i7": 3, "i8": 3},                 False, set()),
    ("total -4",                      {},                      {},                        {"i1": 3, "i2": 3, "i7": 3, "i8": 3},        False, {"alsfrs_drop"}),
    ("fine motor -2",                 {},                      {},                        {"i4": 3, "i6": 3},                          False, set()),
    ("fine motor -3",                 {},                      {},                        {"i4": 3, "i5": 3, "i6": 3},                 False, {"alsfrs_drop"}),
    ("switch 5a -> 5b, no change",    {},                      {},                        {"g": True},                                 False, {"alsfrs_scale_switch"}),
    ("switch 5a -> 5b, 44 -> 27",     {"i1": 3, "i2": 3, "i8": 3, "i9": 3}, {},           {"g": True, "default": 2, "i1": 1, "i10": 4, "i11": 4},
                                                                                                                                   True,  {"alsfrs_scale_switch", "alsfrs_drop", "respiratory_item_low", "!respiratory_critical"}),
    ("switch 5b -> 5a, fine motor -3", {"g": True},            {"g": True},               {"i4": 3, "i5": 3, "i6": 3},                 False, {"alsfrs_scale_switch", "alsfrs_drop"}),
]


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()[1:]]


def _flags(cell: str) -> set[str]:
    return set() if cell == "-" else set(cell.split("+"))


def _named(flags) -> set[str]:
    return {("!" if f.urgent else "") + f.rule for f in flags}


def _diary(mk: RecordMaker, study_day: int, **kw):
    d = TL.date_of(study_day)
    return mk.nasal(d, at(d.year, d.month, d.day, 21), **kw)


def _doses(mk: RecordMaker):
    return [mk.dose(1, D1, at(2026, 3, 2, 9, 30)), mk.dose(2, TL.date_of(4), at(2026, 3, 5, 9, 30))]


NASAL_CELLS = [(row[0], int(row[1]), row[2] == "Y", timing, _flags(row[3 + i]))
               for row in _table(NASAL_TABLE) for i, timing in enumerate(TIMINGS)]


def test_the_table_names_every_symptom_grade_and_timing():
    assert {(s, g, t) for s, g, _n, t, _f in NASAL_CELLS} == {
        (s, g, t) for s in NASAL_SYMPTOMS for g in range(4) for t in TIMINGS}
    assert len(NASAL_CELLS) == len(NASAL_SYMPTOMS) * 4 * 4
    named = {f.lstrip("!") for *_x, flags in NASAL_CELLS for f in flags}
    named |= {f.lstrip("!") for row in _table(NASAL_EXTRA_TABLE) for c in row[2:] for f in _flags(c)}
    named |= {f.lstrip("!") for *_x, flags in ALSFRS_TABLE for f in flags}
    # the rules the table leaves out are the dose and schedule rules, tested in test_dose_schedule.py
    assert set(RULES) - named == {"dose_missed", "dose_off_schedule", "second_diary_same_day"}


@pytest.mark.parametrize("symptom,grade,notice,timing,expected", NASAL_CELLS,
                         ids=[f"{s}-{g}-{t}" for s, g, _n, t, _f in NASAL_CELLS])
def test_nasal_cell(symptom, grade, notice, timing, expected):
    mk = RecordMaker("P-TAB")
    grades = symptoms(cough=grade) if symptom == "cough_choking_dosing" else symptoms(**{symptom: grade})
    diary = _diary(mk, TIMINGS[timing], grades=grades)
    flags = evaluate_flags(P, TL, [*_doses(mk), diary])
    assert _named(f for f in flags if f.record_id == diary["id"]) == expected
    assert safety_notice_needed(diary, P) is notice


@pytest.mark.parametrize("row", _table(NASAL_EXTRA_TABLE), ids=lambda r: r[0])
@pytest.mark.parametrize("timing", list(TIMINGS))
def test_nasal_answer_cell(row, timing):
    mk = RecordMaker("P-TAB")
    if row[0] == "epistaxis_needed_help":
        diary = _diary(mk, TIMINGS[timing], grades=symptoms(epistaxis=1), needed_help=True)
    else:
        diary = _diary(mk, TIMINGS[timing], sought_care=True)
    flags = evaluate_flags(P, TL, [*_doses(mk), diary])
    assert _named(f for f in flags if f.record_id == diary["id"]) == _flags(row[2 + list(TIMINGS).index(timing)])
    assert safety_notice_needed(diary, P) is (row[1] == "Y")


def _items(spec: dict) -> dict:
    spec = dict(spec)
    g = spec.pop("g", False)
    return alsfrs_items(g, **spec)


@pytest.mark.parametrize("name,base,prev,now,notice,expected", ALSFRS_TABLE, ids=[r[0] for r in ALSFRS_TABLE])
def test_alsfrs_cell(name, base, prev, now, notice, expected):
    mk = RecordMaker("P-TAB")
    b = mk.alsfrs(at(2026, 2, 27, 10), _items(base), gastrostomy=base.get("g", False))
    p = mk.alsfrs(at(2026, 3, 9, 10), _items(prev), gastrostomy=prev.get("g", False))
    n = mk.alsfrs(at(2026, 3, 16, 10), _items(now), gastrostomy=now.get("g", False))
    flags = evaluate_flags(P, TL, [*_doses(mk), b, p, n])
    assert _named(f for f in flags if f.record_id == n["id"]) == expected
    assert safety_notice_needed(n, P, p) is notice


def test_every_rule_has_an_urgent_key_in_the_protocol():
    from server.store.reviews import DAY1_TO_CONFIRM, DOSE_NOT_CONFIRMED
    assert set(P.urgent_rules) == set(RULES) | {DOSE_NOT_CONFIRMED, DAY1_TO_CONFIRM}
    assert {r for r, urgent in P.urgent_rules.items() if urgent} == {
        "respiratory_critical", "allergic_after_dose", "allergic_in_dlt_window", "symptom_severe",
        "cough_choking_dosing", "sought_medical_care", "dose_missed", "dose_not_confirmed"}
