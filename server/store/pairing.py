"""One-time pairing codes (IA-12, anchors §8): issued by site staff, single use, expiring, hashed.

A code is 10 symbols of Crockford's base32 (50 bits from ``secrets``), shown grouped as
``ABCD-EFGH-JK``; input is accepted in any case, with spaces or dashes, and with O/I/L read as 0/1.
Only the sha256 of the normalised code is stored. Every redemption attempt is recorded; failures
(wrong, used or expired code) are counted per client address and globally, and past the limit the
next attempt gets 429 before the code is even looked at (IA-11). Attempts are audited without the code.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query_one, write_tx
from server.store.audit import Actor, write_audit
from server.store.devices import create_device, originator
from server.store.security_log import record_event
from server.store.participants import add_caregiver, get_caregiver, get_participant
from shared.errors import EproError, FieldError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_LENGTH = 10
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
ROLES = ("participant", "caregiver")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def normalize_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch not in " -\t").translate(_READ_AS)


def hash_code(text: str) -> str:
    return hashlib.sha256(normalize_code(text).encode("ascii", "replace")).hexdigest()


def issue_pairing_code(db: Database, subject: str, role: str, caregiver_id: int | None = None, *,
                       actor: Actor, ttl_minutes: float = 10, caregiver_name: str | None = None,
                       now: datetime | None = None) -> dict[str, Any]:
    """Issue a code for a participant's own device or a caregiver's.

    A caregiver code without ``caregiver_id`` creates a new caregiver identity first. Returns
    ``{"code", "subject", "role", "caregiver_id", "expires_at"}``; the code is shown only here.
    """
    if role not in ROLES:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("role", "one_of", "Role must be participant or caregiver.")])
    if role == "participant" and caregiver_id is not None:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("caregiver", "caregiver_for_participant_code",
                       "A participant code does not name a caregiver.")])
    now = now or utc_now()
    with write_tx(db):
        p = get_participant(db, subject)
        if p["status"] != "active":
            raise EproError("participant.withdrawn", 409, detail=subject)
        if role == "caregiver":
            if caregiver_id is None:
                count = db.execute("SELECT COUNT(*) FROM caregivers WHERE participant_id = ?",
                                   [p["id"]]).fetchone()[0]
                caregiver_id = add_caregiver(db, subject, caregiver_name or f"Caregiver {count + 1}",
                                             actor=actor, now=now)["caregiver_id"]
            else:
                get_caregiver(db, p["id"], caregiver_id)
        code = new_code()
        expires = now + timedelta(minutes=ttl_minutes)
        cur = db.execute("INSERT INTO pairing_codes (code_hash, participant_id, role, caregiver_id,"
                         " issued_at, issued_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [hash_code(code), p["id"], role, caregiver_id, iso(now), str(actor), iso(expires)])
        write_audit(db, actor, "pairing.issue", entity="pairing_code", entity_id=cur.lastrowid,
                    site_id=p["site_id"], detail={"subject": subject, "role": role,
                                                  "caregiver_id": caregiver_id,
                                                  "expires_at": iso(expires)}, now=now)
    return {"code": format_code(code), "subject": subject, "role": role,
            "caregiver_id": caregiver_id, "expires_at": iso(expires)}


@dataclass(frozen=True)
class RateLimits:
    window_seconds: int = 900
    per_address: int = 5
    global_: int = 50


@dataclass(frozen=True)
class Paired:
    device: dict[str, Any]
    token: str
    originator: str


def _failures(db: Database, since: str, address: str | None = None) -> int:
    sql = "SELECT COUNT(*) FROM pairing_attempts WHERE at >= ? AND outcome != 'ok'"
    params: list[Any] = [since]
    if address is not None:
        sql += " AND client_addr = ?"
        params.append(address)
    return db.execute(sql, params).fetchone()[0]


def redeem_pairing_code(db: Database, code: Any, device_name: Any, *, client_addr: str | None,
                        limits: RateLimits = RateLimits(), now: datetime | None = None) -> Paired:
    """Exchange a code for a new device and its token, or raise the contract's error."""
    errors = []
    if not isinstance(code, str) or not code.strip():
        errors.append(FieldError("code", "required", "A pairing code is required."))
    if not isinstance(device_name, str) or not device_name.strip() or len(device_name) > 100:
        errors.append(FieldError("device_name", "length", "A device name has 1 to 100 characters."))
    if errors:
        raise EproError("validation.invalid", 400, errors=errors)
    now = now or utc_now()
    address = client_addr or "unknown"
    since = iso(now - timedelta(seconds=limits.window_seconds))
    outcome, paired, site_id = "ok", None, None
    with write_tx(db):
        if (_failures(db, since, address) >= limits.per_address
                or _failures(db, since) >= limits.global_):
            outcome = "rate_limited"
        else:
            row = query_one(db, "SELECT * FROM pairing_codes WHERE code_hash = ?", [hash_code(code)])
            if row is None:
                outcome = "invalid"
            elif row["used_at"] is not None:
                outcome = "used"
            elif row["expires_at"] <= iso(now):
                outcome = "expired"
            if row is not None:
                site_id = query_one(db, "SELECT site_id FROM participants WHERE id = ?",
                                    [row["participant_id"]])["site_id"]
        db.execute("INSERT INTO pairing_attempts (at, client_addr, outcome) VALUES (?, ?, ?)",
                   [iso(now), address, outcome])
        if outcome == "ok":
            participant = query_one(db, "SELECT * FROM participants WHERE id = ?", [row["participant_id"]])
            device, token = create_device(db, participant, row["role"], row["caregiver_id"],
                                          device_name.strip(), now=now)
            db.execute("UPDATE pairing_codes SET used_at = ?, device_id = ? WHERE id = ?",
                       [iso(now), device["id"], row["id"]])
            paired = Paired(device, token, originator(device, participant["subject"]))
            write_audit(db, Actor.device(device["id"]), "device.pair", entity="device",
                        entity_id=device["id"], site_id=site_id,
                        detail={"subject": participant["subject"], "role": row["role"],
                                "caregiver_id": row["caregiver_id"], "pairing_code_id": row["id"],
                                "device_name": device_name.strip(), "client_addr": address}, now=now)
        else:
            # the bounded security log and its audited counters, not one audit row per guess
            record_event(db, "pairing.rate_limited" if outcome == "rate_limited" else "pairing.failed",
                         client_addr=address, site_id=site_id,
                         detail={"outcome": outcome,
                                 "pairing_code_id": row["id"] if outcome in ("used", "expired") else None},
                         now=now)
    if paired is not None:
        return paired
    raise {
        "rate_limited": EproError("pairing.rate_limited", 429),
        "invalid": EproError("pairing.code_invalid", 400, errors=[
            FieldError("code", "pairing.code_invalid", "This pairing code is not correct.")]),
        "used": EproError("pairing.code_used", 410),
        "expired": EproError("pairing.code_expired", 410),
    }[outcome]
