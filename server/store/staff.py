"""Staff accounts: one email each, one site, one role, argon2id password hashes (IA-01, IA-10).

Logins are audited, successes and failures alike, without the password (AT-06, AT-10). A wrong
email and a wrong password look the same to the caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
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
NAME_MAX = 200  # the same bound as a typed printed name at sign-off
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verifying an unknown email against this keeps the timing of both failure kinds alike
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


def public(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A staff row without its password hash."""
    if row is None:
        return None
    return {k: v for k, v in row.items() if k != "password_hash"}


def add_staff(db: Database, email: str, site_code: str, role: str, password: str, *,
              actor: Actor, now: datetime | None = None, name: str | None = None) -> dict[str, Any]:
    """Add an account. ``name`` is the display name a sign-off prints (21 CFR 11.50); optional,
    blank means none (the investigator then types the printed name when signing)."""
    email = check_email(email)
    name = (name or "").strip() or None
    if name is not None and len(name) > NAME_MAX:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("name", "max_length", f"At most {NAME_MAX} characters.")])
    if role not in ROLES:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("role", "one_of", f"Role must be one of: {', '.join(ROLES)}.")])
    if len(password) < MIN_PASSWORD_LENGTH:
        raise EproError("staff.password_too_short", 400, errors=[
            FieldError("password", "length", f"At least {MIN_PASSWORD_LENGTH} characters.")])
    password_hash = _hasher.hash(password)
    with write_tx(db):
        site = get_site(db, site_code)
        if query_one(db, "SELECT id FROM staff WHERE email = ?", [email]):
            raise EproError("staff.exists", 409)
        cur = db.execute(
            "INSERT INTO staff (email, name, site_id, role, password_hash, active, created_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?)",
            [email, name, site["id"], role, password_hash, iso(now or utc_now())])
        staff_id = cur.lastrowid
        write_audit(db, actor, "staff.create", entity="staff", entity_id=staff_id,
                    site_id=site["id"], detail={"email": email, "name": name, "role": role, "site": site_code},
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
    row = staff_by_email(db, email)
    ok = False
    try:
        ok = _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    ok = ok and row is not None and bool(row["active"])
    with write_tx(db):
        if ok:
            write_audit(db, Actor.staff(row["id"]), "staff.login", entity="staff",
                        entity_id=row["id"], site_id=row["site_id"],
                        detail={"client_addr": client_addr}, now=now)
        else:
            write_audit(db, Actor.anonymous(client_addr), "staff.login_failed", entity="staff",
                        entity_id=row["id"] if row else None,
                        site_id=row["site_id"] if row else None,
                        detail={"email": email.strip()[:200], "client_addr": client_addr}, now=now)
    return public(row) if ok else None


def set_staff_active(db: Database, staff_id: int, active: bool, *, actor: Actor,
                     reason: str, now: datetime | None = None) -> dict[str, Any]:
    """Disable or re-enable an account (never deleted, IA-01); audited with the reason."""
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
    with write_tx(db):
        row = get_staff(db, staff_id)
        if row is None:
            raise EproError("not_found", 404, detail=f"staff {staff_id}")
        db.execute("UPDATE staff SET role = ? WHERE id = ?", [role, staff_id])
        write_audit(db, actor, "staff.role_change", entity="staff", entity_id=staff_id,
                    site_id=row["site_id"], detail={"old": row["role"], "new": role,
                                                    "reason": reason}, now=now)
    return public(get_staff(db, staff_id))
