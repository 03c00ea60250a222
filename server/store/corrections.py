"""Data change requests (DC-02, DC-03, DC-06): staff correct a submitted record on someone's request.

:func:`request_correction` is what the staff pages call. In one transaction it

1. appends the new version through :func:`server.store.versions.correct_record` — which validates the
   whole corrected envelope with ``shared.schemas``, writes the ``record.correct`` audit row (old, new,
   reason, who asked, lag) and tells the participant's devices through the changes feed;
2. marks every sign-off that covered an older version of the record as invalidated
   (:func:`server.store.signoffs.invalidate_for_record`);
3. refreshes the participant's cached flag counts (a correction may raise or clear flags).

The original (version 1, as received) and every earlier version stay retrievable.

Form values arrive as text; :func:`correctable_fields` lists the payload fields of a record with the
kind of value each holds, and :func:`parse_value` turns the typed text into that kind.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from sqlite_utils import Database

from server.clock import utc_now
from server.db import query_one, write_tx
from server.store.audit import Actor
from server.store.records import record_with_versions
from server.store.reviews import refresh_flag_counts
from server.store.signoffs import invalidate_for_record
from server.store.versions import correct_record
from shared.errors import EproError, FieldError
from shared.protocol import Protocol
from shared.vocab import NULLABLE_SYMPTOMS

REASON_MAX = 2000
_NULLABLE_TEXT = ("volume", "missed_reason", "administered_at")
REQUESTED_BY_MAX = 200


def _leaves(node: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_leaves(value, f"{path}."))
        else:
            out.append((path, value))
    return out


def value_kind(path: str, value: Any) -> str:
    """``int`` | ``int_or_null`` | ``bool`` | ``bool_or_null`` | ``list`` | ``text`` | ``text_or_null``."""
    last = path.rsplit(".", 1)[-1]
    if isinstance(value, bool) or last in ("given", "retained", "gastrostomy", "epistaxis_needed_help",
                                           "sought_medical_care"):
        return "bool_or_null" if last == "retained" else "bool"
    if isinstance(value, int) or path.startswith(("items.", "symptoms.")) or last == "dose_number":
        return "int_or_null" if last in NULLABLE_SYMPTOMS else "int"
    if isinstance(value, list):
        return "list"
    if value is None or last in _NULLABLE_TEXT:
        return "text_or_null"
    return "text"


def correctable_fields(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every leaf of a payload as ``{"path", "value", "kind"}`` in payload order."""
    return [{"path": path, "value": value, "kind": value_kind(path, value)} for path, value in _leaves(payload)]


_TRUE = {"true", "yes", "y", "1", "是"}
_FALSE = {"false", "no", "n", "0", "否"}
_NULL = {"", "null", "none", "-", "—"}


def parse_value(kind: str, text: str, field: str = "new_value") -> Any:
    """The typed value staff entered as text, for a field of ``kind`` (400 with the rule if it cannot be)."""
    raw = (text or "").strip()
    low = raw.lower()
    if kind.endswith("_or_null") and low in _NULL:
        return None
    base = kind.removesuffix("_or_null")
    if base == "int":
        try:
            return int(raw)
        except ValueError:
            raise EproError("validation.invalid", 400, errors=[
                FieldError(field, "type.integer", "Enter a whole number.")]) from None
    if base == "bool":
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise EproError("validation.invalid", 400, errors=[FieldError(field, "type.boolean", "Enter yes or no.")])
    if base == "list":
        if raw.startswith("["):
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if isinstance(value, list):
                return value
            raise EproError("validation.invalid", 400, errors=[
                FieldError(field, "type.list", "Enter values separated by commas.")])
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def request_correction(db: Database, record_id: str, updates: Mapping[str, Any], *, reason: str,
                       requested_by: str, actor: Actor, protocol: Protocol,
                       expected_version: int | None = None, site_id: int | None = None,
                       now: datetime | None = None) -> dict[str, Any]:
    """Correct a record on request (see the module docstring); returns the new version row plus
    ``invalidated_signoffs``. With ``site_id`` the record must belong to that site (404 otherwise)."""
    now = now or utc_now()
    problems = []
    if len((reason or "").strip()) > REASON_MAX:
        problems.append(FieldError("reason", "length", f"At most {REASON_MAX} characters."))
    if len((requested_by or "").strip()) > REQUESTED_BY_MAX:
        problems.append(FieldError("requested_by", "length", f"At most {REQUESTED_BY_MAX} characters."))
    if problems:
        raise EproError("validation.invalid", 400, errors=problems)
    with write_tx(db):
        owner = query_one(db, "SELECT r.participant_id, p.site_id FROM records r JOIN participants p"
                              " ON p.id = r.participant_id WHERE r.id = ?", [record_id])
        if owner is None or (site_id is not None and owner["site_id"] != site_id):
            raise EproError("record.not_found", 404, detail=record_id)
        result = correct_record(db, record_id, updates, reason=reason, requested_by=requested_by, actor=actor,
                                expected_version=expected_version, protocol=protocol, now=now)
        result["invalidated_signoffs"] = invalidate_for_record(db, record_id, result["version"], actor=actor,
                                                               now=now)
    refresh_flag_counts(db, protocol, owner["participant_id"], now=now)
    return result


def record_for_correction(db: Database, record_id: str) -> dict[str, Any] | None:
    """The record with its versions and the fields a correction may name (``fields``)."""
    rec = record_with_versions(db, record_id)
    if rec is None:
        return None
    rec["fields"] = correctable_fields(rec["current"]["payload"])
    return rec
