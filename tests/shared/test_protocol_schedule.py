"""The protocol file and the schedule (contract §4): study days, DLT window, due/open/late/missed."""

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.protocol import load_protocol, protocol_from_projection
from shared.schedule import Entry, Timeline, compliance, compute_schedule, dlt_status, due_today, timing_labels
from tests.shared import factories as f

SH = ZoneInfo("Asia/Shanghai")
P = load_protocol()


def at(y, m, d, h=10, mi=0, tz=SH):
    return datetime(y, m, d, h, mi, tzinfo=tz)


def status(items):
    return {i.key: i.status for i in items}


def test_protocol_file_is_data_with_assumptions_marked():
    assert P.id == "NCT06598202"
    assert P.dose_days == [1, 4, 8, 11] and P.dose_count == 4
    assert P.dlt_window_days == 14 and P.dosing_location == "home"
    text = Path(P.source).read_text(encoding="utf-8")
    for line in ("days = [1, 4, 8, 11]", "location = \"home\"", "show_scores_to_participant = false"):
        assert "ASSUMED" in next(l for l in text.splitlines() if line in l)
    assert len(P.assumptions) >= 5


FORBIDDEN = ("exosome", "vesicle", "sev", "msc", "placebo", "cohort", "arm", "concentration", "part 1", "part 2",
             "外泌体", "安慰剂", "囊泡", "干细胞", "队列", "浓度")


def test_participant_projection_is_masked():
    proj = P.participant_projection()
    import json
    blob = json.dumps(proj, ensure_ascii=False).lower()
    words = set(blob.replace('"', " ").replace(",", " ").replace(":", " ").split())
    for word in FORBIDDEN:
        assert word not in words and (len(word) < 4 or word not in blob), word
    assert proj["product"]["wording"]["en"] == "Study nasal drops, 1 mL per nostril"
    assert proj["site"]["emergency"] == "120"
    # a device can rebuild the schedule from the projection alone
    tl = Timeline(date(2026, 3, 2))
    again = protocol_from_projection(proj)
    assert [i.key for i in compute_schedule(again, tl, at(2026, 3, 5))] == \
           [i.key for i in compute_schedule(P, tl, at(2026, 3, 5))]


def test_study_days_have_no_day_zero():
    tl = Timeline(date(2026, 3, 2))
    assert tl.study_day(date(2026, 3, 2)) == 1
    assert tl.study_day(date(2026, 3, 1)) == -1
    assert tl.study_day(date(2026, 3, 15)) == 14
    assert tl.date_of(-1) == date(2026, 3, 1) and tl.date_of(1) == date(2026, 3, 2)
    with pytest.raises(ValueError):
        tl.date_of(0)


def test_day1_follows_dose1_as_given_in_the_participants_zone():
    # planned on the 2nd, given late in the evening of the 3rd Beijing time (= 3rd 15:30 UTC)
    given = datetime(2026, 3, 3, 15, 30, tzinfo=timezone.utc)
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", given)
    assert tl.day1 == date(2026, 3, 3)
    # the same instant in New York is still the 3rd; just after 16:00 UTC Beijing is on the 4th
    assert Timeline(date(2026, 3, 2), "Asia/Shanghai", given + timedelta(minutes=31)).day1 == date(2026, 3, 4)


def test_dose_dates_cross_a_month_end():
    tl = Timeline(date(2026, 2, 26))
    doses = [i for i in compute_schedule(P, tl, at(2026, 2, 1)) if i.kind == "dose_confirmation"]
    assert [d.due_date for d in doses] == [date(2026, 2, 26), date(2026, 3, 1), date(2026, 3, 5), date(2026, 3, 8)]
    assert {d.status for d in doses} == {"upcoming"}


def test_open_late_missed_done():
    tl = Timeline(date(2026, 3, 2))
    # dose window: planned day or the day after on time, then 7 days late
    s = status(compute_schedule(P, tl, at(2026, 3, 2)))
    assert s["dose:1"] == "open" and s["dose:2"] == "upcoming"
    assert status(compute_schedule(P, tl, at(2026, 3, 3)))["dose:1"] == "open"
    assert status(compute_schedule(P, tl, at(2026, 3, 4)))["dose:1"] == "late"
    assert status(compute_schedule(P, tl, at(2026, 3, 10)))["dose:1"] == "late"
    assert status(compute_schedule(P, tl, at(2026, 3, 11)))["dose:1"] == "missed"
    entry = Entry.from_envelope(f.dose(1, "2026-03-02", administered_at="2026-03-02T09:00:00+08:00",
                                       entered_at="2026-03-02T09:10:00+08:00"))
    items = compute_schedule(P, tl, at(2026, 3, 11), [entry])
    assert status(items)["dose:1"] == "done"


def test_late_entry_is_labelled_not_lost():
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", at(2026, 3, 2, 9))
    late = Entry.from_envelope(f.nasal("2026-03-03", entered_at="2026-03-05T20:00:00+08:00"))
    assert "late" in timing_labels(P, tl, late)
    on_time = Entry.from_envelope(f.nasal("2026-03-03", entered_at="2026-03-03T20:00:00+08:00"))
    assert timing_labels(P, tl, on_time) == []
    way_late = Entry.from_envelope(f.nasal("2026-03-03", entered_at="2026-03-20T20:00:00+08:00"))
    assert "outside_window" in timing_labels(P, tl, way_late)


def test_repeated_and_unscheduled_dose_numbers_are_labels():
    tl = Timeline(date(2026, 3, 2))
    first = Entry.from_envelope(f.dose(1, "2026-03-02", entered_at="2026-03-02T09:30:00+08:00",
                                       administered_at="2026-03-02T09:00:00+08:00"))
    again = Entry.from_envelope(f.dose(1, "2026-03-02", entered_at="2026-03-02T10:30:00+08:00",
                                       administered_at="2026-03-02T10:00:00+08:00"))
    assert timing_labels(P, tl, again, [first]) == ["repeated_dose_number"]
    fifth = Entry.from_envelope(f.dose(5, "2026-03-20", entered_at="2026-03-20T09:30:00+08:00",
                                       administered_at="2026-03-20T09:00:00+08:00"))
    assert "unscheduled_dose_number" in timing_labels(P, tl, fifth)


def test_nasal_baseline_is_the_pre_dose_entry_on_day_1():
    dose1 = at(2026, 3, 2, 9)
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", dose1)
    pre = Entry.from_envelope(f.nasal("2026-03-02", entered_at="2026-03-02T08:00:00+08:00"))
    post = Entry.from_envelope(f.nasal("2026-03-02", entered_at="2026-03-02T20:00:00+08:00"))
    s = status(compute_schedule(P, tl, at(2026, 3, 2, 21), [pre, post]))
    assert s["nasal:baseline"] == "done" and s["nasal:day:1"] == "done"
    # two entries both made after dose 1: the first fills day 1, the second is labelled
    early_post = Entry.from_envelope(f.nasal("2026-03-02", entered_at="2026-03-02T10:00:00+08:00"))
    assert timing_labels(P, tl, early_post, [post]) == []
    assert timing_labels(P, tl, post, [early_post]) == ["second_entry_same_day"]


def test_alsfrs_baseline_is_the_last_pre_dose_report():
    dose1 = at(2026, 3, 2, 9)
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", dose1)
    a = Entry.from_envelope(f.alsfrs(entered_at="2026-02-20T10:00:00+08:00"))
    b = Entry.from_envelope(f.alsfrs(entered_at="2026-03-01T10:00:00+08:00"))
    base = next(i for i in compute_schedule(P, tl, at(2026, 3, 3), [a, b]) if i.key == "alsfrs:baseline")
    assert base.record_ids == [b.id] and base.status == "done"


def test_first_dose_moved_by_staff_moves_the_schedule():
    before = {i.key: i.due_date for i in compute_schedule(P, Timeline(date(2026, 3, 2)), at(2026, 3, 1))}
    after = {i.key: i.due_date for i in compute_schedule(P, Timeline(date(2026, 3, 9)), at(2026, 3, 1))}
    assert after["dose:4"] - before["dose:4"] == timedelta(days=7)
    assert set(before) == set(after)


def test_dlt_window_is_14_times_24_hours_from_dose1():
    tl0 = Timeline(date(2026, 3, 2))
    s0 = dlt_status(P, tl0, at(2026, 3, 5))
    assert s0.state == "not_started" and s0.starts_at is None and s0.ends_at == at(2026, 3, 16, 0, 0)
    dose1 = at(2026, 3, 2, 9)
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", dose1)
    assert dlt_status(P, tl, at(2026, 3, 2, 8)).state == "not_started"
    s = dlt_status(P, tl, at(2026, 3, 2, 9))
    assert (s.state, s.day, s.starts_at, s.ends_at) == ("open", 1, dose1, at(2026, 3, 16, 9))
    assert dlt_status(P, tl, at(2026, 3, 3, 8, 59)).day == 1      # the window's own days of 24 h
    assert dlt_status(P, tl, at(2026, 3, 3, 9)).day == 2
    s = dlt_status(P, tl, at(2026, 3, 16, 8, 59))
    assert (s.state, s.day) == ("open", 14)
    assert dlt_status(P, tl, at(2026, 3, 16, 9, 0)).state == "closed"


def test_today_and_compliance_counts():
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", at(2026, 3, 2, 9))
    d1 = Entry.from_envelope(f.dose(1, "2026-03-02", entered_at="2026-03-02T09:30:00+08:00",
                                    administered_at="2026-03-02T09:00:00+08:00"))
    today = due_today(P, tl, at(2026, 3, 5, 12), [d1])
    keys = {i.key for i in today}
    assert "dose:2" in keys and "nasal:day:4" in keys and "dose:1" not in keys
    c = compliance(compute_schedule(P, tl, at(2026, 3, 12, 12), [d1]))
    assert c["dose_confirmation"]["done"] == 1 and c["dose_confirmation"]["expected"] >= 3


def test_a_second_trial_needs_a_file_not_code(tmp_path):
    """NCT06607900-like protocol: weekly dosing for 4 weeks, 28-day DLT, nasal diary to day 42."""
    text = Path(P.source).read_text(encoding="utf-8")
    text = (text.replace('id = "NCT06598202"', 'id = "NCT06607900"')
                .replace("days = [1, 4, 8, 11]", "days = [1, 8, 15, 22]")
                .replace("window_days = 14", "window_days = 28")
                .replace("last_day = 28 ", "last_day = 42 "))
    path = tmp_path / "nct06607900.toml"
    path.write_text(text, encoding="utf-8")
    other = load_protocol(path)
    assert other.id == "NCT06607900" and other.dose_days == [1, 8, 15, 22]
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", at(2026, 3, 2, 9))
    items = compute_schedule(other, tl, at(2026, 3, 2))
    assert [i.due_date for i in items if i.kind == "dose_confirmation"] == [
        date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23)]
    assert max(i.study_day for i in items if i.kind == "nasal_symptoms") == 42
    assert dlt_status(other, tl, at(2026, 3, 29, 12)).state == "open"
