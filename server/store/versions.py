"""Corrections: a submitted record is read-only; a correction appends a version (AT-05, DC-02, SY-10).

Each version stores the whole payload, what changed (``[{field, old, new}]``), the reason, who asked
(e.g. "participant by phone") and who entered it, with the server time. The original (version 1, as
received) stays retrievable, and the replay comparison keeps using the first sha256 on ``records``.
The participant's devices learn of the correction through the changes feed.

Permission checks belong to the caller (``server.auth.require_permission(staff, "correct", site)``).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any, Mapping

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query_one, write_tx
from server.store import list_summaries
from server.store.audit import Actor, write_audit
from server.store.changes import add_change
from shared.errors import EproError, FieldError
from shared.schemas import record_errors

_MISSING = object()


class _Remove:
    """The value that removes a payload field in a correction (e.g. item 5a when 5b replaces it)."""

    def __repr__(self) -> str:
        return "REMOVE"


#: pass as the new value of a path in ``updates`` to remove that field (stored as ``"removed": true``)
REMOVE = _Remove()


def _get(node: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(node: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise EproError("record.correction_invalid", 400, errors=[
                FieldError("payload." + ".".join(parts), "type.object", "Cannot set inside a non-object.")])
    node[parts[-1]] = value


def correct_record(db: Database, record_id: str, updates: Mapping[str, Any], *, reason: str,
                   requested_by: str, actor: Actor, expected_version: int | None = None,
                   protocol: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """Append a corrected version of a record's payload.

    ``updates`` maps payload paths (``"items.7"``, ``"symptoms.headache"``, ``"notes"``; a leading
    ``"payload."`` is allowed) to new values. The corrected record must validate as a whole.
    ``expected_version`` guards against two staff correcting the same version (409
    ``record.stale_version``). Returns the new version row.
    """
    problems = []
    if not reason or not str(reason).strip():
        problems.append(FieldError("reason", "reason_required", "A correction needs a reason."))
    if not requested_by or not str(requested_by).strip():
        problems.append(FieldError("requested_by", "required", "Say who asked for the correction."))
    if not updates:
        problems.append(FieldError("updates", "required", "Name at least one field to correct."))
    if problems:
        raise EproError("validation.invalid", 400, errors=problems)
    now = now or utc_now()
    with write_tx(db):
        rec = query_one(db, "SELECT r.*, p.site_id FROM records r JOIN participants p"
                            " ON p.id = r.participant_id WHERE r.id = ?", [record_id])
        if rec is None:
            raise EproError("record.not_found", 404, detail=record_id)
        latest = query_one(db, "SELECT * FROM record_versions WHERE record_id = ?"
                               " ORDER BY version DESC LIMIT 1", [record_id])
        if expected_version is not None and expected_version != latest["version"]:
            raise EproError("record.stale_version", 409,
                            detail=f"current version is {latest['version']}")
        payload = json.loads(latest["payload"])
        new_payload = copy.deepcopy(payload)
        changes = []
        for path, value in updates.items():
            parts = path.removeprefix("payload.").split(".")
            old = _get(payload, parts)
            if value is REMOVE:
                if old is _MISSING:
                    continue
                parent = _get(new_payload, parts[:-1]) if len(parts) > 1 else new_payload
                parent.pop(parts[-1], None)
                changes.append({"field": "payload." + ".".join(parts), "old": old, "new": None, "removed": True})
                continue
            if old is not _MISSING and old == value and type(old) is type(value):
                continue
            _set(new_payload, parts, value)
            changes.append({"field": "payload." + ".".join(parts),
                            "old": None if old is _MISSING else old, "new": value})
        if not changes:
            raise EproError("record.no_change", 400)
        envelope = {**json.loads(rec["envelope"]), "payload": new_payload}
        old_event_time = envelope["event_time"]
        envelope["event_time"] = event_time_for(envelope)  # a corrected date or dose time moves it
        _valid, errors = record_errors(envelope, protocol=protocol)
        if errors:
            raise EproError("record.correction_invalid", 400, errors=errors)
        version = latest["version"] + 1
        stamp = iso(now)
        db.execute("INSERT INTO record_versions (record_id, version, payload, created_at, created_by,"
                   " requested_by, reason, changes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [record_id, version, json.dumps(new_payload, ensure_ascii=False, sort_keys=True),
                    stamp, str(actor), requested_by.strip(), reason.strip(),
                    json.dumps(changes, ensure_ascii=False)])
        write_audit(db, actor, "record.correct", entity="record", entity_id=record_id,
                    site_id=rec["site_id"],
                    detail={"version": version, "changes": changes, "reason": reason.strip(),
                            "requested_by": requested_by.strip(),
                            "lag_days": _lag_days(rec["received_at"], now),
                            **({"event_time": {"old": old_event_time, "new": envelope["event_time"]}}
                               if envelope["event_time"] != old_event_time else {})}, now=now)
        add_change(db, rec["participant_id"], "correction",
                   {"record_id": record_id, "version": version, "changes": changes,
                    "reason": reason.strip(), "corrected_at": stamp}, now=now)
        if protocol is not None:   # the participants list's row (without a protocol: made when shown)
            list_summaries.keep(db, protocol, [rec["participant_id"]], now)
    return {"record_id": record_id, "version": version, "payload": new_payload, "changes": changes,
            "created_at": stamp, "created_by": str(actor), "requested_by": requested_by.strip(),
            "reason": reason.strip()}


def event_time_for(envelope: Mapping[str, Any]) -> str:
    """The ``event_time`` a (corrected) payload implies by contract §1: ``entered_at`` for ALSFRS-R,
    00:00 of the diary date or of a missed dose's planned date at ``entered_at``'s offset, else
    ``administered_at``. Values the payload cannot decide leave the envelope's own unchanged."""
    from datetime import date as _date

    from shared.schemas.fields import parse_aware
    from shared.schemas.records import midnight_at_offset

    payload, rtype, current = envelope.get("payload") or {}, envelope.get("type"), envelope.get("event_time")
    try:
        entered = parse_aware(envelope["entered_at"])
        implied = None
        if rtype == "alsfrs_r":
            implied = envelope["entered_at"]
        elif rtype == "nasal_symptoms":
            implied = midnight_at_offset(_date.fromisoformat(payload["date"]), entered).isoformat()
        elif rtype == "dose_confirmation" and payload.get("given") is True and payload.get("administered_at"):
            implied = payload["administered_at"]
        elif rtype == "dose_confirmation" and payload.get("given") is False:
            implied = midnight_at_offset(_date.fromisoformat(payload["planned_date"]), entered).isoformat()
        if implied is not None and parse_aware(implied) != parse_aware(current):
            return implied
    except (KeyError, TypeError, ValueError):
        pass
    return current


def _lag_days(received_at: str, now: datetime) -> float:
    """Days between receipt and correction, for the late-corrections report (DC-03)."""
    from server.clock import parse_iso

    return round((now - parse_iso(received_at)).total_seconds() / 86400, 2)
