"""Investigator sign-off of a participant's period (IA-07..IA-09, DC-06).

A sign-off says "I reviewed this participant's entries from ``period_from`` to ``period_to``" (local
dates in the participant's zone, by each record's event date). It shows the signer's printed name, the
time in UTC and in the site's local zone, and the meaning (:data:`MEANING`, "Reviewed"). The password is
re-entered at signing and checked against the account's argon2id hash; only a role holding the
``signoff`` permission (the investigator, contract §4) may sign, and only at its own site.

Binding (IA-08): the row stores the exact record versions covered — ``[{record_id, version, sha256}]``
where ``sha256`` is the contract §1 hash of the envelope carrying that version's payload (for version 1
it equals the receipt's sha256) — and two hashes:

- ``content_sha256`` over the subject, the period and the covered list;
- ``signature_sha256`` over ``content_sha256``, the signer's account id, printed name, meaning and time.

:func:`signoff_status` recomputes both from the row and compares every covered record's current version:
a row whose hashes do not match (edited, or copied onto another participant) is ``broken``; a covered
record corrected since is ``invalidated`` ("re-signature required"). Records that arrived in the period
after signing are listed as ``added_since`` without invalidating anything (they were never signed).
Corrections call :func:`invalidate_for_record` in their own transaction, which appends a
``signoff_invalidations`` row and an audit row, so the moment of invalidation is on the record too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlite_utils import Database

from server.auth import require_permission
from server.clock import iso, parse_iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from server.store.participants import participant_by_id
from server.store.reviews import current_records, envelope_of, timeline_of
from server.store.staff import NAME_MAX, get_staff
from shared.canonical import record_sha256
from shared.errors import EproError, FieldError

MEANING = "Reviewed"
#: failed password re-entries allowed per signer within :data:`FAIL_WINDOW` before refusing (IA-11)
MAX_FAILURES = 5
FAIL_WINDOW = timedelta(minutes=15)
_hasher = PasswordHasher()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode("utf-8")).hexdigest()


def version_sha256(record: Mapping[str, Any]) -> str:
    """The contract §1 hash of a record as it is now (envelope with the current version's payload)."""
    return record_sha256(envelope_of(record))


def _local_event_date(timeline, record: Mapping[str, Any]) -> date:
    return timeline.local_date(parse_iso(record["event_time"]))


def records_in_period(db: Database, participant: Mapping[str, Any], period_from: date,
                      period_to: date, *, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The participant's current records whose event date (participant's zone) lies in the period
    (``records``: the participant's :func:`current_records`, when already loaded)."""
    records = current_records(db, participant["id"]) if records is None else records
    timeline = timeline_of(participant, records)
    return [r for r in records if period_from <= _local_event_date(timeline, r) <= period_to]


def covered_list(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({"record_id": r["id"], "version": r["version"], "sha256": version_sha256(r)}
                   for r in records), key=lambda c: c["record_id"])


def content_sha256(subject: str, period_from: str, period_to: str, covered: list[Mapping[str, Any]]) -> str:
    return _sha({"subject": subject, "period_from": period_from, "period_to": period_to,
                 "records": sorted(covered, key=lambda c: c["record_id"])})


def signature_sha256(content: str, staff_id: int, printed_name: str, meaning: str, signed_at: str) -> str:
    return _sha({"content_sha256": content, "staff_id": staff_id, "printed_name": printed_name,
                 "meaning": meaning, "signed_at": signed_at})


def _parse_period(period_from: str, period_to: str, today: date) -> tuple[date, date]:
    problems, out = [], []
    for name, value in (("period_from", period_from), ("period_to", period_to)):
        try:
            out.append(date.fromisoformat(str(value)))
        except ValueError:
            problems.append(FieldError(name, "format.date", "Use YYYY-MM-DD."))
    if problems:
        raise EproError("validation.invalid", 400, errors=problems)
    start, end = out
    if start > end:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("period_to", "order", "The period must end on or after its first day.")])
    if end > today:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("period_to", "future", "A period in the future cannot be reviewed yet.")])
    return start, end


def _recent_failures(db: Database, staff_id: int, now: datetime) -> int:
    row = query_one(db, "SELECT COUNT(*) AS n FROM audit WHERE action = 'signoff.password_failed'"
                        " AND actor_kind = 'staff' AND actor_id = ? AND at >= ?",
                    [str(staff_id), iso(now - FAIL_WINDOW)])
    return row["n"]


def _check_password(db: Database, staff: Mapping[str, Any], password: str, participant: Mapping[str, Any],
                    now: datetime) -> None:
    """Verify the re-entered password (IA-09); every failure is audited, repeated ones refused (429)."""
    if _recent_failures(db, staff["id"], now) >= MAX_FAILURES:
        raise EproError("rate_limited", 429, detail="too many failed signatures; wait 15 minutes")
    row = get_staff(db, staff["id"])
    ok = False
    if password:
        try:
            ok = _hasher.verify(row["password_hash"], password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    if not ok:
        with write_tx(db):
            write_audit(db, Actor.staff(staff["id"]), "signoff.password_failed", entity="participant",
                        entity_id=participant["subject"], site_id=participant["site_id"],
                        detail={"subject": participant["subject"]}, now=now)
        raise EproError("signoff.password_invalid", 401, errors=[
            FieldError("password", "reauth", "The password is not correct.")])


def sign_off(db: Database, participant_id: int, period_from: str, period_to: str, *,
             staff: Mapping[str, Any], password: str, printed_name: str = "", tz: str = "Asia/Shanghai",
             now: datetime | None = None) -> dict[str, Any]:
    """Sign a participant's period as reviewed; returns the stored sign-off with its status.

    ``staff`` is the signed-in staff row; ``password`` is re-entered now; ``printed_name`` is used when
    the account has no name of its own; ``tz`` is the site's zone for the local time shown.
    """
    now = now or utc_now()
    participant = participant_by_id(db, participant_id)
    require_permission(staff, "signoff", participant["site_id"])
    name = (staff.get("name") or printed_name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("printed_name", "required", f"Type your full name (1 to {NAME_MAX} characters).")])
    zone = ZoneInfo(tz)
    start, end = _parse_period(period_from, period_to, now.astimezone(ZoneInfo(participant["tz"])).date())
    _check_password(db, staff, password, participant, now)
    with write_tx(db):
        records = records_in_period(db, participant, start, end)
        if not records:
            raise EproError("signoff.nothing_to_sign", 409, errors=[
                FieldError("period_from", "empty", "There are no entries in this period to review.")])
        covered = covered_list(records)
        signed_at = iso(now)
        local = now.astimezone(zone).isoformat(timespec="seconds")
        content = content_sha256(participant["subject"], start.isoformat(), end.isoformat(), covered)
        signature = signature_sha256(content, staff["id"], name, MEANING, signed_at)
        cur = db.execute(
            "INSERT INTO signoffs (participant_id, period_from, period_to, staff_id, printed_name, meaning,"
            " signed_at, signed_at_local, tz, covered, content_sha256, signature_sha256)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [participant_id, start.isoformat(), end.isoformat(), staff["id"], name, MEANING, signed_at,
             local, tz, _canonical(covered), content, signature])
        signoff_id = cur.lastrowid
        write_audit(db, Actor.staff(staff["id"]), "signoff.sign", entity="signoff", entity_id=signoff_id,
                    site_id=participant["site_id"],
                    detail={"subject": participant["subject"], "period_from": start.isoformat(),
                            "period_to": end.isoformat(), "printed_name": name, "meaning": MEANING,
                            "signed_at_utc": signed_at, "signed_at_local": local, "tz": tz,
                            "records": len(covered), "content_sha256": content,
                            "signature_sha256": signature}, now=now)
    return get_signoff(db, signoff_id)


# --- reading and checking -----------------------------------------------------------------------------

def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "covered": json.loads(row["covered"])}


def get_signoff(db: Database, signoff_id: int) -> dict[str, Any]:
    row = query_one(db, "SELECT * FROM signoffs WHERE id = ?", [signoff_id])
    if row is None:
        raise EproError("signoff.not_found", 404, detail=str(signoff_id))
    out = _decode(row)
    out["status"] = signoff_status(db, out)
    return out


def signoff_status(db: Database, signoff: Mapping[str, Any], *,
                   records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"state": "valid" | "invalidated" | "broken", "changed": [...], "added_since": [...],
    "problem": str | None, "invalidations": [...]}`` recomputed from the row and the records now
    (``records``: the signed participant's :func:`current_records`, when already loaded)."""
    participant = participant_by_id(db, signoff["participant_id"])
    if records is None:
        records = current_records(db, participant["id"])
    covered = signoff["covered"] if isinstance(signoff["covered"], list) else json.loads(signoff["covered"])
    invalidations = query(db, "SELECT * FROM signoff_invalidations WHERE signoff_id = ? ORDER BY id",
                          [signoff["id"]])
    base = {"changed": [], "added_since": [], "invalidations": invalidations}
    content = content_sha256(participant["subject"], signoff["period_from"], signoff["period_to"], covered)
    if content != signoff["content_sha256"]:
        return {**base, "state": "broken", "problem": "content hash does not match the covered records"}
    if signature_sha256(content, signoff["staff_id"], signoff["printed_name"], signoff["meaning"],
                        signoff["signed_at"]) != signoff["signature_sha256"]:
        return {**base, "state": "broken", "problem": "signature hash does not match the signature"}
    by_id = {r["id"]: r for r in records}
    changed = []
    for c in covered:
        now_rec = by_id.get(c["record_id"])
        if now_rec is None:
            return {**base, "state": "broken",
                    "problem": f"record {c['record_id']} is not one of {participant['subject']}'s records"}
        if version_sha256(now_rec) != c["sha256"] and now_rec["version"] == c["version"]:
            return {**base, "state": "broken", "problem": f"record {c['record_id']} does not match its hash"}
        if now_rec["version"] != c["version"]:
            changed.append({"record_id": c["record_id"], "signed_version": c["version"],
                            "current_version": now_rec["version"], "type": now_rec["type"]})
    start, end = date.fromisoformat(signoff["period_from"]), date.fromisoformat(signoff["period_to"])
    ids = {c["record_id"] for c in covered}
    added = [r["id"] for r in records_in_period(db, participant, start, end, records=records) if r["id"] not in ids]
    return {**base, "state": "invalidated" if changed else "valid", "problem": None, "changed": changed,
            "added_since": added}


def _with_status(db: Database, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decode sign-off rows and recompute each status, loading each participant's records once."""
    loaded: dict[int, list[dict[str, Any]]] = {}
    out = []
    for row in rows:
        item = _decode(row)
        pid = item["participant_id"]
        if pid not in loaded:
            loaded[pid] = current_records(db, pid)
        item["status"] = signoff_status(db, item, records=loaded[pid])
        out.append(item)
    return out


def signoffs_for_participant(db: Database, participant_id: int) -> list[dict[str, Any]]:
    """Every sign-off of a participant, newest first, each with its recomputed ``status``."""
    return _with_status(db, query(db, "SELECT * FROM signoffs WHERE participant_id = ? ORDER BY id DESC",
                                  [participant_id]))


def signoffs_for_site(db: Database, site_id: int) -> list[dict[str, Any]]:
    """Every sign-off at a site (for exports), oldest first, with subject and recomputed status."""
    return _with_status(db, query(db, "SELECT s.*, p.subject FROM signoffs s JOIN participants p"
                                      " ON p.id = s.participant_id WHERE p.site_id = ? ORDER BY s.id", [site_id]))


def invalidate_for_record(db: Database, record_id: str, new_version: int, *, actor: Actor,
                          now: datetime | None = None) -> list[int]:
    """Inside a correction's transaction: mark every sign-off covering an older version of this record
    as invalidated (appended row + audit row); returns the sign-off ids."""
    if not db.conn.in_transaction:
        raise RuntimeError("invalidate_for_record must run inside the correction's transaction")
    now = now or utc_now()
    rec = query_one(db, "SELECT r.participant_id, p.site_id, p.subject FROM records r JOIN participants p"
                        " ON p.id = r.participant_id WHERE r.id = ?", [record_id])
    if rec is None:
        return []
    hit = []
    for row in query(db, "SELECT s.id, s.covered FROM signoffs s, json_each(s.covered) AS c"
                         " WHERE s.participant_id = ? AND json_extract(c.value, '$.record_id') = ?",
                     [rec["participant_id"], record_id]):
        signed = next(c["version"] for c in json.loads(row["covered"]) if c["record_id"] == record_id)
        already = query_one(db, "SELECT id FROM signoff_invalidations WHERE signoff_id = ? AND record_id = ?",
                            [row["id"], record_id])
        if signed == new_version or already:  # invalidated once is enough; later versions change nothing
            continue
        cur = db.execute("INSERT INTO signoff_invalidations (signoff_id, record_id, signed_version, new_version,"
                         " invalidated_at, actor) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         [row["id"], record_id, signed, new_version, iso(now), str(actor)])
        if cur.rowcount != 1:
            continue
        write_audit(db, actor, "signoff.invalidate", entity="signoff", entity_id=row["id"],
                    site_id=rec["site_id"],
                    detail={"subject": rec["subject"], "record_id": record_id, "signed_version": signed,
                            "new_version": new_version, "state": "invalidated, re-signature required"},
                    now=now)
        hit.append(row["id"])
    return hit
