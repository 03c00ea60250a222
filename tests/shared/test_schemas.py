"""The record envelope and the three payloads (contract §1): every rule names its field and rule."""

import json

import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import ValidationError

from shared.canonical import canonical_bytes, record_sha256
from shared.protocol import load_protocol
from shared.schemas import load_record, record_errors
from tests.shared import factories as f


def errors_of(env, **kw):
    record, errors = record_errors(env, **kw)
    assert record is None, "expected the record to be refused"
    return {(e.field, e.rule) for e in errors}


@pytest.mark.parametrize("env", [f.alsfrs(), f.alsfrs(2, gastrostomy=True), f.nasal(), f.dose(),
                                 f.dose(given=False), f.nasal(grades={"cough_choking_dosing": None})])
def test_valid_records_load_and_round_trip(env):
    rec = load_record(env)
    assert dict(rec) == env                     # values exactly as received
    assert rec.sha256 == record_sha256(env)
    again = load_record(json.loads(json.dumps(rec)))
    assert again.sha256 == rec.sha256


def test_server_only_fields_are_dropped_not_refused_and_not_hashed():
    env = f.nasal()
    sent = {**env, "received_at": "x", "server_seq": 9, "receipt": {"a": 1}}
    rec = load_record(sent)
    assert "received_at" not in rec and rec.sha256 == record_sha256(env)


def test_canonical_form_is_sorted_compact_utf8():
    env = f.nasal(notes="鼻子有点痒")
    env["payload"]["notes"] = "鼻子有点痒"
    raw = canonical_bytes(env)
    assert raw.startswith(b'{"clock_offset_s":') and b", " not in raw
    assert "鼻子有点痒".encode() in raw


def test_timestamps_hash_as_sent_not_reformatted():
    a = f.alsfrs(entered_at="2026-03-10T09:30:00+08:00")
    b = f.mutate(a, "entered_at", "2026-03-10T01:30:00Z")
    b["event_time"] = b["entered_at"]
    assert load_record(a).sha256 != load_record(b).sha256


@pytest.mark.parametrize("path,value,field,rule", [
    ("extra", 1, "extra", "unknown_field"),
    ("payload.extra", 1, "payload.extra", "unknown_field"),
    ("id", "not-a-uuid", "id", "format.uuid"),
    ("type", "diary", "type", "one_of"),
    ("schema_version", "1", "schema_version", "type.integer"),
    ("schema_version", 99, "schema_version", "unknown_schema_version"),
    ("device_seq", 0, "device_seq", "range"),
    ("device_seq", True, "device_seq", "type.integer"),
    ("respondent", "nurse", "respondent", "one_of"),
    ("entered_at", "2026-03-10T09:30:00", "entered_at", "format.datetime"),
    ("participant", "", "participant", "empty"),
    ("clock_offset_s", "0", "clock_offset_s", "type.number"),
    ("payload", [], "payload", "type.object"),
    ("payload.gastrostomy", "no", "payload.gastrostomy", "type.boolean"),
    ("payload.items.3", 5, "payload.items.3", "range"),
    ("payload.items.3", -1, "payload.items.3", "range"),
    ("payload.items.3", 2.0, "payload.items.3", "type.integer"),
    ("payload.items.3", ..., "payload.items.3", "required"),
    ("payload.items.5b", 4, "payload.items.5b", "item5_exclusive"),
    ("payload.items.13", 4, "payload.items.13", "unknown_field"),
    ("payload.item_respondent", {"3": "friend"}, "payload.item_respondent.3", "one_of"),
    ("event_time", "2026-03-10T09:31:00+08:00", "event_time", "event_time_mismatch"),
])
def test_alsfrs_envelope_rules(path, value, field, rule):
    assert (field, rule) in errors_of(f.mutate(f.alsfrs(), path, value))


def test_item5_must_follow_gastrostomy():
    env = f.mutate(f.alsfrs(), "payload.gastrostomy", True)
    assert ("payload.items.5a", "item5_gastrostomy") in errors_of(env)
    env = f.mutate(f.alsfrs(gastrostomy=True), "payload.gastrostomy", False)
    assert ("payload.items.5b", "item5_gastrostomy") in errors_of(env)
    env = f.mutate(f.alsfrs(), "payload.items.5a", ...)
    assert ("payload.items.5a", "required") in errors_of(env)


def test_every_problem_is_listed_not_only_the_first():
    env = f.mutate(f.alsfrs(), "payload.items.1", 9)
    env = f.mutate(env, "payload.items.2", ...)
    env = f.mutate(env, "respondent", "x")
    env["surprise"] = True
    found = errors_of(env)
    assert {("payload.items.1", "range"), ("payload.items.2", "required"), ("respondent", "one_of"),
            ("surprise", "unknown_field")} <= found


@pytest.mark.parametrize("path,value,field,rule", [
    ("payload.date", "2026-3-10", "payload.date", "format.date"),
    ("payload.symptoms.headache", 4, "payload.symptoms.headache", "range"),
    ("payload.symptoms.headache", None, "payload.symptoms.headache", "null"),
    ("payload.symptoms.headache", ..., "payload.symptoms.headache", "required"),
    ("payload.symptoms.hiccups", 1, "payload.symptoms.hiccups", "unknown_field"),
    ("payload.sought_medical_care", 0, "payload.sought_medical_care", "type.boolean"),
    ("payload.notes", "x" * 2001, "payload.notes", "length"),
    ("event_time", "2026-03-10T00:00:00+00:00", "event_time", "event_time_mismatch"),
])
def test_nasal_rules(path, value, field, rule):
    assert (field, rule) in errors_of(f.mutate(f.nasal(), path, value))


def test_nasal_midnight_is_at_the_offset_of_entered_at():
    env = f.nasal(day="2026-03-09", entered_at="2026-03-10T01:00:00-05:00")
    assert env["event_time"] == "2026-03-09T00:00:00-05:00"
    load_record(env)


def _dose_with(**nostrils):
    env = f.dose()
    for side, value in nostrils.items():
        env["payload"]["nostrils"][side] = value
    return env


@pytest.mark.parametrize("build,field,rule", [
    # administered after entered_at + 5 min
    (lambda: f.dose(administered_at="2026-03-10T09:35:01+08:00"), "payload.administered_at", "after_entered_at"),
    # missed dose without a reason
    (lambda: f.mutate(f.dose(given=False), "payload.missed_reason", None), "payload.missed_reason", "required_when_missed"),
    # 'other' needs text
    (lambda: f.mutate(f.dose(given=False), "payload.missed_reason", "other"), "payload.missed_reason_text", "required_for_other"),
    # given dose with a missed reason
    (lambda: f.mutate(f.dose(), "payload.missed_reason", "forgot"), "payload.missed_reason", "null_when_given"),
    # given=true but no nostril given
    (lambda: f.mutate(f.dose(given=False), "payload.given", True), "payload.given", "given_consistency"),
    # given without a time
    (lambda: f.mutate(f.dose(), "payload.administered_at", None), "payload.administered_at", "required_when_given"),
    # a missed dose with a time
    (lambda: f.mutate(f.dose(given=False), "payload.administered_at", "2026-03-10T09:00:00+08:00"),
     "payload.administered_at", "null_when_not_given"),
    # a nostril not given with a volume (a missed dose is never a zero volume)
    (lambda: _dose_with(left={"given": False, "volume": "partial", "retained": None}),
     "payload.nostrils.left.volume", "null_when_not_given"),
    # a given nostril without retained
    (lambda: _dose_with(right={"given": True, "volume": "full", "retained": None}),
     "payload.nostrils.right.retained", "required_when_given"),
    # not retained but no loss listed
    (lambda: _dose_with(right={"given": True, "volume": "full", "retained": False}), "payload.loss", "loss_consistency"),
    # loss listed but all retained
    (lambda: f.mutate(f.dose(), "payload.loss", ["sneezed"]), "payload.loss", "loss_consistency"),
    (lambda: f.mutate(f.dose(), "payload.loss", ["sneezed", "sneezed"]), "payload.loss.1", "duplicate"),
    (lambda: f.mutate(f.dose(), "payload.nostrils.left.volume", "0 mL"), "payload.nostrils.left.volume", "one_of"),
    (lambda: f.mutate(f.dose(), "payload.kit_number", ...), "payload.kit_number", "required"),
    (lambda: f.mutate(f.dose(), "payload.nostrils.middle", {}), "payload.nostrils.middle", "unknown_field"),
    (lambda: f.mutate(f.dose(), "event_time", "2026-03-10T00:00:00+08:00"), "event_time", "event_time_mismatch"),
    (lambda: f.mutate(f.dose(given=False), "event_time", "2026-03-10T09:00:00+08:00"), "event_time", "event_time_mismatch"),
])
def test_dose_rules(build, field, rule):
    assert (field, rule) in errors_of(build())


def test_administered_up_to_five_minutes_after_entry_is_accepted():
    load_record(f.dose(administered_at="2026-03-10T09:35:00+08:00"))


def test_partial_dose_with_one_nostril_lost_is_valid():
    env = _dose_with(left={"given": True, "volume": "partial", "retained": False},
                     right={"given": False, "volume": None, "retained": None})
    env["payload"].update(loss=["sneezed"], missed_reason="nasal_problem")
    load_record(env)


def test_load_record_raises_validation_error_with_the_contract_list():
    with pytest.raises(ValidationError) as exc:
        load_record(f.mutate(f.alsfrs(), "payload.items.1", 7))
    assert exc.value.messages["errors"][0] == {
        "field": "payload.items.1", "rule": "range", "message": "Must be between 0 and 4."}


def test_non_object_records_are_refused_without_raising():
    for thing in (None, [], "x", 3):
        rec, errs = record_errors(thing)
        assert rec is None and errs[0].rule == "type.object"


def test_labels_never_reject():
    env = f.alsfrs(instrument_version="alsfrs-r/other/xx/v9")
    assert load_record(env).labels == ["unknown_instrument_version"]
    rec = load_record(f.dose(n=5), protocol=load_protocol())
    assert "unscheduled_dose_number" in rec.labels
    assert load_record(f.dose(n=4), protocol=load_protocol()).labels == []


def test_validation_does_not_depend_on_the_current_date():
    # A wall-clock check ("not in the future", "not too old") would refuse one of these two: the
    # range is fixed by the protocol file ([record_times]), its first and last days both validate.
    from shared.protocol import default_time_range

    rng = default_time_range()
    for day in (rng.earliest.isoformat(), rng.latest.isoformat()):
        env = f.dose(planned=day, administered_at=f"{day}T00:01:00+08:00",
                     entered_at=f"{day}T09:30:00+08:00")
        assert load_record(env).sha256 == record_sha256(env)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False),
                         st.text(max_size=5))


@settings(max_examples=150, deadline=None)
@given(item=st.sampled_from(["1", "2", "5a", "10", "12"]), value=json_scalars)
def test_every_invalid_item_value_is_refused_with_its_field_named(item, value):
    env = f.mutate(f.alsfrs(), f"payload.items.{item}", value)
    valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4
    rec, errs = record_errors(env)
    if valid:
        assert rec is not None
    else:
        assert rec is None and f"payload.items.{item}" in {e.field for e in errs}


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["rhinorrhea", "epistaxis", "allergic_signs", "cough_choking_dosing"]),
       value=json_scalars)
def test_every_invalid_symptom_grade_is_refused_with_its_field_named(name, value):
    env = f.mutate(f.nasal(), f"payload.symptoms.{name}", value)
    ok = (value is None and name == "cough_choking_dosing") or (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3)
    rec, errs = record_errors(env)
    assert (rec is not None) == ok
    if not ok:
        assert f"payload.symptoms.{name}" in {e.field for e in errs}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@given(_json_values)
@settings(max_examples=300, deadline=None)
def test_the_one_canonical_encoder_writes_what_json_dumps_wrote(value):
    """``shared.canonical.canonical_json`` (one encoder for every call) is the canonical form the
    hashes and the audit chain were made with: ``json.dumps`` with sorted keys, compact separators
    and characters as they are, for any JSON value (non-ASCII, nested, numbers of every kind)."""
    from shared.canonical import canonical_json

    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
