"""Staff accounts: one email each, one site, one role, argon2id password hashes (IA-01, IA-10).

A successful login is audited; a failed one goes to the bounded security log (counted per interval
in the audit trail, :mod:`server.store.security_log`) without the password, and without what was
typed as the email when no account has it (a password typed into the email field must not be kept).
A wrong email and a wrong password look the same to the caller.

Passwords (IA-10): at least 12 characters, not one of the 100,000 most common (the shipped SecLists
excerpt, ``server/data``), not containing the account's email or name; argon2id with the RFC 9106
second recommended parameter set (t=3, 64 MiB, p=4; above OWASP's minimum of t=2, 19 MiB, p=1), and
a hash made with weaker parameters is re-made at the next successful login. An account made or reset
by someone else must change its password at the next sign-in (``must_change_password``), so a
signing password is known to its holder alone. Roles: nobody changes their own role, and an account
never crosses between the admin role and the clinical roles (contract §4 keeps them apart).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import gzip
import hashlib
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlite_utils import Database

from server.auth import ROLES
from server.clock import iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from server.store.sites import get_site
from shared.errors import EproError, FieldError
from shared.ids import check_email

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256   # argon2 takes any length; a bound keeps a login request cheap
NAME_MAX = 200  # the same bound as a typed printed name at sign-off
#: RFC 9106 §4 second recommended option (argon2id, t=3, m=64 MiB, p=4), stated, not left to a default
PASSWORD_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(PASSWORD_PARAMETERS)
CLINICAL_ROLES = tuple(r for r in ROLES if r != "admin")
COMMON_PASSWORDS = "common-passwords-100k.txt.gz"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The 100,000 most common passwords, lower-cased (``server/data``, licence beside it)."""
    raw = resources.files("server.data").joinpath(COMMON_PASSWORDS).read_bytes()
    return frozenset(line.strip().lower() for line in gzip.decompress(raw).decode("utf-8", "replace").splitlines()
                     if line.strip())


def password_problems(password: str, *, email: str | None = None, name: str | None = None,
                      field: str = "password") -> list[FieldError]:
    """Why ``password`` may not be used for this account (empty: it may)."""
    out: list[FieldError] = []
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        return [FieldError(field, "length", f"At least {MIN_PASSWORD_LENGTH} characters.")]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [FieldError(field, "length", f"At most {MAX_PASSWORD_LENGTH} characters.")]
    folded = password.strip().lower()
    if folded in common_passwords() or " ".join(folded.split()) in common_passwords():
        out.append(FieldError(field, "password.common", "This password is one of the most common ones."))
    personal = set()
    if email:
        email = email.strip().lower()
        personal |= {email, email.split("@", 1)[0]}
    if name:
        personal |= {name.strip().lower(), *(part for part in name.lower().split() if len(part) >= 3)}
    squeezed = "".join(folded.split())
    if any(p and len(p) >= 3 and (p in folded or "".join(p.split()) in squeezed) for p in personal):
        out.append(FieldError(field, "password.personal", "The password may not contain your email or name."))
    return out


def check_password(password: str, *, email: str | None = None, name: str | None = None,
                   field: str = "password") -> None:
    problems = password_problems(password, email=email, name=name, field=field)
    if problems:
        code = "staff.password_too_short" if problems[0].rule == "length" else "staff.password_rejected"
        raise EproError(code, 400, errors=problems)


def unknown_account(email: str) -> str:
    """What the security log keeps of an email no account has: a short hash, never the text (it may
    be a password typed into the wrong field). Equal typed values give equal hashes."""
    digest = hashlib.sha256(b"als-epro unknown account\0" + email.strip().lower().encode("utf-8")).hexdigest()
    return f"unknown:{digest[:16]}"
# verifying an unknown email against this keeps the timing of both failure kinds alike
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


def public(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A staff row without its password hash."""
    if row is None:
        return None
    return {k: v for k, v in row.items() if k != "password_hash"}


def add_staff(db: Database, email: str, site_code: str, role: str, password: str, *,
              actor: Actor, now: datetime | None = None, name: str | None = None,
              must_change: bool = True) -> dict[str, Any]:
    """Add an account. ``name`` is the display name a sign-off prints (21 CFR 11.50); optional,
    blank means none (the investigator then types the printed name when signing).

    ``must_change``: the password was chosen by whoever made the account, so its holder must choose
    their own at the first sign-in (default). False only when the holder typed it themselves."""
    email = check_email(email)
    name = (name or "").strip() or None
    if name is not None and len(name) > NAME_MAX:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("name", "max_length", f"At most {NAME_MAX} characters.")])
    if role not in ROLES:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("role", "one_of", f"Role must be one of: {', '.join(ROLES)}.")])
    check_password(password, email=email, name=name)
    password_hash = _hasher.hash(password)
    with write_tx(db):
        site = get_site(db, site_code)
        if query_one(db, "SELECT id FROM staff WHERE email = ?", [email]):
            raise EproError("staff.exists", 409)
        cur = db.execute(
            "INSERT INTO staff (email, name, site_id, role, password_hash, active, created_at,"
            " must_change_password) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            [email, name, site["id"], role, password_hash, iso(now or utc_now()), int(must_change)])
        staff_id = cur.lastrowid
        write_audit(db, actor, "staff.create", entity="staff", entity_id=staff_id,
                    site_id=site["id"], detail={"email": email, "name": name, "role": role, "site": site_code,
                                                "must_change_password": bool(must_change)},
                    now=now)
    return public(get_staff(db, staff_id))


def get_staff(db: Database, staff_id: int) -> dict[str, Any] | None:
    return query_one(db, "SELECT * FROM staff WHERE id = ?", [staff_id])


def staff_by_email(db: Database, email: str) -> dict[str, Any] | None:
    return query_one(db, "SELECT * FROM staff WHERE email = ?", [email.strip()])


def list_staff(db: Database, site_id: int | None = None) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM staff", []
    if site_id is not None:
        sql, params = sql + " WHERE site_id = ?", [site_id]
    return [public(r) for r in query(db, sql + " ORDER BY email", params)]


def authenticate(db: Database, email: str, password: str, *, client_addr: str | None = None,
                 now: datetime | None = None) -> dict[str, Any] | None:
    """The active staff row (without hash) for these credentials, or None. Audited either way."""
    from server.store.security_log import record_event

    row = staff_by_email(db, email) if len(email) <= 320 else None
    ok = _verify(row["password_hash"] if row else _DUMMY_HASH, password)
    ok = ok and row is not None and bool(row["active"])
    with write_tx(db):
        if ok:
            if _hasher.check_needs_rehash(row["password_hash"]):
                _store_hash(db, row, _hasher.hash(password), Actor.system("password-rehash"), "staff.password_rehash",
                            {"parameters": _parameters()}, now, keep_must_change=True)
            write_audit(db, Actor.staff(row["id"]), "staff.login", entity="staff",
                        entity_id=row["id"], site_id=row["site_id"],
                        detail={"client_addr": client_addr}, now=now)
        else:
            record_event(db, "staff.login_failed", client_addr=client_addr,
                         site_id=row["site_id"] if row else None,
                         detail={"account": f"staff:{row['id']}" if row else unknown_account(email)}, now=now)
    return public(get_staff(db, row["id"])) if ok else None


def _verify(password_hash: str, password: str) -> bool:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _parameters() -> dict[str, int]:
    p = PASSWORD_PARAMETERS
    return {"time_cost": p.time_cost, "memory_kib": p.memory_cost, "parallelism": p.parallelism}


def _store_hash(db: Database, row: dict[str, Any], password_hash: str, actor: Actor, action: str,
                detail: dict[str, Any], now: datetime | None, *, must_change: bool = False,
                keep_must_change: bool = False) -> None:
    flag = row["must_change_password"] if keep_must_change else int(must_change)
    db.execute("UPDATE staff SET password_hash = ?, must_change_password = ?, password_changed_at = ?"
               " WHERE id = ?", [password_hash, flag, iso(now or utc_now()), row["id"]])
    write_audit(db, actor, action, entity="staff", entity_id=row["id"], site_id=row["site_id"],
                detail={**detail, "must_change_password": bool(flag)}, now=now)


def change_password(db: Database, staff_id: int, current: str, new: str, *, now: datetime | None = None,
                    client_addr: str | None = None) -> dict[str, Any]:
    """The holder changes their own password (self-service, or the forced change at first sign-in
    or after a reset): the current one is checked, the new one must pass the policy and differ."""
    row = get_staff(db, staff_id)
    if row is None or not row["active"]:
        raise EproError("auth.login_required", 401)
    if not _verify(row["password_hash"], current):
        raise EproError("staff.password_wrong", 400, errors=[
            FieldError("current_password", "password_wrong", "The current password is not right.")])
    check_password(new, email=row["email"], name=row["name"], field="new_password")
    if current == new:
        raise EproError("staff.password_rejected", 400, errors=[
            FieldError("new_password", "password.unchanged", "Choose a password different from the current one.")])
    with write_tx(db):
        reason = "required" if row["must_change_password"] else "self_service"
        _store_hash(db, row, _hasher.hash(new), Actor.staff(staff_id), "staff.password_change",
                    {"reason": reason, "client_addr": client_addr}, now)
    return public(get_staff(db, staff_id))


def reset_password(db: Database, staff_id: int, temporary: str, *, actor: Actor, reason: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """An admin (or the command line) sets a temporary password that must be changed at the next
    sign-in; the account's sessions end. Nobody resets their own password this way."""
    row = get_staff(db, staff_id)
    if row is None:
        raise EproError("not_found", 404, detail=f"staff {staff_id}")
    if actor.kind == "staff" and str(actor.id) == str(staff_id):
        raise EproError("staff.own_account", 403, detail="change your own password on your account page")
    if not (reason or "").strip():
        raise EproError("validation.invalid", 400, errors=[
            FieldError("reason", "reason_required", "A reason is required.")])
    check_password(temporary, email=row["email"], name=row["name"])
    with write_tx(db):
        _store_hash(db, row, _hasher.hash(temporary), actor, "staff.password_reset",
                    {"reason": reason.strip()}, now, must_change=True)
        db.execute("UPDATE staff_sessions SET ended_at = ?, end_reason = 'replaced' WHERE staff_id = ?"
                   " AND ended_at IS NULL", [iso(now or utc_now()), staff_id])
    return public(get_staff(db, staff_id))


def set_staff_active(db: Database, staff_id: int, active: bool, *, actor: Actor,
                     reason: str, now: datetime | None = None) -> dict[str, Any]:
    """Disable or re-enable an account (never deleted, IA-01); audited with the reason."""
    if actor.kind == "staff" and str(actor.id) == str(staff_id):
        raise EproError("staff.own_account", 403, detail="nobody enables or disables their own account")
    with write_tx(db):
        row = get_staff(db, staff_id)
        if row is None:
            raise EproError("not_found", 404, detail=f"staff {staff_id}")
        db.execute("UPDATE staff SET active = ? WHERE id = ?", [int(active), staff_id])
        write_audit(db, actor, "staff.enable" if active else "staff.disable", entity="staff",
                    entity_id=staff_id, site_id=row["site_id"],
                    detail={"old": bool(row["active"]), "new": active, "reason": reason}, now=now)
    return public(get_staff(db, staff_id))


def set_staff_role(db: Database, staff_id: int, role: str, *, actor: Actor, reason: str,
                   now: datetime | None = None) -> dict[str, Any]:
    if role not in ROLES:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("role", "one_of", f"Role must be one of: {', '.join(ROLES)}.")])
    if actor.kind == "staff" and str(actor.id) == str(staff_id):
        raise EproError("staff.own_role", 403, detail="nobody changes their own role")
    with write_tx(db):
        row = get_staff(db, staff_id)
        if row is None:
            raise EproError("not_found", 404, detail=f"staff {staff_id}")
        if (row["role"] == "admin") != (role == "admin"):
            raise EproError("staff.role_separation", 409, errors=[
                FieldError("role", "role_separation",
                           "The admin role and the clinical roles are never held by one account; "
                           "make a separate account.")])
        db.execute("UPDATE staff SET role = ? WHERE id = ?", [role, staff_id])
        write_audit(db, actor, "staff.role_change", entity="staff", entity_id=staff_id,
                    site_id=row["site_id"], detail={"old": row["role"], "new": role,
                                                    "reason": reason}, now=now)
    return public(get_staff(db, staff_id))
