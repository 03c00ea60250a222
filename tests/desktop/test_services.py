"""Today cards, the status line, reminders with catch-up, dates in both languages, history."""

from datetime import date, datetime, timedelta

import pytest

from desktop.services.fmt import check_code, long_date, receipt_line, short_date, when
from desktop.services.history import alsfrs_series, history
from desktop.services.reminders import Notifier, ReminderService
from desktop.services.status import sync_status
from desktop.services.today import is_dosing_day, planned_doses, today_view
from desktop.store import Outcome

from tests.desktop.helpers import BEIJING, fill_alsfrs, fill_dose, fill_nasal


@pytest.fixture
def scheduled(paired):
    paired.settings.set("timeline", {"first_dose_date": "2026-03-10", "tz": "Asia/Shanghai"})
    return paired


def test_dates_in_both_languages():
    d = date(2026, 11, 25)
    assert long_date(d, "en") == "Wednesday 25 November 2026"
    assert long_date(d, "zh-CN") == "2026年11月25日 星期三"
    assert short_date(d, "en") == "Wed 25 Nov" and short_date(d, "zh-CN") == "11月25日 周三"
    now = datetime(2026, 11, 25, 10, 0, tzinfo=BEIJING)
    assert when(datetime(2026, 11, 23, 9, 12, tzinfo=BEIJING), now, "en") == "Monday 09:12"
    assert when(datetime(2026, 11, 23, 9, 12, tzinfo=BEIJING), now, "zh-CN") == "星期一 09:12"
    assert check_code("3f9a21c0deadbeef") == "3F9A 21C0"
    line = receipt_line({"server_seq": 1234, "received_at": "2026-11-25T01:14:00+00:00",
                         "sha256": "3f9a21c0aa"}, now, "en")
    assert line == "Received 2026-11-25 09:14 · No. 1234 · check code 3F9A 21C0"


def test_today_without_a_first_dose_date_still_allows_entries(paired, clock):
    view = today_view(paired, clock.now())
    assert not view.timeline_known and view.cards == []


def test_today_on_day_one_lists_dose_diary_and_baseline(scheduled, clock):
    view = today_view(scheduled, clock.now())
    kinds = [(c.kind, c.status) for c in view.cards]
    assert kinds[0] == ("dose_confirmation", "open")
    assert ("nasal_symptoms", "open") in kinds
    assert view.study_day == 1
    assert is_dosing_day(scheduled, date(2026, 3, 10)) and not is_dosing_day(scheduled, date(2026, 3, 11))


def test_a_paused_draft_comes_first_and_done_items_last(scheduled, entries, clock):
    view = today_view(scheduled, clock.now())
    dose_card = view.cards[0]
    d = entries.start("dose_confirmation", dose_card.context())
    view = today_view(scheduled, clock.now())
    assert view.cards[0].draft is not None and view.cards[0].draft.id == d.id
    entries.submit(fill_dose(entries), "en")
    for c in today_view(scheduled, clock.now()).cards:
        if c.key == "dose:1":
            assert c.status == "done"
    doses = planned_doses(scheduled, clock.now())
    assert [x["planned_date"] for x in doses] == [date(2026, 3, 10), date(2026, 3, 13),
                                                   date(2026, 3, 17), date(2026, 3, 20)]


def test_status_sentence_counts_waiting_and_warns_after_a_day(paired, entries, clock):
    entries.submit(fill_alsfrs(entries), "en")
    entries.submit(fill_nasal(entries), "en")
    now = clock.now()
    st = sync_status(paired, now)
    assert st.waiting == 2 and not st.overdue
    assert st.sentence(now, "en") == "2 entries waiting since today 09:30 — not yet received by the site"
    later = now + timedelta(hours=25)
    st = sync_status(paired, later)
    assert st.overdue
    assert "more than a day" in st.sentence(later, "en")
    assert "超过一天" in st.sentence(later, "zh-CN")


def test_status_names_the_last_receipt(paired, entries, clock):
    e = entries.submit(fill_alsfrs(entries), "en").entry
    paired.outbox.record([Outcome(e.id, "received", "accepted",
                                  {"server_seq": 1, "received_at": "2026-03-08T12:03:00+00:00",
                                   "sha256": e.sha256})], "t")
    st = sync_status(paired, clock.now())
    assert st.sentence(clock.now(), "en") == "Nothing waiting — last received by the site Sunday 20:03"


def test_reminders_show_once_and_catch_up_at_start(scheduled, clock):
    notifier = Notifier()
    svc = ReminderService(scheduled, clock, notifier)
    clock.set(datetime(2026, 3, 10, 8, 0, tzinfo=BEIJING))
    assert svc.check() == []
    # the program was closed at 09:00 and at 20:00; it starts at 21:00
    clock.set(datetime(2026, 3, 10, 21, 0, tzinfo=BEIJING))
    shown = svc.check()
    assert {r.name for r in shown} == {"dose", "diary", "alsfrs"}   # baseline open on day 1
    assert notifier.delivered == shown
    assert svc.check() == []


def test_reminder_for_a_done_item_is_not_shown(scheduled, entries, clock):
    entries.submit(fill_dose(entries), "en")
    clock.set(datetime(2026, 3, 10, 9, 30, tzinfo=BEIJING))
    shown = ReminderService(scheduled, clock, Notifier()).check()
    assert "dose" not in {r.name for r in shown}


def test_unsent_reminder_after_a_day(paired, entries, clock):
    entries.submit(fill_alsfrs(entries), "en")
    clock.advance(hours=25)
    shown = ReminderService(paired, clock, Notifier()).check()
    assert [r.name for r in shown] == ["unsent"]


def test_history_pins_attention_and_groups_by_week(paired, entries):
    a = entries.submit(fill_alsfrs(entries, score=3), "en").entry
    n = entries.submit(fill_nasal(entries, day="2026-03-02"), "en").entry
    d = entries.submit(fill_dose(entries), "en").entry
    paired.outbox.record([Outcome(d.id, "needs_attention", "conflict", None, "x")], "t")
    attention, weeks = history(paired)
    assert [e.id for e in attention] == [d.id]
    assert [w.start for w in weeks] == [date(2026, 3, 9), date(2026, 3, 2)]
    assert [e.id for e in weeks[0].entries] == [a.id] and weeks[1].entries[0].id == n.id
    assert alsfrs_series(paired)[0][1].total == 36


def test_a_day1_confirmed_by_staff_is_the_devices_study_day_1(paired):
    from datetime import date

    from desktop.services.today import timeline_of
    from desktop.sync.changes import TIMELINE_KEYS
    assert "day1_confirmed" in TIMELINE_KEYS
    paired.settings.set("timeline", {"first_dose_date": "2026-03-10", "tz": "Asia/Shanghai",
                                     "dose1_administered_at": "2026-03-09T09:00:00+08:00",
                                     "day1_confirmed": "2026-03-10"})
    tl = timeline_of(paired)
    assert tl.day1 == date(2026, 3, 10) and tl.study_day(date(2026, 3, 9)) == -1
