"""Validation of records on the wire (contract §1), shared by client and server.

:func:`load_record` is the single entry point: it validates an envelope and its payload, collects
every problem (not only the first) and returns a :class:`ValidRecord`, or raises
:class:`marshmallow.ValidationError` whose ``messages`` is the contract's flat error list under the
key ``"errors"``. It never reads a wall clock.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from marshmallow import Schema, ValidationError

from shared.canonical import record_sha256, strip_server_fields
from shared.errors import FieldError
from shared.instruments import known_instrument_versions
from shared.schemas.records import (
    PAYLOAD_RULES, PAYLOAD_SCHEMAS, EnvelopeSchema, envelope_rules, time_range_rules,
)

__all__ = ["ValidRecord", "load_record", "flatten_errors", "record_errors", "ValidationError"]

_schemas = threading.local()


def _schema(cls: type[Schema]) -> Schema:
    """One instance per schema class and thread: building a marshmallow schema deep-copies its
    fields, which cost more than loading a record with it."""
    cache = _schemas.__dict__.setdefault("by_class", {})
    if cls not in cache:
        cache[cls] = cls()
    return cache[cls]


class ValidRecord(dict):
    """The envelope as received (server-only fields dropped), plus what validation learned.

    Attributes: ``sha256`` (contract §1 canonical hash), ``parsed`` (envelope with datetimes/dates
    parsed, payload under ``parsed["payload"]``) and ``labels`` (facts that never reject a record,
    such as an unknown instrument version or a dose number the protocol does not schedule).
    """

    sha256: str
    parsed: dict[str, Any]
    labels: list[str]


def flatten_errors(messages: Any, prefix: str = "") -> list[FieldError]:
    """Turn marshmallow's nested ``{"field": ["rule|message"]}`` into the contract's flat list."""
    out: list[FieldError] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(flatten_errors(value, name))
    elif isinstance(messages, (list, tuple)):
        for value in messages:
            out.extend(flatten_errors(value, prefix))
    else:
        text = str(messages)
        rule, _, message = text.partition("|") if "|" in text else ("invalid", "", text)
        out.append(FieldError(prefix or "_record", rule, message or rule))
    return out


def record_errors(envelope: Any, *, protocol: Any = None,
                  sha256: str | None = None) -> tuple[ValidRecord | None, list[FieldError]]:
    """Validate; return ``(record, [])`` or ``(None, errors)``. Never raises for bad input.

    ``sha256``: the envelope's :func:`shared.canonical.record_sha256` when the caller already has it
    (the server hashes every upload before validating it); otherwise it is computed here.
    """
    if not isinstance(envelope, Mapping):
        return None, [FieldError("_record", "type.object", "A record must be a JSON object.")]
    raw = strip_server_fields(envelope)
    errors: list[FieldError] = []
    try:
        env = _schema(EnvelopeSchema).load(raw)
    except ValidationError as exc:
        errors.extend(flatten_errors(exc.messages))
        env = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    payload: dict[str, Any] = {}
    rtype = env.get("type")
    if rtype in PAYLOAD_SCHEMAS and isinstance(raw.get("payload"), dict):
        try:
            payload = _schema(PAYLOAD_SCHEMAS[rtype]).load(raw["payload"])
        except ValidationError as exc:
            errors.extend(flatten_errors(exc.messages, "payload"))
            payload = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        rule = PAYLOAD_RULES.get(rtype)
        if rule:
            errors.extend(rule(raw["payload"]))
    errors.extend(envelope_rules(env, payload))
    errors.extend(time_range_rules(env, payload, _time_range(protocol)))
    if errors:
        # one entry per (field, rule): a cross-field rule may restate a field-level finding
        seen: set[tuple[str, str]] = set()
        unique = [e for e in errors if (e.field, e.rule) not in seen and not seen.add((e.field, e.rule))]
        return None, unique
    record = ValidRecord(raw)
    record.sha256 = sha256 or record_sha256(raw)
    record.parsed = {**env, "payload": payload}
    record.labels = record_labels(record, protocol)
    return record, []


def _time_range(protocol: Any):
    from shared.protocol import default_time_range

    rng = getattr(protocol, "record_time_range", None)
    return rng if rng is not None else default_time_range()


def load_record(envelope: Mapping[str, Any], *, protocol: Any = None) -> ValidRecord:
    """Validate an envelope; return the :class:`ValidRecord` or raise ``ValidationError``.

    The raised error's ``messages`` is ``{"errors": [{"field", "rule", "message"}, …]}``.
    """
    record, errors = record_errors(envelope, protocol=protocol)
    if record is None:
        raise ValidationError({"errors": [e.as_dict() for e in errors]})
    return record


def record_labels(record: ValidRecord, protocol: Any = None) -> list[str]:
    """Labels that depend only on the record and the protocol file (timing labels need a participant)."""
    labels = []
    if record["instrument_version"] not in known_instrument_versions():
        labels.append("unknown_instrument_version")
    if protocol is not None and record["type"] == "dose_confirmation":
        n = record["payload"]["dose_number"]
        if n > protocol.dose_count:
            labels.append("unscheduled_dose_number")
    return labels
