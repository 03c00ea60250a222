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

Beside the body each row keeps, as columns, what the list sorts, filters and counts by, with every
figure that moves with the clock written as the instant it moves (microseconds since 1970, UTC):
when the DLT window opens and closes, when each undone dose becomes overdue, when diary completion
falls under 80 %. So :func:`site_page` sorts, counts and pages a site's participants in one SQL
statement at any ``now``, and only the rows of the page shown are read into Python (a list of ten
thousand participants took 640 ms sorting every row in Python; issue 13).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, NamedTuple

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.store.participants import participant_timeline
from server.store.records import record_versions, records_for_participant
from shared.flags import evaluate_flags
from shared.protocol import Protocol
from shared.schedule import DueItem, Entry, Timeline, match_entries

#: what a kept row holds and how it is made; a new value makes every kept row again
LIST_FORMAT = 2
#: diary completion under this share (of the diaries due by today) puts a row in the "diary low" group
DIARY_LOW_PERCENT = 80

#: a participant's data version, made by SQLite from what the row is made of: the list format and
#: protocol digest (the parameter), the participant's own columns in table order, the newest
#: ``server_seq`` of its records, the newest entry of its changes feed and the newest day-1
#: confirmation (each one indexed look-up)
_VERSION = """(? || json_array({columns},
      (SELECT MAX(server_seq) FROM records r WHERE r.participant_id = p.id),
      (SELECT MAX(seq) FROM changes c WHERE c.participant_id = p.id),
      (SELECT MAX(id) FROM day1_confirmations d WHERE d.participant_id = p.id)))"""
#: each participant (``where``) with its data version and its kept row
_ROWS = """
    SELECT p.*, {version} AS _version, k.version AS _kept_version, k.body AS _kept_body
    FROM participants p LEFT JOIN list_summaries k ON k.participant_id = p.id
    WHERE {where} ORDER BY p.subject"""
_EXTRA = ("_version", "_kept_version", "_kept_body")  # the last columns


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
    """A participant's own columns, its data version now and its kept row (if any)."""

    participant: dict[str, Any]
    version: str
    kept_version: str | None
    kept_body: str | None


def _version_sql(db: Database) -> str:
    columns = [r[1] for r in db.execute("PRAGMA table_info(participants)")]
    return _VERSION.format(columns=", ".join(f'p."{c}"' for c in columns))


def _stamp(protocol: Protocol) -> str:
    return f"{LIST_FORMAT}:{_protocol_digest(protocol)}:"


def _rows(db: Database, protocol: Protocol, where: str, params: list[Any]) -> list[SiteRow]:
    cur = db.execute(_ROWS.format(version=_version_sql(db), where=where), [_stamp(protocol), *params])
    names = [d[0] for d in cur.description][:-len(_EXTRA)]
    n = len(names)
    return [SiteRow(dict(zip(names, r[:n])), *r[n:]) for r in cur.fetchall()]


def site_rows(db: Database, protocol: Protocol, site_id: int) -> list[SiteRow]:
    """A site's participants by subject: one query, three index look-ups a participant."""
    return _rows(db, protocol, "p.site_id = ?", [site_id])


def rows_of(db: Database, protocol: Protocol, participant_ids: Iterable[int]) -> dict[int, SiteRow]:
    """These participants' rows, by id."""
    ids = list(participant_ids)
    if not ids:
        return {}
    return {r.participant["id"]: r for r in _rows(db, protocol, f"p.id IN ({', '.join('?' * len(ids))})", ids)}


def stale_ids(db: Database, protocol: Protocol, site_id: int) -> list[int]:
    """A site's participants whose kept row is missing or was made at another data version."""
    sql = (f"SELECT p.id FROM participants p LEFT JOIN list_summaries k ON k.participant_id = p.id"
           f" WHERE p.site_id = ? AND k.version IS NOT {_version_sql(db)} ORDER BY p.id")
    return [r[0] for r in db.execute(sql, [site_id, _stamp(protocol)])]


def changed_rows(db: Database, protocol: Protocol, table: str, where: str, now: datetime,
                 params: list[Any] | None = None) -> list[tuple[dict[str, Any], str]]:
    """Participants (``where`` on ``p``, with ``params``) whose row in ``table`` (a per-participant cache with
    ``version`` and ``valid_until`` columns, as the scheduled tasks keep) is missing, was made at
    another data version or is valid only until ``now`` or earlier; each with its data version now,
    read before anything it is made from."""
    version = _version_sql(db)
    sql = (f"SELECT p.*, {version} AS _version FROM participants p LEFT JOIN {table} s"
           f" ON s.participant_id = p.id WHERE ({where}) AND (s.version IS NOT {version}"
           f" OR s.valid_until IS NULL OR s.valid_until <= ?) ORDER BY p.id")
    stamp = _stamp(protocol)
    cur = db.execute(sql, [stamp, *(params or []), stamp, iso(now)])
    names = [d[0] for d in cur.description][:-1]
    return [(dict(zip(names, r[:-1])), r[-1]) for r in cur.fetchall()]


def data_version(protocol: Protocol, row: SiteRow) -> str:
    """Everything a kept row was made from, as one string (made by SQLite when the row was read)."""
    return row.version


def kept_body(protocol: Protocol, row: SiteRow) -> list[Any] | None:
    """The kept body of a :func:`site_rows` row if it was made at the data version of now, else None."""
    if row.kept_body is None or row.kept_version != row.version:
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


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(moment: datetime) -> int:
    """An aware moment as whole microseconds since 1970 (UTC), exactly: how kept rows store instants."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def timeline_of(body: list[Any]) -> Timeline:
    """The participant's timeline as kept in a body (:func:`make_body`)."""
    first, tz, dose1, day1 = body[:4]
    return Timeline(date.fromisoformat(first), tz, datetime.fromisoformat(dose1) if dose1 else None,
                    date.fromisoformat(day1) if day1 else None)


def diary_low(done: int, expected: int) -> bool:
    """Diary completion under :data:`DIARY_LOW_PERCENT` (rounded as the list shows it); none due is not low."""
    return expected > 0 and round(100 * done / expected) < DIARY_LOW_PERCENT


#: the columns a kept row is sorted, filtered and counted by (:func:`sort_columns`)
SORT_COLUMNS = ("open_count", "open_high", "not_given", "tz", "day1", "dlt_from", "dlt_until",
                "dose_due", "dose_due_all", "dose_undone", "dose_due_list", "diary_low")


def sort_columns(protocol: Protocol, body: list[Any]) -> tuple[Any, ...]:
    """What :func:`site_page` sorts and counts by, from a body: flag counts, doses not given, the zone
    and study day 1 (ordinal), the DLT window's first and end instant (none until dose 1 is given),
    the instants the first and the last undone dose become overdue, how many are undone and each
    one's instant, and the instant diary completion falls under 80 %. An undone item becomes late at
    00:00 of the day after its last on-time day in the participant's zone, as the list counts it."""
    tl = timeline_of(body)
    given, refused, diary_done, open_count, open_high = body[4], body[5], body[7], body[8], body[9]
    doses_undone, diary_undone = body[10], body[11]

    def overdue_at(ordinal: int) -> int:
        return micros(tl.start_of(date.fromordinal(ordinal + 1)))

    dose_due = [overdue_at(d) for d in doses_undone]
    low = next((overdue_at(d) for k, d in enumerate(diary_undone, start=1)
                if diary_low(diary_done, diary_done + k)), None)
    start = tl.dose1_administered_at
    return (open_count, open_high, refused, tl.tz, tl.day1.toordinal(),
            micros(start) if start else None,
            micros(start + timedelta(days=protocol.dlt_window_days)) if start else None,
            dose_due[0] if dose_due else None, dose_due[-1] if dose_due else None, len(dose_due),
            json.dumps(dose_due), low)


def store(db: Database, protocol: Protocol, made: list[tuple[int, str, list[Any]]],
          now: datetime | None = None) -> None:
    """Keep ``(participant_id, version, body)`` rows; inside the caller's write transaction."""
    stamp = iso(now or utc_now())
    names = ("participant_id", "version", "body", "made_at", *SORT_COLUMNS)
    db.conn.executemany(f"INSERT OR REPLACE INTO list_summaries ({', '.join(names)})"
                        f" VALUES ({', '.join('?' * len(names))})",
                        [(pid, version, json.dumps(body, separators=(",", ":")), stamp,
                          *sort_columns(protocol, body)) for pid, version, body in made])


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
            made = [(pid, row.version, make_body(db, protocol, row.participant))
                    for pid, row in rows_of(db, protocol, ids).items() if row.kept_version != row.version]
            store(db, protocol, made, now)
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
            fresh = [(pid, row.version, make_body(db, protocol, row.participant))
                     for pid, row in rows_of(db, protocol, part).items() if row.kept_version != row.version]
        finally:
            db.conn.execute("COMMIT")
        if fresh:
            with write_tx(db):
                store(db, protocol, fresh, now)
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


# --- the list: sorted, filtered, counted and paged by SQLite ------------------------------------

#: each participant of a site with what it is sorted, filtered and counted by at ``:now``
_SITE = """
    WITH today(tz, ord) AS (VALUES {today}),
    s AS (
      SELECT p.id, p.subject, k.open_count, k.open_high, k.not_given,
        (k.dlt_from <= :now AND :now < k.dlt_until) IS 1 AS dlt_open,
        CASE WHEN p.status = 'active' THEN (
          SELECT COUNT(*) FROM devices d WHERE d.participant_id = p.id AND d.revoked_at IS NULL
            AND (COALESCE(NULLIF(d.last_seen_at, ''), d.created_at) < :cutoff
                 OR (:past_cutoff AND COALESCE(NULLIF(d.last_seen_at, ''), d.created_at) = :cutoff)))
        ELSE 0 END AS silent,
        CASE WHEN k.dose_due IS NULL OR :now < k.dose_due THEN 0
             WHEN :now >= k.dose_due_all THEN k.dose_undone
             ELSE (SELECT COUNT(*) FROM json_each(k.dose_due_list) WHERE value <= :now) END AS overdue,
        (k.diary_low <= :now) IS 1 AS diary_low,
        t.ord - k.day1 AS day_offset,
        COALESCE((SELECT MAX(d.last_seen_at) FROM devices d WHERE d.participant_id = p.id), '') AS last_sync
      FROM participants p JOIN list_summaries k ON k.participant_id = p.id JOIN today t ON t.tz = k.tz
      WHERE p.site_id = :site),
    r AS (
      SELECT *, CASE WHEN open_high > 0 THEN 0 WHEN dlt_open AND open_count > 0 THEN 1 WHEN silent > 0 THEN 2
                     WHEN overdue > 0 OR not_given > 0 THEN 3 WHEN diary_low THEN 4 ELSE 5 END AS rank
      FROM s)"""
#: the list's orders (``server.staff.overview.SORTS`` says the same in Python)
ORDERS = {"risk": "rank, subject", "subject": "subject", "study_day": "day_offset DESC, subject",
          "last_sync": "last_sync, subject", "flags": "open_count DESC, subject"}
#: the list's filters
FILTERS = {"": "1", "flags": "open_count > 0", "dlt": "dlt_open"}


class SitePage(NamedTuple):
    """One page of a site's participants list: the page's rows in order, the counts over everyone
    (``participants``, ``with_flags``, ``silent_devices``, ``doses_overdue``, ``dlt_open``), how many
    pass the filter, and which page of how many this is."""

    rows: list[SiteRow]
    counts: dict[str, int]
    total: int
    page: int
    pages: int


def site_page(db: Database, protocol: Protocol, site_id: int, now: datetime, *, sort: str = "risk",
              only: str = "", page: int = 1, per_page: int = 100, silent_hours: float) -> SitePage | None:
    """A page of the site's list at ``now`` from the kept rows, in one read snapshot; None when a row
    is not current (made again first: :func:`stale_ids`, :func:`store`). ``page`` is clamped to the
    pages there are. A device is silent after more than ``silent_hours`` without contact."""
    order, where = ORDERS[sort], FILTERS[only]
    begun = not db.conn.in_transaction
    if begun:
        db.conn.execute("BEGIN")
    try:
        if stale_ids(db, protocol, site_id):
            return None
        zones = [r[0] for r in db.execute("SELECT DISTINCT tz FROM participants WHERE site_id = ?", [site_id])]
        if not zones:
            return SitePage([], {"participants": 0, "with_flags": 0, "silent_devices": 0, "doses_overdue": 0,
                                 "dlt_open": 0}, 0, 1, 1)
        today = {f"z{i}": z for i, z in enumerate(zones)}
        today.update({f"o{i}": Timeline(date.min, z).local_date(now).toordinal() for i, z in enumerate(zones)})
        cutoff = now - timedelta(hours=silent_hours)
        # a device last heard at (stored to the millisecond) ``heard`` is silent when heard < cutoff
        cut = iso(cutoff)
        params = {**today, "now": micros(now), "cutoff": cut, "site": site_id,
                  "past_cutoff": int(cutoff.microsecond % 1000 != 0)}
        cte = _SITE.format(today=", ".join(f"(:z{i}, :o{i})" for i in range(len(zones))))
        n, flags, silent, doses, dlt, passing = db.execute(
            f"{cte} SELECT COUNT(*), SUM(open_count > 0), SUM(silent), SUM(overdue + not_given), SUM(dlt_open),"
            f" SUM({where}) FROM r", params).fetchone()
        pages = max(1, -(-passing // per_page))
        page = min(max(1, page), pages)
        ids = [r[0] for r in db.execute(f"{cte} SELECT id FROM r WHERE {where} ORDER BY {order} LIMIT :limit"
                                        f" OFFSET :offset", {**params, "limit": per_page,
                                                             "offset": (page - 1) * per_page})]
        found = rows_of(db, protocol, ids)
        counts = {"participants": n, "with_flags": flags, "silent_devices": silent, "doses_overdue": doses,
                  "dlt_open": dlt}
        return SitePage([found[i] for i in ids], counts, passing, page, pages)
    finally:
        if begun:
            db.conn.execute("COMMIT")
