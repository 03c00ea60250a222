"""What each row of the staff participants list shows that does not move with the clock, kept per
participant in ``list_summaries`` (m014) with the data version it was made from (issue 13).

Derived, never a source of truth. A kept row is used only while its version equals the participant's
data version read now (:func:`data_version`): the participant's own row, the newest ``server_seq``
of its records, the newest entry of its changes feed (timeline moves, withdrawals, corrections, flag
acknowledgements), the newest day-1 confirmation, the protocol's content and :data:`LIST_FORMAT`.
Otherwise the row is made again from the records (:func:`make_body`). Corrections and
acknowledgements make it again inside their own transaction (:func:`keep`); after uploads the serve
process makes it again in the background within about a second (:func:`rebuild`, woken by the ingest
with the alert dispatcher, :mod:`server.jobs`), not inside the upload's transaction (a full
history's figures cost tens of ms, the upload a few); ``init`` makes what is missing after an
upgrade. So the list rarely has to; deleting every row only makes the next list request rebuild them.

The body holds the timeline, done counts, the last on-time day (``closes``) of every scheduled dose
and diary still without an entry (its status at a date follows: late or missed once that day is
past) and how many flags are open (not who acknowledged the others: names are not kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any, Iterable, NamedTuple

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.store.participants import participant_timeline
from server.store.records import record_versions, records_for_participant
from shared.flags import evaluate_flags
from shared.protocol import Protocol
from shared.schedule import DueItem, Entry, match_entries

#: what a kept row holds and how it is made; a new value makes every kept row again
LIST_FORMAT = 1

#: each participant (``where``) with its data version and its kept row, through indexed look-ups
_ROWS = """
    SELECT p.*,
      (SELECT MAX(server_seq) FROM records r WHERE r.participant_id = p.id) AS _records_seq,
      (SELECT MAX(seq) FROM changes c WHERE c.participant_id = p.id) AS _changes_seq,
      (SELECT MAX(id) FROM day1_confirmations d WHERE d.participant_id = p.id) AS _day1_id,
      k.version AS _kept_version, k.body AS _kept_body
    FROM participants p LEFT JOIN list_summaries k ON k.participant_id = p.id
    WHERE {where} ORDER BY p.subject"""
_EXTRA = ("_records_seq", "_changes_seq", "_day1_id", "_kept_version", "_kept_body")  # the last columns


def record_views(db: Database, participant_id: int) -> list[dict[str, Any]]:
    """A participant's records, oldest event first, each with ``current`` = envelope as corrected."""
    rows = records_for_participant(db, participant_id)
    for row in rows:
        payload = row["envelope"]["payload"]
        if (row.get("version") or 1) > 1:
            payload = record_versions(db, row["id"])[-1]["payload"]
        row["current"] = {**row["envelope"], "payload": payload}
    return rows


def not_given(dose_items: Iterable[DueItem], payloads: dict[str, dict[str, Any]]) -> int:
    """Scheduled doses confirmed as not given (their entry says ``given`` false)."""
    return sum(1 for i in dose_items if i.record_ids and payloads.get(i.record_ids[0], {}).get("given") is False)


_DIGESTS: dict[int, tuple[Protocol, str]] = {}


def _protocol_digest(protocol: Protocol) -> str:
    kept = _DIGESTS.get(id(protocol))
    if kept is None or kept[0] is not protocol:
        text = json.dumps(protocol.data, sort_keys=True, default=str)
        kept = _DIGESTS[id(protocol)] = (protocol, hashlib.sha256(text.encode()).hexdigest())
    return kept[1]


class SiteRow(NamedTuple):
    """A participant's own columns, its data version's parts and its kept row (if any)."""

    participant: dict[str, Any]
    records_seq: int | None
    changes_seq: int | None
    day1_id: int | None
    kept_version: str | None
    kept_body: str | None


def _rows(db: Database, where: str, params: list[Any]) -> list[SiteRow]:
    cur = db.execute(_ROWS.format(where=where), params)
    names = [d[0] for d in cur.description][:-len(_EXTRA)]
    n = len(names)
    return [SiteRow(dict(zip(names, r[:n])), *r[n:]) for r in cur.fetchall()]


def site_rows(db: Database, site_id: int) -> list[SiteRow]:
    """A site's participants by subject: one query, four index look-ups a participant."""
    return _rows(db, "p.site_id = ?", [site_id])


def data_version(protocol: Protocol, row: SiteRow) -> str:
    """Everything a kept row was made from, as one string (the participant's columns in table order)."""
    return repr((LIST_FORMAT, _protocol_digest(protocol), tuple(row.participant.items()), row.records_seq,
                 row.changes_seq, row.day1_id))


def kept_body(protocol: Protocol, row: SiteRow) -> list[Any] | None:
    """The kept body of a :func:`site_rows` row if it was made at the data version of now, else None."""
    if row.kept_body is None or row.kept_version != data_version(protocol, row):
        return None
    return json.loads(row.kept_body)


def _acknowledged(db: Database, protocol: Protocol, participant: dict[str, Any]) -> set[str]:
    """Flags acknowledged at their current version (what the review pages count as no longer open)."""
    if db.execute("SELECT 1 FROM flag_reviews WHERE participant_id = ? LIMIT 1", [participant["id"]]).fetchone() is None:
        return set()
    from server.store.reviews import participant_flags

    return {i["key"] for i in participant_flags(db, protocol, participant)["flags"] if i["state"] == "acknowledged"}


def make_body(db: Database, protocol: Protocol, participant: dict[str, Any]) -> list[Any]:
    """The clock-free figures of one participant's list row, from its records as corrected: first
    dose date, zone, dose 1 given at, confirmed day 1, doses given, not given and scheduled, diaries
    done, open flags and of those high, then the ``closes`` day ordinals of the doses and of the
    diaries still without an entry (a flat list: the list reads a thousand of them a request)."""
    records = record_views(db, participant["id"])
    current = [r["current"] for r in records]
    timeline = participant_timeline(db, participant)
    items, _ = match_entries(protocol, timeline, [Entry.from_envelope(e) for e in current])
    payloads = {r["id"]: r["current"]["payload"] for r in records}
    doses = [i for i in items if i.kind == "dose_confirmation"]
    refused = not_given(doses, payloads)
    acknowledged = _acknowledged(db, protocol, participant)

    def undone(kind: str) -> list[int]:
        return sorted(i.closes.toordinal() for i in items if i.kind == kind and not i.record_ids)

    tl = timeline
    open_ = [f.severity for f in evaluate_flags(protocol, timeline, current) if f.key not in acknowledged]
    return [tl.first_dose_date.isoformat(), tl.tz,
            tl.dose1_administered_at.isoformat() if tl.dose1_administered_at else None,
            tl.confirmed_day1.isoformat() if tl.confirmed_day1 else None,
            sum(bool(i.record_ids) for i in doses) - refused, refused, len(doses),
            sum(1 for i in items if i.kind == "nasal_symptoms" and i.record_ids),
            len(open_), open_.count("high"),
            undone("dose_confirmation"), undone("nasal_symptoms")]


def store(db: Database, made: list[tuple[int, str, list[Any]]], now: datetime | None = None) -> None:
    """Keep ``(participant_id, version, body)`` rows; inside the caller's write transaction."""
    stamp = iso(now or utc_now())
    db.conn.executemany("INSERT OR REPLACE INTO list_summaries (participant_id, version, body, made_at)"
                        " VALUES (?, ?, ?, ?)",
                        [(pid, version, json.dumps(body, separators=(",", ":")), stamp) for pid, version, body in made])


def keep(db: Database, protocol: Protocol, participant_ids: Iterable[int], now: datetime | None = None) -> int:
    """Make the kept rows of these participants again, where not current, from their data as it is in
    the caller's write transaction (the writer's own changes included), so the list finds them current.
    Returns how many were made."""
    ids = sorted(set(participant_ids))
    if not ids:
        return 0
    # derived data: should making a row fail, the caller's correction or acknowledgement still
    # commits (the row's version no longer matches, so the list makes it when it is next shown)
    try:
        with db.atomic():
            made = []
            for row in _rows(db, f"p.id IN ({', '.join('?' * len(ids))})", ids):
                version = data_version(protocol, row)
                if row.kept_version != version:
                    made.append((row.participant["id"], version, make_body(db, protocol, row.participant)))
            store(db, made, now)
    except Exception:  # noqa: BLE001
        logging.getLogger("server.list_summaries").exception("could not keep the list rows of %s", ids)
        return 0
    return len(made)


def rebuild(db: Database, protocol: Protocol, now: datetime | None = None, *, batch: int = 50) -> int:
    """Make every participant's kept row that is missing or not current (after an upgrade, after
    uploads: the serve process runs this soon after each, :mod:`server.jobs`); returns how many were
    made. Rows are made from a read snapshot, outside any write lock, and written ``batch`` at a time
    in short transactions: an upload meanwhile only leaves its participant's row for the next run
    (its version no longer matches)."""
    from server.db import write_tx

    made = 0
    ids = [r[0] for r in db.execute("SELECT id FROM participants ORDER BY id")]
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        db.conn.execute("BEGIN")                 # one snapshot for the versions and what they describe
        try:
            fresh = [(row.participant["id"], version, make_body(db, protocol, row.participant))
                     for row in _rows(db, f"p.id IN ({', '.join('?' * len(part))})", part)
                     if row.kept_version != (version := data_version(protocol, row))]
        finally:
            db.conn.execute("COMMIT")
        if fresh:
            with write_tx(db):
                store(db, fresh, now)
            made += len(fresh)
    return made


def scheduled_rebuild(config: dict[str, Any]) -> int:
    """The serve process's job (:mod:`server.jobs`): :func:`rebuild` on the configured database."""
    from server.db import open_db
    from shared.protocol import load_protocol

    db = open_db(config["DB"])
    try:
        return rebuild(db, load_protocol(config["PROTOCOL"]))
    finally:
        db.close()
