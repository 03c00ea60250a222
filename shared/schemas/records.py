"""marshmallow schemas for the record envelope and the three payloads (contract §1).

Field-level rules live on the fields; rules that tie fields together are plain functions below that
return :class:`FieldError` lists, so that every problem is reported, not only the first. Nothing
here reads a wall clock: the same envelope validates the same on the client, the server and replay.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

from shared.errors import FieldError
from shared.schemas.fields import (
    AwareDateTime, Choice, DateString, JSONObject, StrictBool, StrictInt, StrictNumber, Text,
    UniqueChoiceList, UUIDString,
)
from shared.vocab import (
    ADMINISTERED_BY, ALSFRS_ALL_KEYS, LOSS_REASONS, MISSED_REASONS, NASAL_SYMPTOMS, NOSTRILS,
    NOTES_MAX, NULLABLE_SYMPTOMS, RECORD_TYPES, RESPONDENTS, SHORT_TEXT_MAX, VOLUMES,
)

KNOWN_SCHEMA_VERSIONS = {"alsfrs_r": {1}, "nasal_symptoms": {1}, "dose_confirmation": {1}}
#: how far ``administered_at`` may lie after the record's own ``entered_at``
ADMINISTERED_AFTER_ENTRY_TOLERANCE = timedelta(minutes=5)

_SCHEMA_MESSAGES = {
    "unknown": "unknown_field|Unknown field.",
    "type": "type.object|Must be a JSON object.",
}


class StrictSchema(Schema):
    """A schema that refuses unknown fields and non-object input with rule-coded messages."""

    error_messages = _SCHEMA_MESSAGES

    class Meta:
        unknown = RAISE


class EnvelopeSchema(StrictSchema):
    id = UUIDString(required=True)
    type = Choice(RECORD_TYPES, required=True)
    schema_version = StrictInt(lo=1, required=True)
    instrument_version = Text(max_length=200, allow_empty=False, required=True)
    participant = Text(max_length=64, allow_empty=False, required=True)
    respondent = Choice(RESPONDENTS, required=True)
    event_time = AwareDateTime(required=True)
    entered_at = AwareDateTime(required=True)
    clock_offset_s = StrictNumber(allow_none=True, load_default=None)
    device_seq = StrictInt(lo=1, required=True)
    payload = JSONObject(required=True)


class _AlsfrsItems(JSONObject):
    """``{"1": 0..4, …}``: known keys only, integer scores 0–4; completeness is a cross-field rule."""

    def _deserialize(self, value, attr, data, **kw):
        value = super()._deserialize(value, attr, data, **kw)
        errors: dict[str, list[str]] = {}
        for key, score in value.items():
            if key not in ALSFRS_ALL_KEYS:
                errors[key] = ["unknown_field|Unknown item; items are 1–12 with 5a or 5b."]
            elif isinstance(score, bool) or not isinstance(score, int):
                errors[key] = ["type.integer|Must be a whole number."]
            elif not 0 <= score <= 4:
                errors[key] = ["range|Must be between 0 and 4."]
        if errors:
            raise ValidationError(errors)
        return value


class _ItemRespondents(JSONObject):
    def _deserialize(self, value, attr, data, **kw):
        value = super()._deserialize(value, attr, data, **kw)
        errors = {}
        for key, who in value.items():
            if key not in ALSFRS_ALL_KEYS:
                errors[key] = ["unknown_field|Unknown item; items are 1–12 with 5a or 5b."]
            elif who not in RESPONDENTS:
                errors[key] = [f"one_of|Must be one of: {', '.join(RESPONDENTS)}."]
        if errors:
            raise ValidationError(errors)
        return value


class AlsfrsPayload(StrictSchema):
    gastrostomy = StrictBool(required=True)
    items = _AlsfrsItems(required=True)
    item_respondent = _ItemRespondents()


class _Symptoms(JSONObject):
    def _deserialize(self, value, attr, data, **kw):
        value = super()._deserialize(value, attr, data, **kw)
        errors: dict[str, list[str]] = {}
        for name in NASAL_SYMPTOMS:
            if name not in value:
                errors[name] = ["required|Missing data for required field."]
        for name, grade in value.items():
            if name not in NASAL_SYMPTOMS:
                errors[name] = ["unknown_field|Unknown symptom."]
            elif grade is None:
                if name not in NULLABLE_SYMPTOMS:
                    errors[name] = ["null|May not be null."]
            elif isinstance(grade, bool) or not isinstance(grade, int):
                errors[name] = ["type.integer|Must be a whole number."]
            elif not 0 <= grade <= 3:
                errors[name] = ["range|Must be between 0 and 3."]
        if errors:
            raise ValidationError(errors)
        return value


class NasalPayload(StrictSchema):
    date = DateString(required=True)
    symptoms = _Symptoms(required=True)
    epistaxis_needed_help = StrictBool(required=True)
    sought_medical_care = StrictBool(required=True)
    notes = Text(max_length=NOTES_MAX)


class NostrilSchema(StrictSchema):
    given = StrictBool(required=True)
    volume = Choice(VOLUMES, required=True, allow_none=True)
    retained = StrictBool(required=True, allow_none=True)


class NostrilsSchema(StrictSchema):
    left = fields.Nested(NostrilSchema, required=True)
    right = fields.Nested(NostrilSchema, required=True)


class DosePayload(StrictSchema):
    dose_number = StrictInt(lo=1, required=True)
    planned_date = DateString(required=True)
    given = StrictBool(required=True)
    administered_at = AwareDateTime(required=True, allow_none=True)
    administered_by = Choice(ADMINISTERED_BY, required=True)
    nostrils = fields.Nested(NostrilsSchema, required=True)
    loss = UniqueChoiceList(LOSS_REASONS, required=True)
    missed_reason = Choice(MISSED_REASONS, required=True, allow_none=True)
    missed_reason_text = Text(max_length=SHORT_TEXT_MAX)
    kit_number = Text(max_length=64, required=True)
    concomitant_nasal_products = Text(max_length=SHORT_TEXT_MAX)
    notes = Text(max_length=NOTES_MAX)


PAYLOAD_SCHEMAS: dict[str, type[StrictSchema]] = {
    "alsfrs_r": AlsfrsPayload,
    "nasal_symptoms": NasalPayload,
    "dose_confirmation": DosePayload,
}

# Nested schemas do not inherit class-level error_messages for their own "type" error; fix that.
for _schema in (NostrilSchema, NostrilsSchema):
    _schema.error_messages = _SCHEMA_MESSAGES
fields.Nested.default_error_messages = {
    **fields.Nested.default_error_messages,
    "type": "type.object|Must be a JSON object.",
    "required": "required|Missing data for required field.",
    "null": "null|May not be null.",
}


def _fe(field: str, rule: str, message: str) -> FieldError:
    return FieldError(field, rule, message)


# --- cross-field rules ---------------------------------------------------------------------------

def alsfrs_rules(p: dict[str, Any]) -> list[FieldError]:
    out: list[FieldError] = []
    items = p.get("items")
    if not isinstance(items, dict):
        return out
    has_a, has_b = "5a" in items, "5b" in items
    if has_a and has_b:
        out.append(_fe("payload.items.5b", "item5_exclusive",
                       "Score item 5a (no gastrostomy) or 5b (gastrostomy), not both."))
    elif not has_a and not has_b:
        out.append(_fe("payload.items.5a", "required", "Item 5a or 5b must be scored."))
    g = p.get("gastrostomy")
    if isinstance(g, bool) and has_a != has_b:
        if g and has_a:
            out.append(_fe("payload.items.5a", "item5_gastrostomy",
                           "With a gastrostomy, item 5b is scored instead of 5a."))
        if not g and has_b:
            out.append(_fe("payload.items.5b", "item5_gastrostomy",
                           "Without a gastrostomy, item 5a is scored instead of 5b."))
    for key in ("1", "2", "3", "4", "6", "7", "8", "9", "10", "11", "12"):
        if key not in items:
            out.append(_fe(f"payload.items.{key}", "required", "Missing data for required field."))
    who = p.get("item_respondent")
    if isinstance(who, dict):
        for key in who:
            if key in ALSFRS_ALL_KEYS and key not in items:
                out.append(_fe(f"payload.item_respondent.{key}", "item_not_scored",
                               "Names an item that was not answered."))
    return out


def dose_rules(p: dict[str, Any]) -> list[FieldError]:
    out: list[FieldError] = []
    nostrils = p.get("nostrils")
    sides: dict[str, dict[str, Any]] = {}
    if isinstance(nostrils, dict):
        sides = {s: nostrils[s] for s in NOSTRILS
                 if isinstance(nostrils.get(s), dict) and isinstance(nostrils[s].get("given"), bool)}
    complete = len(sides) == 2
    for side, n in sides.items():
        base = f"payload.nostrils.{side}"
        if n["given"]:
            for key in ("volume", "retained"):
                if key in n and n[key] is None:
                    out.append(_fe(f"{base}.{key}", "required_when_given",
                                   f"A given nostril needs its {key}."))
        else:
            for key in ("volume", "retained"):
                if n.get(key) is not None:
                    out.append(_fe(f"{base}.{key}", "null_when_not_given",
                                   f"A nostril that was not given has no {key} (a missed dose is never a zero volume)."))
    given = p.get("given")
    if complete and isinstance(given, bool):
        any_given = any(n["given"] for n in sides.values())
        if given != any_given:
            out.append(_fe("payload.given", "given_consistency",
                           "given must be true exactly when at least one nostril was given."))
    if isinstance(given, bool) and "administered_at" in p:
        if given and p["administered_at"] is None:
            out.append(_fe("payload.administered_at", "required_when_given",
                           "A given dose needs the time it was given."))
        if not given and p["administered_at"] is not None:
            out.append(_fe("payload.administered_at", "null_when_not_given",
                           "A dose that was not given has no administration time."))
    if complete and "missed_reason" in p:
        all_given = all(n["given"] for n in sides.values())
        reason = p["missed_reason"]
        if not all_given and reason is None:
            out.append(_fe("payload.missed_reason", "required_when_missed",
                           "A dose with a nostril not given needs a reason."))
        if all_given and reason is not None:
            out.append(_fe("payload.missed_reason", "null_when_given",
                           "Both nostrils were given, so there is no missed reason."))
        if reason == "other" and not str(p.get("missed_reason_text") or "").strip():
            out.append(_fe("payload.missed_reason_text", "required_for_other",
                           "Describe the reason when it is 'other'."))
    loss = p.get("loss")
    if complete and isinstance(loss, list):
        lost = any(n["given"] and n.get("retained") is False for n in sides.values())
        if lost and not loss:
            out.append(_fe("payload.loss", "loss_consistency",
                           "Say how the dose was lost when a nostril did not retain it."))
        if loss and not lost:
            out.append(_fe("payload.loss", "loss_consistency",
                           "A loss is listed only when a given nostril did not retain the dose."))
    return out


def midnight_at_offset(day: date, reference: datetime) -> datetime:
    """00:00 of ``day`` at the UTC offset of ``reference`` (contract §1, event_time)."""
    return datetime.combine(day, time(0, 0), tzinfo=reference.tzinfo)


def envelope_rules(env: dict[str, Any], payload: dict[str, Any]) -> list[FieldError]:
    """Rules tying the envelope to its payload; ``env``/``payload`` hold parsed values that passed."""
    out: list[FieldError] = []
    rtype, entered, event = env.get("type"), env.get("entered_at"), env.get("event_time")
    if rtype and "schema_version" in env and env["schema_version"] not in KNOWN_SCHEMA_VERSIONS[rtype]:
        out.append(_fe("schema_version", "unknown_schema_version",
                       f"Schema version {env['schema_version']} of {rtype} is not known to this software."))
    if entered is None or event is None or rtype is None:
        expected = None
    elif rtype == "alsfrs_r":
        expected = entered
    elif rtype == "nasal_symptoms":
        expected = midnight_at_offset(payload["date"], entered) if "date" in payload else None
    else:
        given = payload.get("given")
        if given is True:
            expected = payload.get("administered_at")
        elif given is False and "planned_date" in payload:
            expected = midnight_at_offset(payload["planned_date"], entered)
        else:
            expected = None
    if expected is not None and event != expected:
        out.append(_fe("event_time", "event_time_mismatch", {
            "alsfrs_r": "event_time must equal entered_at.",
            "nasal_symptoms": "event_time must be 00:00 of the diary date at the offset of entered_at.",
            "dose_confirmation": "event_time must equal administered_at, or 00:00 of planned_date when missed.",
        }[rtype]))
    adm = payload.get("administered_at") if rtype == "dose_confirmation" else None
    if adm is not None and entered is not None and adm > entered + ADMINISTERED_AFTER_ENTRY_TOLERANCE:
        out.append(_fe("payload.administered_at", "after_entered_at",
                       "The dose cannot be given more than 5 minutes after the entry was submitted."))
    return out


#: the record's date-times and dates: (field name in errors, where it is, key)
_TIME_FIELDS = (("event_time", "env", "event_time"), ("entered_at", "env", "entered_at"),
                ("payload.administered_at", "payload", "administered_at"),
                ("payload.date", "payload", "date"), ("payload.planned_date", "payload", "planned_date"))


def time_range_rules(env: dict[str, Any], payload: dict[str, Any], rng: Any) -> list[FieldError]:
    """Every date and date-time within the protocol's ``[record_times]`` (``rng``: a
    :class:`shared.protocol.TimeRange`); ``clock_offset_s`` within the span of that range.

    A value outside would be a clock years off or a forged record; it is rejected per record
    (quarantined for staff) instead of reaching exports and reports that cannot place it."""
    out: list[FieldError] = []
    lo, hi = rng.earliest.isoformat(), rng.latest.isoformat()
    for name, where, key in _TIME_FIELDS:
        value = (env if where == "env" else payload).get(key)
        if value is None:
            continue
        day = value.date() if isinstance(value, datetime) else value
        if isinstance(day, date) and not rng.earliest <= day <= rng.latest:
            out.append(_fe(name, "range.datetime", f"The date must be between {lo} and {hi}."))
        if isinstance(value, datetime):
            minutes = value.utcoffset().total_seconds() / 60
            if not rng.min_offset_minutes <= minutes <= rng.max_offset_minutes:
                out.append(_fe(name, "range.utc_offset", "The UTC offset must be between -12:00 and +14:00."))
    offset = env.get("clock_offset_s")
    if isinstance(offset, (int, float)) and abs(offset) > rng.span_seconds:
        out.append(_fe("clock_offset_s", "range", f"Must be between -{rng.span_seconds} and {rng.span_seconds}."))
    return out


PAYLOAD_RULES = {"alsfrs_r": alsfrs_rules, "dose_confirmation": dose_rules}
