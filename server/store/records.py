"""Idempotent ingest of records (contract §2) and reading them back.

Outcomes are final per ``id``: the first time an id is received decides what every later copy is
compared with. ``records.id`` is the PRIMARY KEY and the insert is ``ON CONFLICT DO NOTHING`` inside
a ``BEGIN IMMEDIATE`` transaction, re-read afterwards, so two processes uploading the same batch at
once store one copy (the database enforces it, not only this code). A stored record is never
updated: corrections are new rows in ``record_versions`` (:mod:`server.store.versions`).

Per record, in this order:
1. device binding — ``participant`` must be the device's participant, whatever the ``id``; a
   foreign record is rejected (``rule: device_binding``), quarantined and audited as a security event;
2. the id seen before — accepted earlier: ``duplicate`` (same sha256, original receipt) or
   ``conflict``; rejected earlier: the original errors again (same sha256) or ``conflict``;
3. validation (``shared.schemas``) — invalid: ``rejected`` and quarantined;
4. withdrawal — participant withdrawn before ``entered_at``: ``rejected`` (``participant.withdrawn``);
5. accepted — stored with ``received_at``/``server_seq`` set here, clock drift, labels, version 1.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import file_identity, grouped_write, query, query_one
from server.alerts.wake import wake as wake_alerts
from server.store import device_seq
from server.store.audit import Actor, write_audit, write_audit_many
from server.store.changes import add_change
from server.store.devices import originator
from server.store.dose_labels import KEPT_DOSES, batch_labels
from server.store.participants import participant_with_timeline, timeline_change
from shared.canonical import canonical_json, canonical_text, record_sha256, text_sha256
from shared.errors import FieldError
from shared.ids import record_key
from shared.messages import t
from shared.protocol import Protocol
from shared.schedule import Entry, Timeline, planned_items, timing_labels_after
from shared.schemas import record_errors
from shared.schemas.fields import SAFE_INT


def _canonical(value: Any) -> str:
    return canonical_json(value)


def body_sha256(body: Any) -> str:
    """The contract §1 hash for an object; the same canonical form for anything else received."""
    if isinstance(body, dict):
        return record_sha256(body)
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def hashed_body(body: Any) -> tuple[str, str | None]:
    """:func:`body_sha256` and, for an object, the canonical text it was taken over: the same string
    is stored as the record's ``envelope``, so each record is serialised once."""
    if isinstance(body, dict):
        text = canonical_text(body)
        return text_sha256(text), text
    return body_sha256(body), None


def receipt(row: dict[str, Any]) -> dict[str, Any]:
    return {"server_seq": row["server_seq"], "received_at": row["received_at"], "sha256": row["sha256"]}


def _fe(field: str, rule: str) -> dict[str, str]:
    """A field error whose message is the rule's English text from the catalogue."""
    return FieldError(field, rule, t(f"rule.{rule}", "en")).as_dict()


def _conflict(record_id: str) -> dict[str, Any]:
    return {"id": record_id, "status": "conflict", "errors": [_fe("id", "conflict")]}


class _EntryCache:
    """Schedule entries of stored records, keyed by ``(id, sha256)``: content-addressed, so an entry
    is valid for any database holding that exact record, and stored records never change (corrections
    are versions). Labelling a batch then parses only records it has not seen, instead of every
    envelope the participant ever sent (quadratic over a large backlog). Bounded, thread-safe."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()

    def stored(self, db: Database, participant_id: int) -> list[Entry]:
        keys = db.execute("SELECT id, sha256 FROM records WHERE participant_id = ?", [participant_id]).fetchall()
        with self._lock:
            found = {k: self._entries.get(k) for k in keys}
        missing = [rid for (rid, sha), entry in found.items() if entry is None]
        if missing:
            for start in range(0, len(missing), 500):
                part = missing[start:start + 500]
                for rid, sha, envelope in db.execute(
                        f"SELECT id, sha256, envelope FROM records WHERE id IN ({','.join('?' * len(part))})",
                        part).fetchall():
                    found[(rid, sha)] = Entry.from_envelope(json.loads(envelope))
        with self._lock:
            for key, entry in found.items():
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
        return [found[k] for k in keys]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_ENTRIES = _EntryCache()


class _MatchedCache:
    """Each participant's schedule matching after their last stored batch (items with the records
    they hold), so the next batch — entered after everything stored, the usual case — is matched on
    top of it (:func:`shared.schedule.timing_labels_after`) rather than against the whole history.

    Used only when the database still agrees: same file and the same data stamp of the participant
    (:func:`stamp_and_top`: their last ``server_seq`` and the audit link of that record's
    acceptance, so nothing was added by another process or rolled back), and the same timeline.
    Otherwise the batch is matched from scratch and the result kept."""

    def __init__(self, limit: int = 2_000) -> None:
        self.limit = limit
        self._kept: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def where(db: Database, participant_id: int) -> tuple:
        return (*file_identity(db), participant_id)

    def get(self, where: tuple, timeline: Timeline, stamp: tuple) -> tuple | None:
        """The kept matching, taken out of the cache: the caller changes its items in place and puts
        them back under the stamp its batch leaves (:meth:`put`). A batch that fails before that
        leaves nothing kept, and the next one matches from scratch; one rolled back after it left
        a stamp the database no longer has. (Copying the items instead cost more than the rest of
        a one-record upload's labelling.)"""
        with self._lock:
            kept = self._kept.pop(where, None)
        if kept is None or kept[:2] != (timeline, stamp):
            return None
        return kept[2], kept[3]

    def put(self, where: tuple, timeline: Timeline, stamp: tuple, items: list, last_key: tuple) -> None:
        with self._lock:
            self._kept[where] = (timeline, stamp, items, last_key)
            self._kept.move_to_end(where)
            while len(self._kept) > self.limit:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


_MATCHED = _MatchedCache()

#: what :func:`stamp_and_top` reads, in one statement through ``records_participant_seq`` and
#: ``audit_entity``; the last column is the highest ``server_seq`` of the whole file (the next batch's
#: seqs follow it)
_STAMP_SQL = ("SELECT last_seq, (SELECT hash FROM audit WHERE entity = 'record' AND action = 'record.accept'"
              " AND entity_id = (SELECT id FROM records WHERE server_seq = last_seq) ORDER BY seq DESC LIMIT 1),"
              " (SELECT COALESCE(MAX(server_seq), 0) FROM records)"
              " FROM (SELECT COALESCE(MAX(server_seq), 0) AS last_seq FROM records WHERE participant_id = ?)")


def stamp_and_top(db: Database, participant_id: int) -> tuple[tuple, int]:
    """The participant's *data stamp* and the file's highest ``server_seq``, read in the write
    transaction. The stamp is ``(last server_seq, audit link of that record's acceptance)``: what is
    kept between batches is used only under the same stamp. A record added for the participant
    takes a higher ``server_seq``; the seq alone could come back after a rollback (a batch kept its
    state, then rolled back, and another batch took the same seqs), but the audit link is a hash
    over the whole chain before it, so equal stamps mean the same records. (A count of the
    participant's records, part of the stamp before, added nothing to that and cost a walk of all
    their records at every submit.)"""
    last_seq, link, top = db.execute(_STAMP_SQL, [participant_id]).fetchone()
    return (last_seq, link), top


def clear_caches() -> None:
    """Forget what this process kept between batches (schedule entries and matching, given doses):
    the next batch reads everything from the database. For tests, and for a caller that wants the
    memory back; nothing depends on it for correctness."""
    _ENTRIES.clear()
    _MATCHED.clear()
    KEPT_DOSES.clear()


class _Batch:
    """State of one upload: the device, its participant, and what this batch already decided."""

    def __init__(self, db: Database, device: dict[str, Any], protocol: Protocol, channel: str,
                 actor: Actor, client_time: datetime | None, now: datetime) -> None:
        self.db, self.device, self.protocol, self.channel, self.actor = db, device, protocol, channel, actor
        self.now, self.received_at = now, iso(now)
        self.client_time = client_time
        self.drift_s = None if client_time is None else round((client_time - now).total_seconds(), 3)
        # the participant and their timeline as stored, read together (one statement)
        self.participant, self.stored_timeline = participant_with_timeline(db, device["participant_id"])
        self.candidates: list[tuple[int, Any]] = []       # (result index, ValidRecord)
        self.new_ids: dict[str, tuple[str, int]] = {}     # id -> (sha256, result index) in this batch
        self.seqs: list[int] = []
        self.known: dict[str, tuple[dict | None, dict | None]] | None = None   # see prefetch()
        self.dirty: set[str] = set()
        self.ahead: dict[int, tuple[str, Any, list[FieldError], str | None]] = {}   # see _validate_ahead()
        self.texts: dict[int, str] = {}    # result index -> canonical text of an accepted envelope
        self.last_accept_hash: str | None = None   # audit link of the last record stored (the data stamp)
        self.last_device_seq: int | None = None    # see heard()

    # --- quarantine ---------------------------------------------------------------------------
    def quarantine(self, body: Any, sha: str, errors: list[dict[str, str]], reason: str) -> int:
        record_id = record_key(body.get("id")) if isinstance(body, dict) and isinstance(body.get("id"), str) else None
        seq = body.get("device_seq") if isinstance(body, dict) else None
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= SAFE_INT else None
        if seq is not None:
            self.seqs.append(seq)
        self.db.execute(
            "INSERT INTO quarantine (record_id, device_id, participant_id, channel, reason, device_seq,"
            " received_at, body, errors, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [record_id, self.device["id"], self.device["participant_id"], self.channel, reason, seq,
             self.received_at, _canonical(body), _canonical(errors), sha])
        row = query_one(self.db, "SELECT id FROM quarantine WHERE device_id IS ? AND sha256 = ?",
                        [self.device["id"], sha])
        return row["id"]

    def reject(self, body: Any, sha: str, errors: list[dict[str, str]], reason: str) -> dict[str, Any]:
        record_id = record_key(body.get("id")) if isinstance(body, dict) and isinstance(body.get("id"), str) else None
        if record_id is not None:
            self.dirty.add(record_id)
        qid = self.quarantine(body, sha, errors, reason)
        action = "security.device_binding" if reason == "device_binding" else "record.reject"
        write_audit(self.db, self.actor, action, entity="record" if record_id else "quarantine",
                    entity_id=record_id if isinstance(record_id, str) else qid,
                    site_id=self.device["site_id"],
                    detail={"quarantine_id": qid, "device_id": self.device["id"], "reason": reason,
                            "channel": self.channel, "sha256": sha,
                            "claimed_participant": body.get("participant") if isinstance(body, dict) else None,
                            "rules": sorted({e["rule"] for e in errors})}, now=self.now)
        return {"id": record_id, "status": "rejected", "errors": errors}

    # --- one record -------------------------------------------------------------------------------
    def decide(self, index: int, body: Any) -> dict[str, Any]:
        ahead = self.ahead.get(index)
        sha = ahead[0] if ahead else body_sha256(body)
        claimed = body.get("participant") if isinstance(body, dict) else None
        if claimed != self.device["subject"]:
            return self.reject(body, sha, [_fe("participant", "device_binding")], "device_binding")
        record_id = record_key(body.get("id")) if isinstance(body.get("id"), str) else None
        if record_id is not None:
            earlier = self.earlier_outcome(record_id, sha)
            if earlier is not None:
                return earlier
        record, errors = ahead[1:3] if ahead else record_errors(body, protocol=self.protocol, sha256=sha)
        if record is None:
            return self.reject(body, sha, [e.as_dict() for e in errors], "invalid")
        p = self.participant
        if p["status"] == "withdrawn" and p["withdrawn_at"] <= iso(record.parsed["entered_at"]):
            return self.reject(body, sha, [_fe("entered_at", "participant.withdrawn")], "withdrawn")
        self.candidates.append((index, record))
        if ahead and ahead[3] is not None:
            self.texts[index] = ahead[3]
        self.new_ids[record_id] = (record.sha256, index)
        self.seqs.append(record["device_seq"])
        return {"id": record["id"], "status": "accepted"}

    def earlier_outcome(self, record_id: str, sha: str) -> dict[str, Any] | None:
        """The outcome an id already has, from earlier in this batch or from the database."""
        if record_id in self.new_ids:
            first_sha, first_index = self.new_ids[record_id]
            if first_sha != sha:
                return self.conflict(record_id, sha)
            return {"id": record_id, "status": "duplicate", "_same_as": first_index}
        if self.known is not None and record_id not in self.dirty:
            record_row, quarantine_row = self.known.get(record_id, (None, None))
            return self.outcome_of(record_id, sha, record_row, quarantine_row)
        return self.stored_outcome(record_id, sha)

    def prefetch(self, envelopes: list[Any]) -> None:
        """Read what the database already decided for this batch's ids in one query, instead of
        two per record. Ids quarantined during the batch are read again (``dirty``)."""
        ids = list({record_key(b["id"]) for b in envelopes if isinstance(b, dict) and isinstance(b.get("id"), str)})
        known: dict[str, tuple[dict | None, dict | None]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            # both tables in one statement (``_q`` says which): a one-record upload runs it in the
            # write lock, where every statement counts (issue 13)
            for row in query(self.db, "SELECT 0 AS _q, id, server_seq, received_at, sha256, labels, NULL AS errors"
                                      f" FROM records WHERE id IN ({marks}) UNION ALL"
                                      " SELECT 1, record_id, NULL, NULL, sha256, NULL, errors FROM quarantine"
                                      f" WHERE record_id IN ({marks}) AND reason != 'device_binding'", part + part):
                rid = row["id"]
                if row.pop("_q"):
                    known[rid] = (known.get(rid, (None, None))[0],
                                  {"record_id": rid, "sha256": row["sha256"], "errors": row["errors"]})
                else:
                    del row["errors"]
                    known[rid] = (row, known.get(rid, (None, None))[1])
        self.known = known

    def stored_outcome(self, record_id: str, sha: str) -> dict[str, Any] | None:
        """The outcome an id already has in the database (first version received decides)."""
        row = query_one(self.db, "SELECT server_seq, received_at, sha256, labels FROM records WHERE id = ?",
                        [record_id])
        q = None if row is not None else query_one(
            self.db, "SELECT sha256, errors FROM quarantine WHERE record_id = ? AND reason != 'device_binding'",
            [record_id])
        return self.outcome_of(record_id, sha, row, q)

    def outcome_of(self, record_id: str, sha: str, row: dict | None, q: dict | None) -> dict[str, Any] | None:
        if row is not None:
            if row["sha256"] != sha:
                return self.conflict(record_id, sha)
            return {"id": record_id, "status": "duplicate", "receipt": receipt(row),
                    "labels": json.loads(row["labels"])}
        if q is not None:
            if q["sha256"] != sha:
                return self.conflict(record_id, sha)
            return {"id": record_id, "status": "rejected", "errors": json.loads(q["errors"])}
        return None

    def conflict(self, record_id: str, sha: str) -> dict[str, Any]:
        write_audit(self.db, self.actor, "record.conflict", entity="record", entity_id=record_id,
                    site_id=self.device["site_id"],
                    detail={"device_id": self.device["id"], "sha256": sha, "channel": self.channel},
                    now=self.now)
        return _conflict(record_id)

    # --- storing the accepted ones ----------------------------------------------------------------
    def timeline(self, tl: Timeline) -> Timeline:
        """The stored timeline ``tl``, moved by a dose 1 given in this batch."""
        given = [r.parsed["payload"]["administered_at"] for _, r in self.candidates
                 if r["type"] == "dose_confirmation" and r["payload"]["dose_number"] == 1
                 and r["payload"]["given"]]
        if given:
            first = min(given + ([tl.dose1_administered_at] if tl.dose1_administered_at else []))
            tl = Timeline(tl.first_dose_date, tl.tz, first)
        return tl

    def store(self, results: list[dict[str, Any]]) -> None:
        if not self.candidates:
            return
        before = self.stored_timeline
        timeline = self.timeline(before)
        new_entries = [Entry.from_envelope(r.parsed) for _, r in self.candidates]
        pid = self.participant["id"]
        stamp, top_seq = stamp_and_top(self.db, pid)
        where = _MATCHED.where(self.db, pid)
        first_new = min((e.entered_at, e.id) for e in new_entries)
        kept = _MATCHED.get(where, timeline, stamp)
        if kept is not None and first_new > kept[1]:
            # the usual case: everything new was entered after everything stored
            items, last_key = kept
            timing = timing_labels_after(self.protocol, timeline, items, new_entries)
        else:
            others = _ENTRIES.stored(self.db, pid)
            items = planned_items(self.protocol, timeline)
            timing = timing_labels_after(self.protocol, timeline, items, new_entries, others)
            last_key = max(((e.entered_at, e.id) for e in others), default=first_new)
        last_key = max(last_key, max((e.entered_at, e.id) for e in new_entries))
        extra, doses_after = batch_labels(self.db, self.protocol, timeline, pid, [r for _, r in self.candidates],
                                          where=where, stamp=stamp)
        threshold = float(self.protocol.threshold("clock_drift_seconds"))
        next_seq = top_seq + 1    # read with the stamp, in this write transaction
        # staff entry (channel "staff"): ``device`` is a stand-in with ``id`` None and ``staff_id``
        staff_id = self.device.get("staff_id") if self.channel == "staff" else None
        who = f"staff:{staff_id}" if staff_id is not None else originator(self.device, self.device["subject"])
        seq_reused = device_seq.reused(self.db, self.device["id"], self.candidates, above=self.last_device_seq)
        rows = []
        for index, record in self.candidates:
            key = record.parsed["id"]  # the stored form (shared.ids.record_key); the envelope stays as sent
            drift_flag = self.drifted(record, threshold)
            labels = list(dict.fromkeys([*record.labels, *timing[key], *extra.get(record["id"], extra.get(key, [])),
                                         *(["clock_drift"] if drift_flag else []),
                                         *([device_seq.LABEL] if key in seq_reused else [])]))
            rows.append((index, record, key, drift_flag, labels))
        inserted = self.insert_all(rows, next_seq, who, staff_id, seq_reused, results)
        next_seq += inserted
        if inserted:
            # if this transaction rolls back, the audit link no longer matches and the next batch starts over
            after = (next_seq - 1, self.last_accept_hash)
            _MATCHED.put(where, timeline, after, items, last_key)
            if doses_after is not None and inserted == len(rows):
                KEPT_DOSES.put(where, after, doses_after)
            else:
                KEPT_DOSES.forget(where)
        if timeline.dose1_administered_at != before.dose1_administered_at:
            add_change(self.db, self.participant["id"], "timeline",
                       timeline_change(self.db, self.participant), now=self.now)

    _RECORD_SQL = ("INSERT INTO records (id, type, participant_id, device_id, originator, channel,"
                   " respondent, schema_version, instrument_version, event_time, entered_at, device_seq,"
                   " received_at, server_seq, sha256, envelope, clock_offset_s, client_time, drift_s,"
                   " drift_flag, labels, staff_id, staff_entered)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT(id) DO NOTHING")
    _VERSION_SQL = ("INSERT INTO record_versions (record_id, version, payload, created_at, created_by,"
                    " requested_by, reason, changes) VALUES (?, 1, ?, ?, ?, NULL, NULL, '[]')")

    def insert_all(self, rows: list[tuple], next_seq: int, who: str, staff_id: Any,
                   seq_reused: dict[str, str], results: list[dict[str, Any]]) -> int:
        """Store the accepted records (``(index, record, key, drift_flag, labels)``) with
        ``server_seq`` from ``next_seq`` on: three rows each (record, version 1, the audit rows), each
        kind in one ``executemany``. The ids were read inside this write transaction, so none can be
        stored already; should one be (``ON CONFLICT DO NOTHING`` stored fewer rows), the batch is
        rolled back to its savepoint and stored one by one, the first version deciding. Returns how
        many were stored."""
        client_time = iso(self.client_time) if self.client_time else None
        version_by = who if staff_id is not None else f"device:{self.device['id']}"
        record_rows, version_rows, audit_rows = [], [], []
        for offset, (index, record, key, drift_flag, labels) in enumerate(rows):
            seq = next_seq + offset
            record_rows.append(
                [key, record["type"], self.participant["id"], self.device["id"], who,
                 self.channel, record["respondent"], record["schema_version"],
                 record["instrument_version"], record["event_time"], record["entered_at"],
                 record["device_seq"], self.received_at, seq, record.sha256,
                 self.texts.get(index) or _canonical(dict(record)),
                 record.get("clock_offset_s"), client_time,
                 self.drift_s, int(drift_flag), _canonical(labels), staff_id, int(staff_id is not None)])
            version_rows.append([key, _canonical(record["payload"]), self.received_at, version_by])
            audit_rows.append(self.audit_entries(record, key, seq, labels, who, client_time, seq_reused))
        conn = self.db.conn
        # a savepoint undoes a partly stored batch; a single record stores all or nothing without
        # one (two statements fewer in the write lock for each submit, issue 13)
        alone = len(record_rows) == 1
        if not alone:
            conn.execute("SAVEPOINT ingest_batch")
        if conn.executemany(self._RECORD_SQL, record_rows).rowcount == len(record_rows):
            conn.executemany(self._VERSION_SQL, version_rows)
            written = write_audit_many(self.db, self.actor, [e for entries in audit_rows for e in entries],
                                       now=self.now)
            self.last_accept_hash = _last_accept(written, self.last_accept_hash)
            if not alone:
                conn.execute("RELEASE ingest_batch")
            for offset, (index, record, key, _drift, labels) in enumerate(rows):
                results[index] = self.accepted(record, next_seq + offset, labels)
            return len(rows)
        if not alone:
            conn.execute("ROLLBACK TO ingest_batch")
            conn.execute("RELEASE ingest_batch")
        stored = 0
        for (index, record, key, drift_flag, labels), values, version, _entries in zip(
                rows, record_rows, version_rows, audit_rows):
            seq = next_seq + stored
            values[13] = seq
            if conn.execute(self._RECORD_SQL, values).rowcount != 1:
                # another writer stored this id first; its first version decides (re-read)
                results[index] = self.stored_outcome(key, record.sha256)
                continue
            conn.execute(self._VERSION_SQL, version)
            written = write_audit_many(self.db, self.actor,
                                       self.audit_entries(record, key, seq, labels, who, client_time, seq_reused),
                                       now=self.now)
            self.last_accept_hash = _last_accept(written, self.last_accept_hash)
            results[index] = self.accepted(record, seq, labels)
            stored += 1
        return stored

    def audit_entries(self, record: Any, key: str, seq: int, labels: list[str], who: str,
                      client_time: str | None, seq_reused: dict[str, str]) -> list[tuple]:
        """The audit rows of one stored record: ``record.accept``, and ``sync.device_seq_reused``."""
        site = self.device["site_id"]
        out = [("record.accept", "record", key, site,
                {"type": record["type"], "device_id": self.device["id"], "originator": who,
                 "respondent": record["respondent"], "channel": self.channel,
                 "server_seq": seq, "sha256": record.sha256,
                 "event_time": record["event_time"], "entered_at": record["entered_at"],
                 "client_time": client_time, "drift_s": self.drift_s, "labels": labels})]
        if key in seq_reused:
            out.append(("sync.device_seq_reused", "record", key, site,
                        {"device_id": self.device["id"], "device_seq": record["device_seq"],
                         "first_record_id": seq_reused[key]}))
        return out

    def accepted(self, record: Any, seq: int, labels: list[str]) -> dict[str, Any]:
        return {"id": record["id"], "status": "accepted",
                "receipt": {"server_seq": seq, "received_at": self.received_at, "sha256": record.sha256},
                "labels": labels}

    def drifted(self, record: Any, threshold: float) -> bool:
        """Clock drift above the protocol's threshold, seen three ways (TM-02): the request's
        ``client_time`` against server time, the device's own ``clock_offset_s``, or an
        ``entered_at`` later than the moment the server received it."""
        offset = record.get("clock_offset_s")
        ahead = (record.parsed["entered_at"] - self.now).total_seconds()
        return ((self.drift_s is not None and abs(self.drift_s) > threshold)
                or (offset is not None and abs(offset) > threshold)
                or ahead > threshold)

    def heard(self, touch: bool) -> None:
        """Read the device's highest ``device_seq`` seen so far (``last_device_seq``, in this write
        transaction) and, with ``touch``, note that the device was heard from now
        (:func:`server.store.devices.touch`) in the same statement."""
        if self.device["id"] is None:
            return
        if touch:
            rows = self.db.conn.execute("UPDATE devices SET last_seen_at = ? WHERE id = ? RETURNING last_device_seq",
                                        [self.received_at, self.device["id"]]).fetchall()
        else:
            rows = self.db.conn.execute("SELECT last_device_seq FROM devices WHERE id = ?",
                                        [self.device["id"]]).fetchall()
        self.last_device_seq = rows[0][0] if rows else None

    def record_seqs(self) -> None:
        """Note ``device_seq`` gaps (SY-07) and the highest seq seen from this device."""
        if not self.seqs or self.last_device_seq is None:
            return
        last = self.last_device_seq
        fresh = sorted({s for s in self.seqs if s > last})
        expected = last + 1
        for seq in fresh:
            if seq > expected:
                self.db.execute("INSERT INTO device_seq_gaps (device_id, seq_from, seq_to, detected_at)"
                                " VALUES (?, ?, ?, ?)", [self.device["id"], expected, seq - 1, self.received_at])
            expected = seq + 1
        if fresh:
            self.db.execute("UPDATE devices SET last_device_seq = ? WHERE id = ?",
                            [fresh[-1], self.device["id"]])


def _last_accept(rows: list[dict[str, Any]], default: str | None) -> str | None:
    """The link of the last ``record.accept`` row among audit rows just written (else ``default``)."""
    return next((r["hash"] for r in reversed(rows) if r["action"] == "record.accept"), default)


#: uploads of at least this many records ask which ids are stored before validating (see
#: :func:`_validate_ahead`)
LOOK_UP_FROM = 8


def _validate_ahead(db: Database, device: dict[str, Any], envelopes: list[Any],
                    protocol: Protocol) -> dict[int, tuple[str, Any, list[FieldError], str | None]]:
    """Hash and validate before the write lock is taken: both are pure (no clock, no database), so
    other uploads can store meanwhile. Only envelopes that will need it: the device's own, with an id
    the database does not hold yet (a replay needs no validation). ``decide`` uses the results.

    A small upload (up to :data:`LOOK_UP_FROM` records: a person pressing Submit) is validated
    without asking the database which ids it holds: validating a replayed record costs less than the
    query (and ``decide`` judges a replay by what is stored before it looks at validation)."""
    mine = {i: b for i, b in enumerate(envelopes) if isinstance(b, dict) and isinstance(b.get("id"), str)
            and b.get("participant") == device["subject"]}
    ids = list({record_key(b["id"]) for b in mine.values()}) if len(mine) >= LOOK_UP_FROM else []
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        marks = ",".join("?" * len(part))
        known.update(r[0] for r in db.execute(f"SELECT id FROM records WHERE id IN ({marks}) UNION"
                                              f" SELECT record_id FROM quarantine WHERE record_id IN ({marks})",
                                              part + part).fetchall())
    out = {}
    for i, body in mine.items():
        if record_key(body["id"]) not in known:
            sha, text = hashed_body(body)
            out[i] = (sha, *record_errors(body, protocol=protocol, sha256=sha), text)
    return out


def ingest(db: Database, device: dict[str, Any], envelopes: Iterable[Any], *, protocol: Protocol,
           client_time: datetime | None = None, channel: str = "sync", actor: Actor | None = None,
           now: datetime | None = None, then: Callable[[Database], Any] | None = None) -> list[dict[str, Any]]:
    """Decide and store a batch in one transaction; one result per envelope, in order.

    ``device`` is a row from :func:`server.store.devices.authenticate_device` or ``get_device``
    (``id``, ``participant_id``, ``subject``, ``site_id``, ``role``, ``caregiver_id``). For staff entry
    (``channel="staff"``, e.g. a dose given at the site) it is a stand-in with ``id`` None and
    ``staff_id``: the record's originator is ``staff:<id>`` and it is marked ``staff_entered``.
    Results: ``{"id", "status", "receipt"?, "errors"?, "labels"?}`` (contract §2).
    ``then(db)``, if given, runs last inside the same write transaction (the sync endpoint counts the
    upload for token rotation there: one commit a request, not two).
    The transaction is :func:`server.db.grouped_write`'s: other threads' uploads may commit with it,
    and the deciding may run on another thread, on its connection (``then`` too: pass it what it needs).
    """
    now = now or utc_now()
    actor = actor or Actor.device(device["id"])
    envelopes = list(envelopes)
    ahead = _validate_ahead(db, device, envelopes, protocol)

    def decide_and_store(db: Database) -> list[dict[str, Any]]:   # the group's connection (group commit)
        batch = _Batch(db, device, protocol, channel, actor, client_time, now)
        batch.ahead = ahead
        batch.heard(touch=channel == "sync")
        batch.prefetch(envelopes)
        results = [batch.decide(i, body) for i, body in enumerate(envelopes)]
        batch.store(results)
        batch.record_seqs()
        if then is not None:
            then(db)
        return results

    results = grouped_write(db, decide_and_store)
    for i, res in enumerate(results):
        if "_same_as" in res:
            first = results[res.pop("_same_as")]
            if first["status"] == "accepted":
                res["receipt"], res["labels"] = first["receipt"], first["labels"]
            else:  # the first copy lost a race to another writer; repeat its outcome
                results[i] = {**first, "id": res["id"]}
    for res, body in zip(results, envelopes):  # each result names the id as its envelope sent it
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            res["id"] = body["id"]
    wake_alerts()  # site alerts (server.alerts): look at the new records now, not at the next interval
    return results


# --- reading -------------------------------------------------------------------------------------

def _decode_record(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "envelope": json.loads(row["envelope"]), "labels": json.loads(row["labels"])}


def get_record(db: Database, record_id: str) -> dict[str, Any] | None:
    row = query_one(db, "SELECT * FROM records WHERE id = ?", [record_id])
    return _decode_record(row) if row else None


def record_versions(db: Database, record_id: str) -> list[dict[str, Any]]:
    """Every version of a record, oldest first (version 1 is the submission as received)."""
    return [{**r, "payload": json.loads(r["payload"]), "changes": json.loads(r["changes"])}
            for r in query(db, "SELECT * FROM record_versions WHERE record_id = ? ORDER BY version",
                           [record_id])]


def record_with_versions(db: Database, record_id: str) -> dict[str, Any] | None:
    """A record with ``versions`` and ``current`` (the envelope with the latest payload)."""
    rec = get_record(db, record_id)
    if rec is None:
        return None
    versions = record_versions(db, record_id)
    rec["versions"] = versions
    rec["current"] = {**rec["envelope"], "payload": versions[-1]["payload"]}
    rec["version"] = versions[-1]["version"]
    return rec


def records_for_participant(db: Database, participant_id: int, *, record_type: str | None = None
                            ) -> list[dict[str, Any]]:
    """A participant's records (first version as received), oldest event first, with version count."""
    sql = ("SELECT r.*, (SELECT MAX(version) FROM record_versions v WHERE v.record_id = r.id) AS version"
           " FROM records r WHERE r.participant_id = ?")
    params: list[Any] = [participant_id]
    if record_type:
        sql += " AND r.type = ?"
        params.append(record_type)
    return [_decode_record(r) for r in query(db, sql + " ORDER BY r.event_time, r.server_seq", params)]


def quarantine_for_site(db: Database, site_id: int) -> list[dict[str, Any]]:
    """Rejected uploads staff should look at (kept, never dropped), newest first."""
    rows = query(db, """
        SELECT q.*, p.subject FROM quarantine q JOIN participants p ON p.id = q.participant_id
        WHERE p.site_id = ? ORDER BY q.id DESC""", [site_id])
    return [{**r, "body": json.loads(r["body"]), "errors": json.loads(r["errors"])} for r in rows]


def open_seq_gaps(db: Database, device_id: str) -> list[int]:
    """``device_seq`` numbers recorded as missing and still not received (SY-07)."""
    missing: list[int] = []
    gaps = query(db, "SELECT seq_from, seq_to FROM device_seq_gaps WHERE device_id = ? ORDER BY seq_from",
                 [device_id])
    if not gaps:          # the usual case: no need to read every seq the device sent
        return missing
    have = {r["device_seq"] for r in query(
        db, "SELECT device_seq FROM records WHERE device_id = ? UNION"
            " SELECT device_seq FROM quarantine WHERE device_id = ? AND device_seq IS NOT NULL",
        [device_id, device_id])}
    for gap in gaps:
        missing.extend(s for s in range(gap["seq_from"], min(gap["seq_to"], gap["seq_from"] + 10000) + 1)
                       if s not in have)
    return missing
