"""Paired devices: random 256-bit bearer tokens stored only as sha256, revocable at once (IA-04, IA-13).

A revoked device is told so (401 ``auth.device_revoked``) and the attempt is audited; an unknown or
missing token is 401 ``auth.token_invalid``.

Rotation: every N-th upload (``TOKEN_ROTATE_EVERY_SYNCS``) the answer carries a new token in the
optional field ``device_token``; it is kept as *pending* and the old one stays current, so a client
that ignores the field keeps working. The first request with the new token makes it current and the
old one *previous*, still accepted for ``TOKEN_GRACE_SECONDS`` (an offline client that sends it once
more), then refused. Revocation kills all three at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from shared.errors import EproError, FieldError


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_device_id() -> str:
    return "dev-" + secrets.token_hex(6)


def originator(device: dict[str, Any], subject: str) -> str:
    """The person a device speaks for: ``participant:<subject>`` or ``caregiver:<id>``."""
    if device["role"] == "caregiver":
        return f"caregiver:{device['caregiver_id']}"
    return f"participant:{subject}"


def get_device(db: Database, device_id: str) -> dict[str, Any]:
    row = query_one(db, """
        SELECT d.*, p.subject, p.site_id FROM devices d JOIN participants p ON p.id = d.participant_id
        WHERE d.id = ?""", [device_id])
    if row is None:
        raise EproError("device.not_found", 404, detail=device_id)
    return row


def devices_for_participant(db: Database, participant_id: int) -> list[dict[str, Any]]:
    rows = query(db, "SELECT * FROM devices WHERE participant_id = ? ORDER BY created_at", [participant_id])
    return [_public(r) for r in rows]


def devices_for_site(db: Database, site_id: int) -> tuple[dict[int, list[dict[str, Any]]], set[str]]:
    """A site's devices by participant (each oldest first, as :func:`devices_for_participant`) and
    the ids of those with a ``device_seq`` gap recorded: two queries for the whole site."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in query(db, "SELECT d.* FROM devices d JOIN participants p ON p.id = d.participant_id"
                         " WHERE p.site_id = ? ORDER BY d.participant_id, d.created_at", [site_id]):
        out.setdefault(row["participant_id"], []).append(_public(row))
    gapped = {r["device_id"] for r in query(
        db, "SELECT DISTINCT g.device_id FROM device_seq_gaps g JOIN devices d ON d.id = g.device_id"
            " JOIN participants p ON p.id = d.participant_id WHERE p.site_id = ?", [site_id])}
    return out, gapped


def devices_for_participants(db: Database, participant_ids: list[int]
                             ) -> tuple[dict[int, list[dict[str, Any]]], set[str]]:
    """As :func:`devices_for_site`, for these participants only (a page of the participants list)."""
    if not participant_ids:
        return {}, set()
    marks = ", ".join("?" * len(participant_ids))
    out: dict[int, list[dict[str, Any]]] = {}
    for row in query(db, f"SELECT * FROM devices WHERE participant_id IN ({marks})"
                         " ORDER BY participant_id, created_at", participant_ids):
        out.setdefault(row["participant_id"], []).append(_public(row))
    gapped = {r["device_id"] for r in query(
        db, f"SELECT DISTINCT g.device_id FROM device_seq_gaps g JOIN devices d ON d.id = g.device_id"
            f" WHERE d.participant_id IN ({marks})", participant_ids)}
    return out, gapped


_SECRET_COLUMNS = ("token_hash", "pending_token_hash", "previous_token_hash")
_BY_TOKEN = """SELECT d.*, p.subject, p.site_id FROM devices d JOIN participants p ON p.id = d.participant_id
               WHERE d.{column} = ?"""


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _SECRET_COLUMNS}


def _find_by_token(db: Database, token: str, now: datetime, grace_seconds: float
                   ) -> tuple[dict[str, Any] | None, str]:
    """The device a token belongs to and which of its tokens it is: current, pending (the rotated
    one, used for the first time: it becomes current) or previous (within the grace window)."""
    digest = hash_token(token)
    row = query_one(db, _BY_TOKEN.format(column="token_hash"), [digest])
    if row is not None:
        return row, "current"
    row = query_one(db, _BY_TOKEN.format(column="pending_token_hash"), [digest])
    if row is not None:
        if row["revoked_at"] is None:
            with write_tx(db):
                db.execute("UPDATE devices SET previous_token_hash = token_hash, previous_token_until = ?,"
                           " token_hash = pending_token_hash, pending_token_hash = NULL,"
                           " pending_token_at = NULL, token_rotated_at = ?, syncs_since_rotation = 0"
                           " WHERE id = ? AND pending_token_hash = ?",
                           [iso(now + timedelta(seconds=grace_seconds)), iso(now), row["id"], digest])
                write_audit(db, Actor.device(row["id"]), "device.token_rotated", entity="device",
                            entity_id=row["id"], site_id=row["site_id"],
                            detail={"grace_until": iso(now + timedelta(seconds=grace_seconds))}, now=now)
        return row, "pending"
    row = query_one(db, _BY_TOKEN.format(column="previous_token_hash"), [digest])
    if row is not None and row["previous_token_until"] and row["previous_token_until"] > iso(now):
        return row, "previous"
    return None, ""


def authenticate_device(db: Database, token: str, *, client_addr: str | None = None,
                        now: datetime | None = None, grace_seconds: float = 7 * 86400) -> dict[str, Any]:
    """The device row (with ``subject``, ``site_id``) for a bearer token, or a 401 EproError.

    Any of a device's live tokens authenticates it (current; a rotated one not used yet; the one it
    replaced, until the grace window ends); a revoked device's tokens all fail at once (IA-04). The
    row's ``token_kind`` says which one was used.
    """
    if not token:
        raise EproError("auth.token_invalid", 401)
    now = now or utc_now()
    row, kind = _find_by_token(db, token, now, grace_seconds)
    if row is None:
        raise EproError("auth.token_invalid", 401)
    if row["revoked_at"] is not None:
        from server.store.security_log import record_event

        record_event(db, "device.revoked_token_used", client_addr=client_addr, site_id=row["site_id"],
                     detail={"device_id": row["id"], "revoked_at": row["revoked_at"]}, now=now)
        raise EproError("auth.device_revoked", 401)
    if kind == "previous":
        with write_tx(db):
            write_audit(db, Actor.device(row["id"]), "device.previous_token_used", entity="device",
                        entity_id=row["id"], site_id=row["site_id"],
                        detail={"client_addr": client_addr, "grace_until": row["previous_token_until"]},
                        now=now)
    return {**_public(row), "token_kind": kind}


def count_upload(db: Database, device: dict[str, Any], every: int, *,
                 now: datetime | None = None) -> str | None:
    """Count one upload; on every ``every``-th one return a new token (stored as pending) for the
    answer to carry. The old token stays current until the client first uses the new one, so a
    client that ignores it loses nothing. ``every`` 0: never. Runs inside the caller's write
    transaction (the sync endpoint's ingest: one commit a request, not two)."""
    if every <= 0 or device.get("token_kind") == "previous":
        return None
    # one statement: the count as this UPDATE left it (RETURNING, SQLite 3.35+; every row fetched,
    # so the statement is finished before the COMMIT)
    rows = db.conn.execute("UPDATE devices SET syncs_since_rotation = syncs_since_rotation + 1 WHERE id = ?"
                           " RETURNING syncs_since_rotation, revoked_at IS NULL", [device["id"]]).fetchall()
    if not rows or not rows[0][1] or rows[0][0] < every:
        return None
    token = new_token()
    db.execute("UPDATE devices SET pending_token_hash = ?, pending_token_at = ?, syncs_since_rotation = 0"
               " WHERE id = ?", [hash_token(token), iso(now or utc_now()), device["id"]])
    return token


def create_device(db: Database, participant: dict[str, Any], role: str, caregiver_id: int | None,
                  name: str, *, now: datetime | None = None) -> tuple[dict[str, Any], str]:
    """Insert a device and return it with its token (shown once). Caller holds the transaction."""
    token = new_token()
    device_id = new_device_id()
    db.execute("INSERT INTO devices (id, participant_id, caregiver_id, role, name, token_hash,"
               " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               [device_id, participant["id"], caregiver_id, role, name, hash_token(token),
                iso(now or utc_now())])
    return get_device(db, device_id), token


def revoke_device(db: Database, device_id: str, *, reason: str, actor: Actor,
                  now: datetime | None = None) -> dict[str, Any]:
    """Revoke at once: the next request with its token is 401 ``auth.device_revoked``."""
    if not reason or not reason.strip():
        raise EproError("validation.invalid", 400, errors=[
            FieldError("reason", "reason_required", "A reason is required.")])
    with write_tx(db):
        device = get_device(db, device_id)
        if device["revoked_at"] is not None:
            raise EproError("device.already_revoked", 409, detail=device_id)
        stamp = iso(now or utc_now())
        db.execute("UPDATE devices SET revoked_at = ?, revoked_reason = ? WHERE id = ?",
                   [stamp, reason.strip(), device_id])
        write_audit(db, actor, "device.revoke", entity="device", entity_id=device_id,
                    site_id=device["site_id"],
                    detail={"subject": device["subject"], "reason": reason.strip(),
                            "last_seen_at": device["last_seen_at"],
                            "last_device_seq": device["last_device_seq"]}, now=now)
    return _public(get_device(db, device_id))


def touch(db: Database, device_id: str, now: datetime | None = None) -> None:
    """Record that the device was heard from (operational, not audited). Caller holds the tx."""
    db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", [iso(now or utc_now()), device_id])


def silent_devices(db: Database, hours: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """Active devices not heard from for more than ``hours`` (SY-06), with their site."""
    from datetime import timedelta

    cutoff = iso((now or utc_now()) - timedelta(hours=hours))
    return query(db, """
        SELECT d.id, d.name, d.role, d.participant_id, p.subject, p.site_id,
               COALESCE(d.last_seen_at, d.created_at) AS last_heard
        FROM devices d JOIN participants p ON p.id = d.participant_id
        WHERE d.revoked_at IS NULL AND p.status = 'active'
          AND COALESCE(d.last_seen_at, d.created_at) < ?
        ORDER BY last_heard""", [cutoff])
