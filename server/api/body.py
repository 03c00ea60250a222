"""Reading request bodies: JSON objects only, every failure a contract error (never a 5xx)."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from server.clock import iso, utc_now
from shared.errors import EproError, FieldError
from shared.protocol import Protocol


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object() -> dict[str, Any]:
    """The body as a JSON object, or 400 ``request.malformed_json`` / ``validation.invalid``."""
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
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
