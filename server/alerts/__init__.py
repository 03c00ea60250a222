"""Site alerts for safety flags (issue 12): on-call lists, alert settings, the outbox and its dispatcher.

Flags are computed, never stored (:mod:`server.store.reviews`). The dispatcher (:func:`dispatch`, a plain
function the serve process runs every ``ALERTS_INTERVAL_SECONDS`` and ``als-epro-server alerts
send-pending`` runs once) does three things, each in its own short transactions:

1. **detect** — evaluates the flags of every participant with records newer than its watermark
   (``server_seq``), and of everyone every ``ALERTS_FULL_SWEEP_MINUTES`` (corrections, doses never
   confirmed). An *open* flag seen for the first time gets one ``alert_flags`` row (append-only); an
   urgent one (``[flags.urgent]`` in the protocol file) at once one outbox row per on-call staff
   member and channel. Flags on records that were stored before alerting existed (migration m011) are
   not alerted.
2. **digest** — after ``ALERTS_DIGEST_TIME`` (local), one digest per on-call person and channel listing
   the day's non-urgent flags, in that person's language.
3. **send** — every due outbox row: *claim* (status ``sending``, attempt counted, ``alert.attempt``
   audit row, committed), send, *record* (``alert.sent`` / ``alert.retry`` with the next time /
   ``alert.failed``). Failures are retried with doubling pauses for ``ALERTS_RETRY_HOURS``; one failing
   delivery never stops the others.

**Exactly once, and the one exception.** ``alert_outbox.idem_key`` is unique (``urgent:<flag>:<staff>:
<channel>`` / ``digest:<site>:<date>:<staff>:<channel>``), so a recipient gets at most one delivery per
flag and channel however often detection runs, in however many processes. The only window left is a
crash after the mail server (or webhook) accepted a message and before ``sent`` was committed: that
claim is found ``sending`` after ``ALERTS_LEASE_SECONDS`` and sent once more (``alert.interrupted``
audit row), with the same ``Message-ID`` and ``Idempotency-Key``, so a receiver can drop it. One crash
in that window gives at most one duplicate; a crash anywhere else gives none.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, time, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from server.clock import iso, parse_iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from shared.errors import EproError, FieldError
from shared.messages import LANGUAGES
from shared.protocol import Protocol

log = logging.getLogger("server.alerts")
SYSTEM = Actor.system("alerts")
CHANNELS = ("email", "webhook")

# --- state ---------------------------------------------------------------------------------------


def _state(db: Database, key: str, default: str | None = None) -> str | None:
    row = query_one(db, "SELECT value FROM alert_state WHERE key = ?", [key])
    return row["value"] if row else default


def _set_state(db: Database, key: str, value: str) -> None:
    db.execute("INSERT INTO alert_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
               " value = excluded.value", [key, value])


def ensure_started(db: Database, now: datetime) -> dict[str, str]:
    """The moment alerting started on this database: records stored before it raise no alerts."""
    with write_tx(db):
        if _state(db, "enabled_seq") is None:
            seq = db.execute("SELECT COALESCE(MAX(server_seq), 0) FROM records").fetchone()[0]
            _set_state(db, "enabled_seq", str(seq))
            _set_state(db, "enabled_at", iso(now))
            _set_state(db, "watermark_seq", str(seq))
            write_audit(db, SYSTEM, "alert.enabled", entity="alerts", entity_id="state",
                        detail={"enabled_seq": seq}, now=now)
    return {"enabled_seq": _state(db, "enabled_seq"), "enabled_at": _state(db, "enabled_at")}


# --- on-call list and settings -------------------------------------------------------------------------

def oncall(db: Database, site_id: int) -> list[dict[str, Any]]:
    """The site's on-call list with each person's settings (defaults where none were saved)."""
    rows = query(db, "SELECT o.added_at, o.added_by, s.id, s.email, s.name, s.role, s.active, s.site_id"
                     " FROM alert_oncall o JOIN staff s ON s.id = o.staff_id WHERE o.site_id = ?"
                     " ORDER BY s.email", [site_id])
    return [{**r, "settings": settings(db, r["id"])} for r in rows]


def add_oncall(db: Database, site_id: int, staff_id: int, actor: Actor, *, now: datetime | None = None) -> None:
    now = now or utc_now()
    with write_tx(db):
        staff = query_one(db, "SELECT id, site_id, active, role FROM staff WHERE id = ?", [staff_id])
        if staff is None:
            raise EproError("not_found", 404, detail=f"staff {staff_id}")
        if staff["site_id"] != site_id or staff["role"] == "admin":
            raise EproError("validation.failed", 400, errors=[FieldError("staff_id", "site", "not clinical staff of this site")])
        cur = db.execute("INSERT INTO alert_oncall (site_id, staff_id, added_at, added_by) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT DO NOTHING", [site_id, staff_id, iso(now), str(actor)])
        if cur.rowcount:
            write_audit(db, actor, "alert.oncall_add", entity="staff", entity_id=str(staff_id), site_id=site_id,
                        detail={"site_id": site_id}, now=now)


def remove_oncall(db: Database, site_id: int, staff_id: int, actor: Actor, *, now: datetime | None = None) -> None:
    now = now or utc_now()
    with write_tx(db):
        cur = db.execute("DELETE FROM alert_oncall WHERE site_id = ? AND staff_id = ?", [site_id, staff_id])
        if cur.rowcount:
            write_audit(db, actor, "alert.oncall_remove", entity="staff", entity_id=str(staff_id),
                        site_id=site_id, detail={"site_id": site_id}, now=now)


DEFAULT_SETTINGS = {"email_enabled": 1, "webhook_url": None, "digest_enabled": 1, "lang": "en"}


def settings(db: Database, staff_id: int) -> dict[str, Any]:
    row = query_one(db, "SELECT * FROM alert_settings WHERE staff_id = ?", [staff_id])
    return {**DEFAULT_SETTINGS, "staff_id": staff_id, "updated_at": None, **(row or {})}


def save_settings(db: Database, staff_id: int, *, email_enabled: bool, digest_enabled: bool, lang: str,
                  webhook_url: str | None, actor: Actor, now: datetime | None = None) -> dict[str, Any]:
    """A staff member's own alert settings, audited (old and new; of a webhook only its host)."""
    from server.alerts.send import check_webhook_url, webhook_host

    now = now or utc_now()
    webhook_url = (webhook_url or "").strip() or None
    errors = []
    if lang not in LANGUAGES:
        errors.append(FieldError("lang", "enum", "en or zh-CN"))
    if webhook_url and (len(webhook_url) > 1000 or check_webhook_url(webhook_url)):
        errors.append(FieldError("webhook_url", "https", "an https:// address"))
    if errors:
        raise EproError("validation.failed", 400, errors=errors)
    with write_tx(db):
        old = settings(db, staff_id)
        new = {"email_enabled": int(bool(email_enabled)), "digest_enabled": int(bool(digest_enabled)),
               "lang": lang, "webhook_url": webhook_url}
        db.execute("INSERT INTO alert_settings (staff_id, email_enabled, webhook_url, digest_enabled, lang,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(staff_id) DO UPDATE SET"
                   " email_enabled = excluded.email_enabled, webhook_url = excluded.webhook_url,"
                   " digest_enabled = excluded.digest_enabled, lang = excluded.lang, updated_at = excluded.updated_at",
                   [staff_id, new["email_enabled"], webhook_url, new["digest_enabled"], lang, iso(now)])

        def shown(s: Mapping[str, Any]) -> dict[str, Any]:
            return {"email_enabled": bool(s["email_enabled"]), "digest_enabled": bool(s["digest_enabled"]),
                    "lang": s["lang"], "webhook_host": webhook_host(s["webhook_url"])}
        write_audit(db, actor, "alert.settings_change", entity="staff", entity_id=str(staff_id),
                    detail={"old": shown(old), "new": shown(new),
                            "webhook_changed": old["webhook_url"] != webhook_url}, now=now)
    return settings(db, staff_id)


# --- detection -------------------------------------------------------------------------------------------

def _digest_date(config: Mapping[str, Any], protocol: Protocol, now: datetime) -> str:
    """The local date of the first digest cut-off after ``now``."""
    local = now.astimezone(ZoneInfo(protocol.timezone))
    if local.time() >= _digest_time(config):
        return (local.date() + timedelta(days=1)).isoformat()
    return local.date().isoformat()


def _digest_time(config: Mapping[str, Any]) -> time:
    hh, mm = str(config.get("ALERTS_DIGEST_TIME") or "08:00").split(":")
    return time(int(hh), int(mm))


def _recipients(db: Database, site_id: int) -> list[dict[str, Any]]:
    return [r for r in oncall(db, site_id) if r["active"]]


def _deliveries_for(person: Mapping[str, Any]) -> list[tuple[str, str]]:
    s = person["settings"]
    out = []
    if s["email_enabled"]:
        out.append(("email", person["email"]))
    if s["webhook_url"]:
        out.append(("webhook", s["webhook_url"]))
    return out


def _enqueue(db: Database, *, idem_key: str, kind: str, channel: str, site_id: int, staff_id: int,
             address: str, lang: str, flag_key: str | None, flag_keys: list[str], now: datetime) -> bool:
    cur = db.execute(
        "INSERT INTO alert_outbox (idem_key, kind, channel, site_id, staff_id, address, lang, flag_key,"
        " flag_keys, status, attempts, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " 'pending', 0, ?, ?) ON CONFLICT(idem_key) DO NOTHING",
        [idem_key, kind, channel, site_id, staff_id, address, lang, flag_key, json.dumps(flag_keys),
         iso(now), iso(now)])
    if cur.rowcount:
        write_audit(db, SYSTEM, "alert.enqueue", entity="alert_delivery", entity_id=idem_key, site_id=site_id,
                    detail={"kind": kind, "channel": channel, "staff_id": staff_id, "flags": flag_keys}, now=now)
    return bool(cur.rowcount)


def _participants_to_check(db: Database, config: Mapping[str, Any], now: datetime) -> tuple[list[int], int, bool]:
    watermark = int(_state(db, "watermark_seq", "0"))
    top = db.execute("SELECT COALESCE(MAX(server_seq), 0) FROM records").fetchone()[0]
    last_full = _state(db, "last_full_sweep")
    full = last_full is None or now - parse_iso(last_full) >= timedelta(
        minutes=float(config.get("ALERTS_FULL_SWEEP_MINUTES") or 15))
    if full:
        ids = [r["id"] for r in query(db, "SELECT id FROM participants ORDER BY id")]
    else:
        ids = [r["participant_id"] for r in query(
            db, "SELECT DISTINCT participant_id FROM records WHERE server_seq > ? AND server_seq <= ?"
                " ORDER BY participant_id", [watermark, top])]
    return ids, top, full


def detect(db: Database, protocol: Protocol, config: Mapping[str, Any], now: datetime) -> dict[str, int]:
    """Record flags seen for the first time; enqueue the urgent ones for the on-call list."""
    from server.store.participants import participant_by_id
    from server.store.reviews import participant_flags

    started = ensure_started(db, now)
    enabled_seq = int(started["enabled_seq"])
    enabled_date = started["enabled_at"][:10]
    ids, top, full = _participants_to_check(db, config, now)
    found = queued = 0
    for pid in ids:
        participant = participant_by_id(db, pid)
        items = participant_flags(db, protocol, participant, now=now)["flags"]
        seqs = {r["id"]: r["server_seq"] for r in query(db, "SELECT id, server_seq FROM records"
                                                            " WHERE participant_id = ?", [pid])}
        known = {r["flag_key"] for r in query(db, "SELECT flag_key FROM alert_flags WHERE participant_id = ?", [pid])}
        fresh = []
        for item in items:
            if item["state"] != "open" or item["key"] in known:
                continue
            if item["record_id"] is not None and seqs.get(item["record_id"], 0) <= enabled_seq:
                continue          # stored before alerting existed
            if item["record_id"] is None and str(item["flag"].detail.get("late_until") or "9") < enabled_date:
                continue          # a dose missed before alerting existed
            fresh.append(item)
        if not fresh:
            continue
        with write_tx(db):
            people = _recipients(db, participant["site_id"])
            for item in fresh:
                urgent = protocol.is_urgent(item["rule"])
                cur = db.execute(
                    "INSERT INTO alert_flags (flag_key, site_id, participant_id, rule, record_id, urgent,"
                    " detected_at, digest_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [item["key"], participant["site_id"], pid, item["rule"], item["record_id"], int(urgent),
                     iso(now), None if urgent else _digest_date(config, protocol, now)])
                if not cur.rowcount:
                    continue
                found += 1
                write_audit(db, SYSTEM, "alert.flag_detected", entity="flag", entity_id=item["key"],
                            site_id=participant["site_id"],
                            detail={"rule": item["rule"], "urgent": urgent, "subject": participant["subject"],
                                    "recipients": len(people) if urgent else None}, now=now)
                if not urgent:
                    continue
                for person in people:
                    for channel, address in _deliveries_for(person):
                        queued += _enqueue(db, idem_key=f"urgent:{item['key']}:{person['id']}:{channel}",
                                           kind="urgent", channel=channel, site_id=participant["site_id"],
                                           staff_id=person["id"], address=address, lang=person["settings"]["lang"],
                                           flag_key=item["key"], flag_keys=[item["key"]], now=now)
    with write_tx(db):
        if top > int(_state(db, "watermark_seq", "0")):
            _set_state(db, "watermark_seq", str(top))
        if full:
            _set_state(db, "last_full_sweep", iso(now))
    return {"checked": len(ids), "new_flags": found, "queued": queued}


def plan_digests(db: Database, protocol: Protocol, config: Mapping[str, Any], now: datetime) -> int:
    """Enqueue the digests whose local cut-off has passed (each site and date once)."""
    local = now.astimezone(ZoneInfo(protocol.timezone))
    due = local.date() if local.time() >= _digest_time(config) else local.date() - timedelta(days=1)
    pending = query(db, "SELECT site_id, digest_date, GROUP_CONCAT(flag_key, char(31)) AS keys FROM alert_flags"
                        " WHERE urgent = 0 AND digest_date <= ? GROUP BY site_id, digest_date ORDER BY digest_date",
                        [due.isoformat()])
    queued = 0
    for row in pending:
        marker = f"digest:{row['site_id']}:{row['digest_date']}"
        if _state(db, marker) is not None:
            continue
        keys = sorted(row["keys"].split("\x1f"))
        with write_tx(db):
            if _state(db, marker) is not None:
                continue
            _set_state(db, marker, iso(now))
            for person in _recipients(db, row["site_id"]):
                if not person["settings"]["digest_enabled"]:
                    continue
                for channel, address in _deliveries_for(person):
                    queued += _enqueue(db, idem_key=f"{marker}:{person['id']}:{channel}", kind="digest",
                                       channel=channel, site_id=row["site_id"], staff_id=person["id"],
                                       address=address, lang=person["settings"]["lang"], flag_key=None,
                                       flag_keys=keys, now=now)
    return queued


# --- sending ----------------------------------------------------------------------------------------------

def backoff_seconds(config: Mapping[str, Any], attempts: int) -> float:
    first = float(config.get("ALERTS_BACKOFF_FIRST_SECONDS") or 30)
    top = float(config.get("ALERTS_BACKOFF_MAX_SECONDS") or 1800)
    return min(top, first * 2 ** max(0, attempts - 1))


def _due(db: Database, config: Mapping[str, Any], now: datetime, limit: int) -> list[dict[str, Any]]:
    lease = timedelta(seconds=float(config.get("ALERTS_LEASE_SECONDS") or 120))
    return query(db, "SELECT * FROM alert_outbox WHERE (status = 'pending' AND next_attempt_at <= ?)"
                     " OR (status = 'sending' AND claimed_at <= ?) ORDER BY kind = 'digest', id LIMIT ?",
                 [iso(now), iso(now - lease), limit])


def _claim(db: Database, row: Mapping[str, Any], now: datetime) -> bool:
    with write_tx(db):
        cur = db.execute("UPDATE alert_outbox SET status = 'sending', attempts = attempts + 1, claimed_at = ?"
                         " WHERE id = ? AND status = ? AND attempts = ?",
                         [iso(now), row["id"], row["status"], row["attempts"]])
        if cur.rowcount != 1:
            return False          # another dispatcher took it
        if row["status"] == "sending":
            write_audit(db, SYSTEM, "alert.interrupted", entity="alert_delivery", entity_id=row["idem_key"],
                        site_id=row["site_id"], detail={"attempt": row["attempts"], "claimed_at": row["claimed_at"],
                                                        "note": "no result recorded; sending again"}, now=now)
        write_audit(db, SYSTEM, "alert.attempt", entity="alert_delivery", entity_id=row["idem_key"],
                    site_id=row["site_id"], detail={"attempt": row["attempts"] + 1, "channel": row["channel"]}, now=now)
    return True


def _record(db: Database, row: Mapping[str, Any], config: Mapping[str, Any], now: datetime,
            error: Exception | None) -> str:
    attempt = row["attempts"] + 1
    with write_tx(db):
        if error is None:
            db.execute("UPDATE alert_outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
                       [iso(now), row["id"]])
            write_audit(db, SYSTEM, "alert.sent", entity="alert_delivery", entity_id=row["idem_key"],
                        site_id=row["site_id"], detail={"attempt": attempt, "channel": row["channel"]}, now=now)
            return "sent"
        message = str(error)[:300] or type(error).__name__
        permanent = bool(getattr(error, "permanent", False))
        deadline = parse_iso(row["created_at"]) + timedelta(hours=float(config.get("ALERTS_RETRY_HOURS") or 24))
        if permanent or now >= deadline:
            db.execute("UPDATE alert_outbox SET status = 'failed', last_error = ? WHERE id = ?", [message, row["id"]])
            write_audit(db, SYSTEM, "alert.failed", entity="alert_delivery", entity_id=row["idem_key"],
                        site_id=row["site_id"], detail={"attempt": attempt, "channel": row["channel"],
                                                        "error": message, "permanent": permanent}, now=now)
            return "failed"
        nxt = min(now + timedelta(seconds=backoff_seconds(config, attempt)), max(deadline, now))
        db.execute("UPDATE alert_outbox SET status = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ?",
                   [iso(nxt), message, row["id"]])
        write_audit(db, SYSTEM, "alert.retry", entity="alert_delivery", entity_id=row["idem_key"],
                    site_id=row["site_id"], detail={"attempt": attempt, "channel": row["channel"], "error": message,
                                                    "next_attempt_at": iso(nxt)}, now=now)
        return "retry"


def _message(db: Database, row: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    from server.alerts.send import compose

    keys = json.loads(row["flag_keys"])
    marks = ",".join("?" * len(keys))
    flags = query(db, f"SELECT f.flag_key, f.rule, p.subject FROM alert_flags f JOIN participants p"
                      f" ON p.id = f.participant_id WHERE f.flag_key IN ({marks}) ORDER BY p.subject, f.flag_key", keys)
    site = query_one(db, "SELECT code FROM sites WHERE id = ?", [row["site_id"]])
    return compose(row["kind"], [{"subject": f["subject"], "rule": f["rule"]} for f in flags], row["lang"], config,
                   site["code"] if site else "")


def _send(db: Database, row: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    from server.alerts import send

    message = _message(db, row, config)
    site = query_one(db, "SELECT code FROM sites WHERE id = ?", [row["site_id"]])
    if row["channel"] == "email":
        send.send_email(config, row["address"], message["subject"], message["text"],
                        send.message_id(row["idem_key"], config), row["idem_key"])
    else:
        send.send_webhook(config, row["address"], message, row["idem_key"], row["kind"], site["code"] if site else "")


def send_due(db: Database, config: Mapping[str, Any], now: datetime, *, limit: int = 100) -> dict[str, int]:
    out = {"sent": 0, "retry": 0, "failed": 0}
    for row in _due(db, config, now, limit):
        if not _claim(db, row, now):
            continue
        try:
            _send(db, row, config)
        except Exception as err:  # every failure is recorded on its own delivery; the others go on
            if not hasattr(err, "permanent"):
                log.exception("alert delivery %s failed unexpectedly", row["idem_key"])
            out[_record(db, row, config, now, err)] += 1
        else:
            out[_record(db, row, config, now, None)] += 1
    return out


def dispatch(db: Database, protocol: Protocol, config: Mapping[str, Any], now: datetime | None = None
             ) -> dict[str, Any]:
    """One dispatcher run: detect, plan digests, send what is due. Returns counts."""
    now = now or utc_now()
    found = detect(db, protocol, config, now)
    digests = plan_digests(db, protocol, config, now)
    sent = send_due(db, config, now)
    return {**found, "digests_queued": digests, **sent}


def run_dispatch(config: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduled job (serve process): one run against the configured database file."""
    from server.db import open_db
    from shared.protocol import load_protocol

    db = open_db(config["DB"], busy_timeout_ms=int(config.get("SQLITE_BUSY_TIMEOUT_MS") or 10000))
    try:
        return dispatch(db, load_protocol(config["PROTOCOL"]), config)
    except Exception:  # logged; the next run tries again
        log.exception("alert dispatcher run failed")
        raise
    finally:
        db.close()


# --- reading (pages) -------------------------------------------------------------------------------------

def deliveries(db: Database, *, site_id: int | None = None, status: str | None = None,
               limit: int = 500) -> list[dict[str, Any]]:
    where, params = [], []
    if site_id is not None:
        where.append("o.site_id = ?")
        params.append(site_id)
    if status:
        where.append("o.status = ?")
        params.append(status)
    sql = ("SELECT o.*, s.email AS staff_email, s.name AS staff_name, t.code AS site_code FROM alert_outbox o"
           " JOIN staff s ON s.id = o.staff_id JOIN sites t ON t.id = o.site_id"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY o.id DESC LIMIT ?")
    rows = query(db, sql, [*params, limit])
    subjects = {}
    for r in rows:
        keys = json.loads(r["flag_keys"])
        r["flag_keys"] = keys
        if keys:
            marks = ",".join("?" * len(keys))
            r["flags"] = query(db, f"SELECT f.flag_key, f.rule, p.subject FROM alert_flags f JOIN participants p"
                                   f" ON p.id = f.participant_id WHERE f.flag_key IN ({marks})", keys)
        else:
            r["flags"] = []
        subjects.update({f["flag_key"]: f["subject"] for f in r["flags"]})
    return rows


def unalerted_flags(db: Database, site_id: int) -> dict[int, list[dict[str, Any]]]:
    """``{participant_id: [flag]}``: urgent flags whose every delivery failed, or that nobody was on call for."""
    rows = query(db, "SELECT f.flag_key, f.rule, f.participant_id, COUNT(o.id) AS deliveries,"
                     " SUM(o.status = 'failed') AS failed FROM alert_flags f"
                     " LEFT JOIN alert_outbox o ON o.flag_key = f.flag_key"
                     " WHERE f.site_id = ? AND f.urgent = 1 GROUP BY f.flag_key", [site_id])
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r["deliveries"] == 0 or r["failed"] == r["deliveries"]:
            out.setdefault(r["participant_id"], []).append(r)
    return out
