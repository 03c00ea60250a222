"""The security log: unauthenticated failures in a bounded table, summed into the audit trail.

A bad pairing code, a failed staff login, a login refused by the rate limit or a call with a revoked
device token is *not* one permanent audit row each (an attacker could grow the permanent table at
hundreds of rows a second). Each is one row of ``security_events`` — pruned to the newest
:data:`SETTINGS` ``max_rows`` — and one increment of ``security_counters`` for its kind and
interval. When an interval has closed, the next event (or the scheduled job,
:func:`flush_summaries`) writes one ``security.summary`` audit row per kind for it: how many, from how
many addresses, the busiest ones, first and last time. The audit trail so keeps a permanent, counted
record (AT-06, IA-11) that grows with time, not with the attacker's rate.

Rate limits read their own tables (``pairing_attempts``, ``staff_login_attempts``), not this log.
No secret goes in: callers pass what the audit trail would have held (never a password, a code or a
token; an unknown account as ``"unknown"`` with a salted hash of what was typed).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import write_tx
from server.store.audit import Actor, _check_no_secrets, write_audit

SETTINGS = {"max_rows": 100_000, "period_minutes": 15, "prune_every": 500}
KINDS = ("pairing.failed", "pairing.rate_limited", "staff.login_failed", "staff.login_rate_limited",
         "device.revoked_token_used")
SUMMARY_ACTION = "security.summary"
TOP_ADDRESSES = 5


def configure(max_rows: int | None = None, period_minutes: float | None = None) -> None:
    """From the server's configuration (``SECURITY_LOG_MAX_ROWS``, ``SECURITY_SUMMARY_MINUTES``)."""
    if max_rows is not None:
        if int(max_rows) < 100:
            raise ValueError("SECURITY_LOG_MAX_ROWS must be at least 100")
        SETTINGS["max_rows"] = int(max_rows)
    if period_minutes is not None:
        if not 1 <= float(period_minutes) <= 1440:
            raise ValueError("SECURITY_SUMMARY_MINUTES must be between 1 and 1440")
        SETTINGS["period_minutes"] = float(period_minutes)


def _period(now: datetime) -> tuple[datetime, datetime]:
    length = timedelta(minutes=SETTINGS["period_minutes"])
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    start = epoch + ((now - epoch) // length) * length
    return start, start + length


def record_event(db: Database, kind: str, *, client_addr: str | None = None, site_id: int | None = None,
                 detail: dict[str, Any] | None = None, now: datetime | None = None) -> None:
    """Log one security event (inside the caller's transaction, or its own)."""
    if kind not in KINDS:
        raise ValueError(f"unknown security event kind {kind!r}")
    detail = dict(detail or {})
    _check_no_secrets(detail)
    now = now or utc_now()
    addr = (client_addr or "unknown")[:64]
    start, end = _period(now)
    with write_tx(db):
        flush_summaries(db, now=now)
        cur = db.execute("INSERT INTO security_events (at, kind, client_addr, site_id, detail) VALUES (?, ?, ?, ?, ?)",
                         [iso(now), kind, addr, site_id, json.dumps(detail, sort_keys=True, ensure_ascii=False)])
        row = db.execute("SELECT count, addresses FROM security_counters WHERE kind = ? AND period_start = ?",
                         [kind, iso(start)]).fetchone()
        if row is None:
            db.execute("INSERT INTO security_counters (kind, period_start, period_end, count, addresses, first_at,"
                       " last_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
                       [kind, iso(start), iso(end), json.dumps({addr: 1}), iso(now), iso(now)])
        else:
            addresses = json.loads(row[1])
            if addr in addresses or len(addresses) < 1000:   # bounded too; the count stays exact
                addresses[addr] = addresses.get(addr, 0) + 1
            db.execute("UPDATE security_counters SET count = count + 1, addresses = ?, last_at = ?"
                       " WHERE kind = ? AND period_start = ?", [json.dumps(addresses), iso(now), kind, iso(start)])
        if cur.lastrowid % SETTINGS["prune_every"] == 0:
            prune(db)


def prune(db: Database) -> int:
    """Keep the newest ``max_rows`` events (the rotation); returns how many were removed."""
    newest = db.execute("SELECT MAX(id) FROM security_events").fetchone()[0] or 0
    cur = db.execute("DELETE FROM security_events WHERE id <= ?", [newest - SETTINGS["max_rows"]])
    return cur.rowcount


def flush_summaries(db: Database, *, now: datetime | None = None) -> int:
    """One ``security.summary`` audit row per kind for every closed interval not yet summarised."""
    now = now or utc_now()
    written = 0
    with write_tx(db):
        rows = db.execute("SELECT kind, period_start, period_end, count, addresses, first_at, last_at"
                          " FROM security_counters WHERE audit_seq IS NULL AND period_end <= ?"
                          " ORDER BY period_start, kind", [iso(now)]).fetchall()
        for kind, start, end, count, addresses, first_at, last_at in rows:
            by_addr = json.loads(addresses)
            top = sorted(by_addr.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ADDRESSES]
            audit = write_audit(db, Actor.system("security-log"), SUMMARY_ACTION, entity="security_counter",
                                entity_id=f"{kind}@{start}",
                                detail={"kind": kind, "period_start": start, "period_end": end, "count": count,
                                        "distinct_addresses": len(by_addr),
                                        "top_addresses": [{"client_addr": a, "count": n} for a, n in top],
                                        "first_at": first_at, "last_at": last_at}, now=now)
            db.execute("UPDATE security_counters SET audit_seq = ? WHERE kind = ? AND period_start = ?",
                       [audit["seq"], kind, start])
            written += 1
    return written


def events(db: Database, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest security events (for staff review and tests), detail decoded."""
    sql, params = "SELECT * FROM security_events", []
    if kind:
        sql, params = sql + " WHERE kind = ?", [kind]
    cur = db.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
    names = [d[0] for d in cur.description]
    return [{**dict(zip(names, r)), "detail": json.loads(r[names.index("detail")])} for r in cur.fetchall()]


def counted(db: Database, kind: str) -> int:
    """Every event of ``kind`` ever counted (summarised or still open)."""
    return db.execute("SELECT COALESCE(SUM(count), 0) FROM security_counters WHERE kind = ?", [kind]).fetchone()[0]
