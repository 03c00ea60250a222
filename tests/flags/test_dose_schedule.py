"""Doses against the planned days (issue 10 §2) and contradicting answers (§3): the shared rules, the
labels the server stores at ingest, and a planned dose flagged the day after its on-time window."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from shared.consistency import consistency_issues, given_dose_dates
from shared.dose_schedule import dose_findings
from shared.flags import evaluate_flags
from shared.protocol import load_protocol
from shared.schedule import Timeline
from tests.exports.factories import RecordMaker, at, symptoms

P = load_protocol()
D1 = date(2026, 3, 2)
TL = Timeline(D1, "Asia/Shanghai", at(2026, 3, 2, 9))


def day(n: int) -> date:
    return D1 + timedelta(days=n - 1)


def _given(mk, n, study_day, hh=9, planned=None):
    d = day(study_day)
    return mk.dose(n, planned or day(P.dose_days[n - 1]), at(d.year, d.month, d.day, hh))


@pytest.mark.parametrize("schedule,expected", [
    # (dose number, study day given, hour) for doses 2.. after dose 1 on day 1 09:00
    ([(2, 4, 9), (3, 8, 9), (4, 11, 9)], {2: [], 3: [], 4: []}),                       # as planned
    ([(2, 5, 9)], {2: []}),                                                            # the day after: on time
    ([(2, 6, 9)], {2: ["dose_late_given"]}),
    ([(2, 3, 9)], {2: ["dose_early"]}),                                                # 48 h after dose 1: not too close
    ([(2, 2, 9)], {2: ["dose_early", "dose_too_close"]}),                              # 24 h after dose 1
    ([(2, 4, 9), (3, 8, 9), (4, 8, 18)], {2: [], 3: ["dose_same_day"],
                                          4: ["dose_early", "dose_too_close", "dose_same_day"]}),
    ([(3, 4, 9), (2, 8, 9)], {3: ["dose_early", "dose_out_of_order"], 2: ["dose_late_given", "dose_out_of_order"]}),
])
def test_dose_findings(schedule, expected):
    mk = RecordMaker("P-DS")
    recs = [_given(mk, 1, 1)] + [_given(mk, n, d, hh) for n, d, hh in schedule]
    found = dose_findings(P, TL, recs)
    by_number = {f.dose_number: f.labels for f in found.values()}
    assert by_number.pop(1) == []
    assert by_number == expected
    flags = evaluate_flags(P, TL, recs)
    off = {f.detail["dose_number"] for f in flags if f.rule == "dose_off_schedule"}
    assert off == {n for n, labels in expected.items() if labels}


def test_a_dose_matched_to_the_nearest_planned_day_and_the_interval_from_the_protocol():
    mk = RecordMaker("P-DS")
    recs = [_given(mk, 1, 1), _given(mk, 2, 8)]      # typed as dose 2, given on dose 3's day
    (f2,) = [f for f in dose_findings(P, TL, recs).values() if f.dose_number == 2]
    assert f2.matched_dose == 3 and f2.labels == ["dose_late_given"]
    import copy
    from shared.protocol import Protocol
    strict = copy.deepcopy(P.data)
    strict["dosing"]["min_interval_hours"] = 24 * 8
    assert "dose_too_close" in [f for f in dose_findings(Protocol(strict), TL, recs).values()
                                if f.dose_number == 2][0].labels


def test_missed_doses_are_not_judged_against_the_schedule():
    mk = RecordMaker("P-DS")
    assert dose_findings(P, TL, [_given(mk, 1, 1), mk.dose(2, day(4), given=False)]).keys() == {
        r for r in dose_findings(P, TL, [_given(RecordMaker("P-DS"), 1, 1)])}


@pytest.mark.parametrize("grades,help_,on,entered,dose_days,expected", [
    (symptoms(epistaxis=0), True, 3, (3, 21), [], ["inconsistent_epistaxis_help"]),
    (symptoms(epistaxis=1), True, 3, (3, 21), [], []),
    (symptoms(cough=1), False, 3, (3, 21), [], ["inconsistent_cough_without_dose"]),
    (symptoms(cough=1), False, 4, (4, 21), [4], []),
    (symptoms(cough=0), False, 3, (3, 21), [], []),
    (symptoms(cough=None), False, 3, (3, 21), [], []),
    (symptoms(), False, 5, (4, 23, 56), [], []),          # starts 4 minutes after entry: within the tolerance
    (symptoms(), False, 5, (4, 23, 54), [], ["inconsistent_future_date"]),
])
def test_consistency(grades, help_, on, entered, dose_days, expected):
    mk = RecordMaker("P-CS")
    e = day(entered[0])
    rec = mk.nasal(day(on), at(e.year, e.month, e.day, entered[1], entered[2] if len(entered) > 2 else 0),
                   grades, needed_help=help_)
    doses = [_given(mk, 2, d, 9) for d in dose_days]
    assert consistency_issues(rec, P, given_dose_dates(doses), "Asia/Shanghai") == expected
