"""Staff web sessions and login rate limits (IA-11, IA-13): SQL only, no Flask.

A session is a random 256-bit cookie; only its sha256 is stored, so a copy of the database cannot be
used to sign in. The CSRF token of a session is derived from the cookie (:func:`csrf_for`) and never
stored. A session ends on logout, after ``idle_minutes`` without a request, when the staff member ends
it from another session, or when the account is disabled; ended sessions stay as rows (history).

Login attempts are counted per account (the email typed) and per client address over a sliding
window; past either limit the password is not even checked and the attempt is refused (429) and
audited. Success and failure are audited by :func:`server.store.staff.authenticate`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server.clock import iso, parse_iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from server.store.security_log import record_event
from server.store.staff import authenticate, get_staff, public, staff_by_email, unknown_account

END_REASONS = ("logout", "idle", "ended_by_user", "staff_disabled", "replaced", "expired")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_for(token: str) -> str:
    """The CSRF token that belongs to a session (or pre-login) cookie value."""
    return hmac.new(token.encode("utf-8"), b"als-epro staff csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LoginLimits:
    window_seconds: int = 900
    per_account: int = 5
    per_address: int = 20


@dataclass(frozen=True)
class LoginResult:
    status: str                       # "ok" | "failed" | "rate_limited"
    token: str | None = None
    staff: dict[str, Any] | None = None
    session: dict[str, Any] | None = None


def _failures(db: Database, column: str, value: str, since: str) -> int:
    return db.execute(f"SELECT COUNT(*) FROM staff_login_attempts WHERE {column} = ? AND at >= ?"
                      " AND outcome = 'failed'", [value, since]).fetchone()[0]


def _attempt(db: Database, email: str, addr: str, outcome: str, now: datetime) -> None:
    with write_tx(db):
        db.execute("INSERT INTO staff_login_attempts (at, email, client_addr, outcome) VALUES (?, ?, ?, ?)",
                   [iso(now), email, addr, outcome])
        if outcome == "rate_limited":
            record_event(db, "staff.login_rate_limited", client_addr=addr, detail={"account": email}, now=now)


def account_key(db: Database, email: str) -> str:
    """What login attempts are counted under: the account's email, or for an email no account has,
    a hash of what was typed (it may be a password in the wrong field; it is never stored)."""
    row = staff_by_email(db, email) if len(email) <= 320 else None
    return row["email"].lower() if row else unknown_account(email)


def login(db: Database, email: str, password: str, *, client_addr: str | None, user_agent: str = "",
          lang: str | None = None, limits: LoginLimits = LoginLimits(),
          now: datetime | None = None) -> LoginResult:
    """Check the limits, then the credentials; on success open a session and return its cookie."""
    now = now or utc_now()
    email_key = account_key(db, email)
    addr = client_addr or "unknown"
    since = iso(now - timedelta(seconds=limits.window_seconds))
    if (_failures(db, "email", email_key, since) >= limits.per_account
            or _failures(db, "client_addr", addr, since) >= limits.per_address):
        _attempt(db, email_key, addr, "rate_limited", now)
        return LoginResult("rate_limited")
    staff = authenticate(db, email, password, client_addr=addr, now=now)
    _attempt(db, email_key, addr, "ok" if staff else "failed", now)
    if staff is None:
        return LoginResult("failed")
    token, session = open_session(db, staff["id"], client_addr=addr, user_agent=user_agent, lang=lang,
                                  now=now)
    return LoginResult("ok", token, staff, session)


def open_session(db: Database, staff_id: int, *, client_addr: str | None = None, user_agent: str = "",
                 lang: str | None = None, now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """A new session row for a signed-in staff member; returns the cookie value (shown once)."""
    now = now or utc_now()
    token = secrets.token_urlsafe(32)
    with write_tx(db):
        cur = db.execute("INSERT INTO staff_sessions (token_hash, staff_id, lang, created_at, last_seen_at,"
                         " client_addr, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [hash_token(token), staff_id, lang, iso(now), iso(now), client_addr,
                          (user_agent or "")[:300]])
    return token, get_session(db, cur.lastrowid)


def get_session(db: Database, session_id: int) -> dict[str, Any] | None:
    return query_one(db, "SELECT * FROM staff_sessions WHERE id = ?", [session_id])


@dataclass(frozen=True)
class Resolved:
    """What a cookie is worth on this request: a live session with its staff row, or why not."""

    session: dict[str, Any] | None
    staff: dict[str, Any] | None
    ended: str | None = None          # END_REASONS value when the cookie named a session that ended


def resolve(db: Database, token: str | None, *, idle_minutes: float, absolute_minutes: float | None = None,
            now: datetime | None = None, touch_after_seconds: float = 15) -> Resolved:
    """The live session for a cookie, touched; an idle one, or one older than ``absolute_minutes``
    however busy (``STAFF_SESSION_MAX_MINUTES``), is ended (and audited) here."""
    if not token:
        return Resolved(None, None)
    now = now or utc_now()
    row = query_one(db, "SELECT * FROM staff_sessions WHERE token_hash = ?", [hash_token(token)])
    if row is None:
        return Resolved(None, None)
    if row["ended_at"] is not None:
        return Resolved(None, None, row["end_reason"])
    idle = (now - parse_iso(row["last_seen_at"])).total_seconds()
    if idle > idle_minutes * 60:
        end_session(db, row["id"], "idle", actor=Actor.system("staff-sessions"), now=now)
        return Resolved(None, None, "idle")
    if absolute_minutes is not None and (now - parse_iso(row["created_at"])).total_seconds() > absolute_minutes * 60:
        end_session(db, row["id"], "expired", actor=Actor.system("staff-sessions"), now=now)
        return Resolved(None, None, "expired")
    staff = get_staff(db, row["staff_id"])
    if staff is None or not staff["active"]:
        end_session(db, row["id"], "staff_disabled", actor=Actor.system("staff-sessions"), now=now)
        return Resolved(None, None, "staff_disabled")
    if idle > touch_after_seconds:
        with write_tx(db):
            db.execute("UPDATE staff_sessions SET last_seen_at = ? WHERE id = ?", [iso(now), row["id"]])
        row = {**row, "last_seen_at": iso(now)}
    return Resolved(row, public(staff))


def end_session(db: Database, session_id: int, reason: str, *, actor: Actor,
                now: datetime | None = None) -> bool:
    """End a session (no-op if already ended); audited. Returns whether it was live."""
    if reason not in END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}")
    now = now or utc_now()
    with write_tx(db):
        row = get_session(db, session_id)
        if row is None or row["ended_at"] is not None:
            return False
        db.execute("UPDATE staff_sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
                   [iso(now), reason, session_id])
        staff = get_staff(db, row["staff_id"])
        action = {"logout": "staff.logout", "idle": "staff.session_timeout"}.get(reason, "staff.session_end")
        write_audit(db, actor, action, entity="staff", entity_id=row["staff_id"],
                    site_id=staff["site_id"] if staff else None,
                    detail={"session_id": session_id, "reason": reason,
                            "started_at": row["created_at"], "last_seen_at": row["last_seen_at"]}, now=now)
    return True


def end_all_sessions(db: Database, staff_id: int, reason: str, *, actor: Actor,
                     now: datetime | None = None) -> int:
    """End every live session of a staff member (e.g. the account was disabled)."""
    ids = [r["id"] for r in query(db, "SELECT id FROM staff_sessions WHERE staff_id = ? AND ended_at IS NULL",
                                  [staff_id])]
    return sum(end_session(db, i, reason, actor=actor, now=now) for i in ids)


def live_sessions(db: Database, staff_id: int, *, idle_minutes: float,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Sessions of a staff member that have not ended and are not past the idle timeout."""
    now = now or utc_now()
    cutoff = iso(now - timedelta(minutes=idle_minutes))
    rows = query(db, "SELECT id, created_at, last_seen_at, client_addr, user_agent, lang FROM staff_sessions"
                     " WHERE staff_id = ? AND ended_at IS NULL AND last_seen_at >= ? ORDER BY created_at DESC",
                 [staff_id, cutoff])
    return rows


def set_language(db: Database, session_id: int, lang: str) -> None:
    """Remember the page language for a session (operational, not audited)."""
    with write_tx(db):
        db.execute("UPDATE staff_sessions SET lang = ? WHERE id = ?", [lang, session_id])
