"""One-time pairing codes (IA-12, anchors §8): issued by site staff, single use, expiring, hashed.

A code is 10 symbols of Crockford's base32 (50 bits from ``secrets``), shown grouped as
``ABCD-EFGH-JK``; input is accepted in any case, with spaces or dashes, and with O/I/L read as 0/1.
Only the sha256 of the normalised code is stored. Every redemption attempt is recorded; failed
guesses (wrong, used or expired code) are counted per client address and per code tried, and past a
few free ones the next guess must wait a delay that doubles with each failure (:class:`RateLimits`);
until then it gets 429 before the code is even looked at (IA-11). There is no global limit, so
nobody can pause all pairing. Attempts are audited without the code.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
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
    """Growing delays per source address and per code tried; there is no global limit (IA-11).

    ``per_address`` (``per_code``) failed guesses within ``memory_seconds`` are free; after that each
    further guess from that address (of that code) must wait ``base_delay_seconds * 2**k`` after the
    previous failure, ``k`` the failures beyond the free ones, at most ``max_delay_seconds``. Until
    then the answer is 429 and the code is not looked at. An attacker with many addresses slows only
    the guesses from those addresses; the site's own pairing from another address is not affected.
    IPv6 addresses count per /64 (one household's network), IPv4 per address.
    """
    max_delay_seconds: int = 900
    per_address: int = 5
    per_code: int = 3
    base_delay_seconds: float = 2.0
    memory_seconds: int = 86400

    def delay(self, failures: int, free: int) -> float:
        if failures < free:
            return 0.0
        return min(float(self.max_delay_seconds), self.base_delay_seconds * 2 ** min(failures - free, 40))

    def guesses_per_hour_at_cap(self) -> float:
        """Guesses one address gets per hour once its delay has grown to the cap."""
        return 3600 / self.max_delay_seconds


@dataclass(frozen=True)
class Paired:
    device: dict[str, Any]
    token: str
    originator: str


_GUESSES = "('invalid', 'used', 'expired')"


def address_key(address: str | None) -> str:
    """The unit an address is limited as: the IPv4 address, or the IPv6 /64 it is in."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _wait(db: Database, column: str, value: str, free: int, limits: RateLimits, now: datetime) -> float:
    """Seconds still to wait before the next guess by ``column = value`` is looked at (0: go)."""
    since = iso(now - timedelta(seconds=limits.memory_seconds))
    n, last = db.execute(f"SELECT COUNT(*), MAX(at) FROM pairing_attempts WHERE {column} = ? AND at >= ?"
                         f" AND outcome IN {_GUESSES}", [value, since]).fetchone()
    delay = limits.delay(n, free)
    if not delay or last is None:
        return 0.0
    ready = datetime.fromisoformat(last) + timedelta(seconds=delay)
    return max(0.0, (ready - now).total_seconds())


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
    address = address_key(client_addr)
    tried = hash_code(code)
    outcome, paired, site_id, wait = "ok", None, None, 0.0
    with write_tx(db):
        wait = max(_wait(db, "client_addr", address, limits.per_address, limits, now),
                   _wait(db, "code_hash", tried, limits.per_code, limits, now))
        if wait > 0:
            outcome = "rate_limited"
        else:
            row = query_one(db, "SELECT * FROM pairing_codes WHERE code_hash = ?", [tried])
            if row is None:
                outcome = "invalid"
            elif row["used_at"] is not None:
                outcome = "used"
            elif row["expires_at"] <= iso(now):
                outcome = "expired"
            if row is not None:
                site_id = query_one(db, "SELECT site_id FROM participants WHERE id = ?",
                                    [row["participant_id"]])["site_id"]
        db.execute("INSERT INTO pairing_attempts (at, client_addr, outcome, code_hash) VALUES (?, ?, ?, ?)",
                   [iso(now), address, outcome, tried])
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
        "rate_limited": EproError("pairing.rate_limited", 429,
                                  extra={"retry_after_s": max(1, math.ceil(wait))}),
        "invalid": EproError("pairing.code_invalid", 400, errors=[
            FieldError("code", "pairing.code_invalid", "This pairing code is not correct.")]),
        "used": EproError("pairing.code_used", 410),
        "expired": EproError("pairing.code_expired", 410),
    }[outcome]
