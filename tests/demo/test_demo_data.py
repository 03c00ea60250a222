"""The synthetic demo history is valid, deterministic and shows what the demo promises."""

from datetime import datetime, timezone

from server.demo.data import build_demo_history
from shared.flags import evaluate_flags  # noqa: F401  (imported to prove the flag rules exist)
from shared.protocol import load_protocol
from shared.schemas import record_errors

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)


def test_every_demo_record_is_valid_and_device_seq_is_gap_free():
    people = build_demo_history(load_protocol(), NOW)
    assert len(people) == 11
    for p in people:
        for dev in p.devices:
            assert [r["device_seq"] for r in dev.records] == list(range(1, len(dev.records) + 1))
            for r in dev.records:
                rec, errors = record_errors(r)
                assert not errors, (p.subject, r["type"], errors)
                assert r["participant"] == p.subject


def test_history_is_deterministic_and_never_in_the_future():
    a = build_demo_history(load_protocol(), NOW)
    b = build_demo_history(load_protocol(), NOW)
    assert [[r["id"] for d in p.devices for r in d.records] for p in a] == \
           [[r["id"] for d in p.devices for r in d.records] for p in b]
    for p in a:
        for d in p.devices:
            for r in d.records:
                assert datetime.fromisoformat(r["entered_at"]) <= NOW


def test_four_weeks_of_history_and_a_baseline_for_the_not_yet_dosed():
    people = {p.subject: p for p in build_demo_history(load_protocol(), NOW)}
    first = people["001-001"]
    nasal = [r for d in first.devices for r in d.records if r["type"] == "nasal_symptoms"]
    assert len(nasal) >= 20
    waiting = people["001-006"]
    assert [r["type"] for d in waiting.devices for r in d.records] == ["alsfrs_r"]


def test_each_story_raises_the_flags_it_promises():
    from datetime import datetime as dt

    from shared.flags import evaluate_flags
    from shared.schedule import Timeline

    protocol = load_protocol()
    expected = {"001-001": set(), "001-002": {"dose_missed", "epistaxis"}, "001-003": {"allergic_after_dose"},
                "001-004": {"alsfrs_drop", "respiratory_item_low"},
                "001-005": {"cough_choking_dosing", "second_diary_same_day"}, "001-006": set(),
                # issue 10: one participant per new rule (day1_to_confirm and a dose never confirmed
                # are schedule flags of the server, checked in tests/demo/test_demo_cli.py)
                "001-007": {"respiratory_critical", "respiratory_item_low"},
                "001-008": {"allergic_in_dlt_window"},
                "001-009": {"swallowing_tube_feeding", "alsfrs_scale_switch", "alsfrs_drop", "respiratory_item_low",
                            "respiratory_critical"},
                "001-010": {"dose_off_schedule"},
                "001-011": {"second_diary_same_day", "epistaxis"}}
    for p in build_demo_history(protocol, NOW):
        records = [r for d in p.devices for r in d.records]
        dose1 = [r["payload"]["administered_at"] for r in records
                 if r["type"] == "dose_confirmation" and r["payload"]["dose_number"] == 1 and r["payload"]["given"]]
        tl = Timeline(p.first_dose_date, p.tz, dt.fromisoformat(dose1[0]) if dose1 else None)
        assert {f.rule for f in evaluate_flags(protocol, tl, records)} == expected[p.subject], p.subject
