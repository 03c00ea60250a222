from datetime import date

import pytest
from hypothesis import given, strategies as st

from shared.scoring import (
    MONTH_DAYS, delta_fs, parse_onset, score_alsfrs_r, slope_per_month, trial_eligibility, tnss,
)
from shared.vocab import ALSFRS_ITEM_KEYS_5A, ALSFRS_ITEM_KEYS_5B, NASAL_SYMPTOMS


def items(values, scale="5a"):
    keys = ALSFRS_ITEM_KEYS_5A if scale == "5a" else ALSFRS_ITEM_KEYS_5B
    return dict(zip(keys, values))


@pytest.mark.parametrize("values,scale,expected", [
    ([4] * 12, "5a", (48, 12, 12, 12, 12)),
    ([0] * 12, "5b", (0, 0, 0, 0, 0)),
    ([4, 3, 2, 1, 0, 4, 3, 2, 1, 0, 4, 3], "5a", (27, 9, 5, 6, 7)),
    ([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4], "5b", (30, 3, 6, 9, 12)),
    ([3, 4, 4, 2, 1, 3, 4, 4, 4, 4, 4, 4], "5a", (41, 11, 6, 12, 12)),
])
def test_score_table(values, scale, expected):
    s = score_alsfrs_r(items(values, scale))
    assert (s.total, s.bulbar, s.fine_motor, s.gross_motor, s.respiratory) == expected
    assert s.scale == scale


def test_item5_counts_in_fine_motor_on_either_scale():
    base = [4] * 12
    base[4] = 1
    assert score_alsfrs_r(items(base, "5a")).fine_motor == 9
    assert score_alsfrs_r(items(base, "5b")).fine_motor == 9


@pytest.mark.parametrize("bad", [
    {**items([4] * 12), "5b": 4},                      # both 5a and 5b
    {k: v for k, v in items([4] * 12).items() if k != "5a"},   # neither
    {k: v for k, v in items([4] * 12).items() if k != "7"},    # missing item
    {**items([4] * 12), "3": 5},                       # out of range
    {**items([4] * 12), "3": True},                    # bool is not a score
    {**items([4] * 12), "3": 2.0},                     # float is not a score
])
def test_score_refuses_malformed(bad):
    with pytest.raises(ValueError):
        score_alsfrs_r(bad)


@given(st.lists(st.integers(0, 4), min_size=12, max_size=12), st.sampled_from(["5a", "5b"]))
def test_every_valid_response_scores_in_range_and_domains_add_up(values, scale):
    s = score_alsfrs_r(items(values, scale))
    assert 0 <= s.total <= 48
    for d in (s.bulbar, s.fine_motor, s.gross_motor, s.respiratory):
        assert 0 <= d <= 12
    assert s.bulbar + s.fine_motor + s.gross_motor + s.respiratory == s.total == sum(values)


def test_delta_fs_day_and_month_onset():
    # onset known to the day: 2025-05-01 -> 2026-03-01 is 304 days
    assert delta_fs(38, "2025-05-01", date(2026, 3, 1)) == pytest.approx(10 / (304 / MONTH_DAYS))
    assert delta_fs(38, date(2025, 5, 1), date(2026, 3, 1)) == delta_fs(38, "2025-05-01", date(2026, 3, 1))
    # month-only onset is taken as the 15th
    onset, precision = parse_onset("2025-03")
    assert (onset, precision) == (date(2025, 3, 15), "month")
    assert delta_fs(40, "2025-03", date(2026, 3, 15)) == pytest.approx(8 / (365 / MONTH_DAYS))


def test_delta_fs_refuses_assessment_before_onset():
    with pytest.raises(ValueError):
        delta_fs(40, "2026-03-01", date(2026, 3, 1))
    with pytest.raises(ValueError):
        parse_onset("March 2025")


def test_slope_is_negative_for_decline():
    assert slope_per_month(40, date(2026, 1, 1), 38, date(2026, 3, 2)) < 0


@pytest.mark.parametrize("change,eligible,failing", [
    ({}, True, ()),
    ({"1": 1}, False, ("1",)),
    ({"10": 3}, False, ("10",)),
    ({"12": 3, "4": 1}, False, ("4", "12")),
    ({"3": 2, "9": 2}, True, ()),
])
def test_trial_eligibility(change, eligible, failing):
    e = trial_eligibility({**items([4] * 12), **change})
    assert e.eligible is eligible
    assert e.failing_items == failing


def test_tnss_sums_the_four_classic_symptoms_only():
    grades = {n: 3 for n in NASAL_SYMPTOMS}
    grades["cough_choking_dosing"] = None
    assert tnss(grades) == 12
    grades.update(rhinorrhea=0, sneezing=1)
    assert tnss(grades) == 7
