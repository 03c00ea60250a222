"""Strict marshmallow fields whose error messages carry a rule code: ``"rule|human message"``.

JSON has no integer/boolean coercion in this contract: ``1.0``, ``"1"`` and ``true`` are not the
integer 1, and ``1`` is not the boolean true. :func:`shared.schemas.flatten_errors` splits the rule
from the message when building the contract's error list.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime
from typing import Any

from marshmallow import fields

#: the largest integer every JSON reader holds exactly (I-JSON, RFC 7493 §2.2) and SQLite stores
#: as INTEGER; integers and numbers beyond it are out of range wherever the contract takes a number
SAFE_INT = 2**53 - 1

BASE_MESSAGES = {
    "required": "required|Missing data for required field.",
    "null": "null|May not be null.",
    "validator_failed": "invalid|Invalid value.",
}


class _Rules(fields.Field):
    default_error_messages = BASE_MESSAGES


class StrictInt(_Rules, fields.Field):
    default_error_messages = {
        "type": "type.integer|Must be a whole number.",
        "range": "range|Must be between {lo} and {hi}.",
        "min": "range|Must be at least {lo}.",
    }

    def __init__(self, lo: int | None = None, hi: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.lo, self.hi = lo, hi

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("type")
        if self.lo is not None and self.hi is not None and not self.lo <= value <= self.hi:
            raise self.make_error("range", lo=self.lo, hi=self.hi)
        if self.lo is not None and value < self.lo:
            raise self.make_error("min", lo=self.lo)
        if not -SAFE_INT <= value <= SAFE_INT:
            raise self.make_error("range", lo=-SAFE_INT if self.lo is None else self.lo,
                                  hi=SAFE_INT if self.hi is None else self.hi)
        return value


class StrictNumber(_Rules, fields.Field):
    """A finite number; ``1e400`` (read as infinity) and integers beyond ``SAFE_INT`` are refused."""

    default_error_messages = {"type": "type.number|Must be a number.",
                              "range": "range|Must be between {lo} and {hi}."}

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise self.make_error("type")
        if not (-SAFE_INT <= value <= SAFE_INT if isinstance(value, int) else math.isfinite(value)):
            raise self.make_error("range", lo=-SAFE_INT, hi=SAFE_INT)
        return value


class StrictBool(_Rules, fields.Field):
    default_error_messages = {"type": "type.boolean|Must be true or false."}

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, bool):
            raise self.make_error("type")
        return value


class Text(_Rules, fields.Field):
    default_error_messages = {
        "type": "type.string|Must be text.",
        "length": "length|Must be at most {max} characters.",
        "empty": "empty|May not be empty.",
    }

    def __init__(self, max_length: int = 500, allow_empty: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_length, self.allow_empty = max_length, allow_empty

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, str):
            raise self.make_error("type")
        if len(value) > self.max_length:
            raise self.make_error("length", max=self.max_length)
        if not self.allow_empty and not value.strip():
            raise self.make_error("empty")
        return value


class Choice(_Rules, fields.Field):
    default_error_messages = {
        "type": "type.string|Must be text.",
        "one_of": "one_of|Must be one of: {choices}.",
    }

    def __init__(self, choices: tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, str):
            raise self.make_error("type")
        if value not in self.choices:
            raise self.make_error("one_of", choices=", ".join(self.choices))
        return value


class UUIDString(_Rules, fields.Field):
    default_error_messages = {"format": "format.uuid|Must be a UUID like 123e4567-e89b-12d3-a456-426614174000."}
    _RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, str) or not self._RE.fullmatch(value):  # "$" would let a "\n" through
            raise self.make_error("format")
        return str(uuid.UUID(value))


_DT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)


def parse_aware(value: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries a UTC offset (``Z`` or ``±HH:MM``)."""
    if not isinstance(value, str) or not _DT_RE.fullmatch(value):
        raise ValueError("not an ISO 8601 timestamp with offset")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:  # pragma: no cover - the regex requires an offset
        raise ValueError("timestamp has no offset")
    return dt


class AwareDateTime(_Rules, fields.Field):
    default_error_messages = {
        "format": "format.datetime|Must be an ISO 8601 date and time with a UTC offset, e.g. 2026-03-01T09:30:00+08:00.",
    }

    def _deserialize(self, value, attr, data, **kw):
        try:
            return parse_aware(value)
        except (ValueError, TypeError):
            raise self.make_error("format") from None


class DateString(_Rules, fields.Field):
    default_error_messages = {"format": "format.date|Must be a date as YYYY-MM-DD."}
    _RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, str) or not self._RE.fullmatch(value):
            raise self.make_error("format")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.make_error("format") from None


class JSONObject(_Rules, fields.Field):
    default_error_messages = {"type": "type.object|Must be a JSON object."}

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, dict):
            raise self.make_error("type")
        return value


class UniqueChoiceList(_Rules, fields.Field):
    """A JSON array of distinct codes from ``choices``; errors name the index (``loss.1``)."""

    default_error_messages = {"type": "type.array|Must be a list."}

    def __init__(self, choices: tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kw):
        from marshmallow import ValidationError

        if not isinstance(value, list):
            raise self.make_error("type")
        errors: dict[int, list[str]] = {}
        seen: set[str] = set()
        for i, v in enumerate(value):
            if not isinstance(v, str) or v not in self.choices:
                errors[i] = [f"one_of|Must be one of: {', '.join(self.choices)}."]
            elif v in seen:
                errors[i] = ["duplicate|Listed twice."]
            seen.add(v) if isinstance(v, str) else None
        if errors:
            raise ValidationError(errors)
        return list(value)
