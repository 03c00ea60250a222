"""Every flag has bilingual wording a reviewer can read without the code."""

from __future__ import annotations

import re

import pytest

from server.exports.dataset import current_envelope, participant_timeline, records_by_participant
from shared.flags import NOTE_NO_BASELINE, RULES, describe_flag, describe_note, evaluate_flags
from shared.messages import catalogue, t
from shared.protocol import load_protocol
from tests.exports.factories import make_dataset

CJK = re.compile(r"[\u4e00-\u9fff]")


def all_flags():
    ds, protocol = make_dataset(), load_protocol()
    by = records_by_participant(ds)
    out = []
    for part in ds["participants"]:
        recs = by[part["subject"]]
        out.append(evaluate_flags(protocol, participant_timeline(part, recs), [current_envelope(r) for r in recs]))
    return out


def issue10_flags():
    """The rules added by issue 10, each raised once (the synthetic export site predates them)."""
    from datetime import date

    from shared.schedule import Timeline
    from tests.exports.factories import RecordMaker, alsfrs_items, at, symptoms

    mk = RecordMaker("P-010")
    recs = [mk.dose(1, date(2026, 3, 2), at(2026, 3, 2, 9)),
            mk.dose(2, date(2026, 3, 5), at(2026, 3, 3, 9)),                       # early, too close
            mk.alsfrs(at(2026, 2, 27, 10), alsfrs_items()),
            mk.alsfrs(at(2026, 3, 9, 20), alsfrs_items(i3=1, i10=1, i4=2)),         # breathing, swallowing
            mk.nasal(date(2026, 3, 10), at(2026, 3, 10, 21), symptoms(allergic_signs=2))]
    tl = Timeline(date(2026, 3, 2), "Asia/Shanghai", at(2026, 3, 2, 9))
    return [evaluate_flags(load_protocol(), tl, recs)]


@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_has_a_title_and_explanation_in_both_languages(rule):
    for suffix in ("title", "explanation"):
        texts = catalogue()[f"flag.{rule}.{suffix}"]
        assert texts["en"].strip() and CJK.search(texts["zh-CN"])


def test_every_flag_of_the_synthetic_site_reads_fully_in_both_languages():
    lists = all_flags() + issue10_flags()
    rules_seen = {f.rule for fl in lists for f in fl}
    assert rules_seen == set(RULES)
    for fl in lists:
        for flag in fl:
            for lang in ("en", "zh-CN"):
                d = describe_flag(flag, lang)
                text = " ".join([d["title"], d["explanation"], *d["extra"], d["severity"]])
                assert "{" not in text and "flag." not in text, text
                if lang == "zh-CN":
                    assert CJK.search(d["explanation"])
                if "date" in flag.detail:
                    assert flag.detail["date"] in d["explanation"]
                if "threshold" in flag.detail:
                    assert str(flag.detail["threshold"]) in d["explanation"]


def test_symptom_names_and_reasons_are_translated():
    flags = [f for fl in all_flags() for f in fl]
    severe = next(f for f in flags if f.rule == "symptom_severe")
    assert "头痛" in describe_flag(severe, "zh-CN")["explanation"]
    assert "Headache" in describe_flag(severe, "en")["explanation"]
    missed = next(f for f in flags if f.rule == "dose_missed")
    assert "身体不舒服" in describe_flag(missed, "zh-CN")["explanation"]


def test_the_no_baseline_note_says_the_drop_flag_is_off():
    notes = [fl.notes for fl in all_flags()]
    assert notes == [(), (), (NOTE_NO_BASELINE,)]
    assert "baseline" in describe_note(NOTE_NO_BASELINE, "en") and "基线" in describe_note(NOTE_NO_BASELINE, "zh-CN")
    assert t("flag.severity.high", "zh-CN") == "高"


def test_flags_are_plain_json_for_storage_and_pages():
    import json

    for fl in all_flags():
        for flag in fl:
            assert json.loads(json.dumps(flag.as_dict())) == flag.as_dict()
        if fl.baseline is not None:
            assert json.loads(json.dumps(fl.baseline.as_dict()))["total"] == fl.baseline.total
