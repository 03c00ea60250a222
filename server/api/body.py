"""Reading request bodies: JSON objects only, every failure a contract error (never a 5xx)."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import current_app, request

from server.clock import iso, utc_now
from shared.errors import EproError, FieldError
from shared.protocol import Protocol


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: a ``\\uD800``..``\\uDFFF`` escape: JSON's grammar allows it, but alone it is not a character
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members; a name that occurs twice is an error (RFC 8259 §4 leaves the meaning
    open, and two readers picking different copies is how a checked value and a stored one differ)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def json_object() -> dict[str, Any]:
    """The body as a JSON object, or 400 ``request.malformed_json`` / ``validation.invalid``.

    A string holding an unpaired surrogate (``"\\ud800"``) is malformed too: it is not Unicode text,
    cannot be stored or hashed as UTF-8 (contract §1), and used to end in a 500.
    """
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
        if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(body):
            raise ValueError("unpaired surrogate")
    except _DuplicateKey as dup:
        raise EproError("request.duplicate_key", 400, errors=[
            FieldError(dup.key[:200], "duplicate_key", "This name appears twice in one JSON object.")]) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise EproError("request.malformed_json", 400) from None
    if not isinstance(body, dict):
        raise EproError("validation.invalid", 400, errors=[
            FieldError("_body", "type.object", "The body must be a JSON object.")])
    return body


def protocol() -> Protocol:
    return current_app.extensions["als_epro.protocol"]


def server_time() -> str:
    return iso(utc_now())
