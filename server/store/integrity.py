"""``audit verify``: does the database still agree with its own audit trail? (Part 11 §11.10(e), AT-03)

The hash chain (:func:`server.store.audit.verify_chain`, keyed with the audit key from the env file)
finds an audit row edited in place. What someone with write access to the file could do besides is
checked here, each from a fact the database cannot rewrite consistently without the key:

- **chain**: every link, keyed rows with the audit key (a rewritten row with the chain recomputed
  fails without the key);
- **checkpoints**: signed heads kept outside the database (:mod:`server.store.anchor`): deleted tail
  rows, or rows rewritten before a checkpoint;
- **triggers**: every append-only trigger present, with exactly the SQL the migration made (a dropped
  or replaced trigger), AT-04;
- **records**: each stored envelope hashes to its ``sha256`` and agrees with its columns; each record
  has its ``record.accept`` audit row with that sha256 and ``server_seq``; every accepted record in the
  audit trail is still there (deleted records);
- **versions**: version 1 is the envelope's payload; every later version is the one before with
  exactly the changes its ``record.correct`` audit row names; no version is missing or extra;
- **staff**: each account's email, site, role and active flag are what the audit trail's
  ``staff.create`` / ``staff.role_change`` / ``staff.enable`` / ``staff.disable`` rows make them.

:func:`verify_database` returns every problem found (with the check, the row or id, and what is
wrong); ``first_bad_seq`` names the first bad audit row when the chain is broken.

**Memory stays flat in the size of the trial** (issue 13): everything runs in one read transaction
and every large table is read in key order, ``chunk`` rows per statement
(:func:`server.db.key_ordered_chunks`): the audit chain by ``seq``, the records by ``server_seq``
with their versions and record audit rows fetched per chunk. What stays in memory besides one chunk:
the problems found, the staff accounts' replayed state (one entry per account) and the sites by code;
audit rows about records whose ``entity`` is not ``record`` (none unless someone wrote them by
hand). Deleted records and versions without a record are found by SQLite, not by sets of ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlite_utils import Database

from server.db import CHUNK_ROWS, key_ordered_chunks, read_snapshot
from server.migrations import APPEND_ONLY
from server.store.anchor import check_checkpoints
from server.store.audit import verify_chain
from shared.canonical import record_sha256
from shared.ids import record_key

_MISSING = object()


def _norm_sql(sql: str | None) -> str:
    return re.sub(r"\s+", " ", sql or "").strip().lower()


def expected_trigger_sql(table: str, op: str) -> str:
    """The SQL of an append-only trigger as ``server.migrations._append_only`` creates it."""
    return (f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op.upper()} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END")


def trigger_problems(db: Database) -> list[dict[str, Any]]:
    have = {r[0]: r[1] for r in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
    tables = set(db.table_names())
    out = []
    for table in APPEND_ONLY:
        if table not in tables:
            continue
        for op in ("update", "delete"):
            name = f"{table}_no_{op}"
            if name not in have:
                out.append({"check": "triggers", "id": name, "problem": f"trigger {name} is missing (dropped)"})
            elif _norm_sql(have[name]) != _norm_sql(expected_trigger_sql(table, op)):
                out.append({"check": "triggers", "id": name,
                            "problem": f"trigger {name} was replaced: it no longer refuses {op.upper()}"})
    return out


def _audit_rows(db: Database, actions: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The audit rows of a few actions, oldest first, streamed (only staff accounts' rows are read
    this way: a handful in any trial)."""
    marks = ",".join("?" * len(actions))
    cur = db.execute(f"SELECT seq, action, entity_id, detail FROM audit WHERE action IN ({marks}) ORDER BY seq",
                     list(actions))
    for seq, action, entity_id, detail in cur:
        yield {"seq": seq, "action": action, "entity_id": entity_id, "detail": _loads(detail)}


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return _MISSING


_RECORD_ACTIONS = ("record.accept", "record.correct")
_RECORD_COLUMNS = ("r.id, r.type, p.subject, r.event_time, r.entered_at, r.device_seq, r.server_seq, r.sha256,"
                   " r.envelope")


class _ByRecord:
    """The rows of one query per chunk of records, ordered by the record's ``server_seq`` first,
    handed out record by record while the chunk's records are checked in the same order."""

    def __init__(self, rows: Iterable[tuple]):
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def take(self, server_seq: Any) -> list[tuple]:
        out = []
        while self._next is not None and self._next[0] == server_seq:
            out.append(self._next[1:])
            self._next = next(self._rows, None)
        return out


def _record_audit(db: Database) -> dict[str, list[tuple[int, str, Any]]]:
    """Record audit rows whose ``entity`` is not ``record`` (only a hand-made row is): the records
    check reads its rows per record through the ``(entity, entity_id)`` index, and today's checks
    match a row by ``entity_id`` alone, so these are kept aside. Empty in a database the application
    wrote; its size is that of the tampering."""
    stray: dict[str, list[tuple[int, str, Any]]] = {}
    marks = ",".join("?" * len(_RECORD_ACTIONS))
    for seq, action, entity_id, detail in db.execute(
            f"SELECT seq, action, entity_id, detail FROM audit WHERE action IN ({marks})"
            " AND entity IS NOT 'record' ORDER BY seq", _RECORD_ACTIONS):
        stray.setdefault(entity_id, []).append((seq, action, _loads(detail)))
    return stray


def record_problems(db: Database, *, chunk: int = CHUNK_ROWS) -> list[dict[str, Any]]:
    """Records and versions against the envelopes and the audit trail, in ``server_seq`` order.

    Read ``chunk`` records at a time with, per chunk, their versions and their ``record.accept`` /
    ``record.correct`` audit rows (two more queries over the same ``server_seq`` range; ``CROSS JOIN``
    keeps SQLite walking the records first, by index, so the rows come in that order unsorted):
    what stays in memory is one chunk and the problems found, nothing per record of the database.
    Deleted records and orphan versions are found by SQLite (``NOT EXISTS``), not by a set of ids."""
    out: list[dict[str, Any]] = []
    stray = _record_audit(db)
    marks = ",".join("?" * len(_RECORD_ACTIONS))
    for rows in key_ordered_chunks(db, "records r LEFT JOIN participants p ON p.id = r.participant_id",
                                   "r.server_seq", _RECORD_COLUMNS, chunk=chunk):
        span = [rows[0][0], rows[-1][0]]
        versions = _ByRecord(db.execute(
            "SELECT r.server_seq, v.version, v.payload, v.changes FROM records r"
            " CROSS JOIN record_versions v ON v.record_id = r.id WHERE r.server_seq >= ? AND r.server_seq <= ?"
            " ORDER BY r.server_seq, v.version", span))
        audit = _ByRecord(db.execute(
            "SELECT r.server_seq, a.seq, a.action, a.detail FROM records r"
            " CROSS JOIN audit a ON a.entity = 'record' AND a.entity_id = r.id"
            f" WHERE r.server_seq >= ? AND r.server_seq <= ? AND a.action IN ({marks})"
            " ORDER BY r.server_seq, a.seq", [*span, *_RECORD_ACTIONS]))
        for server_seq, *row in rows:
            trail = [(seq, action, _loads(detail)) for seq, action, detail in audit.take(server_seq)]
            if row[0] in stray:
                trail = sorted(trail + stray[row[0]], key=lambda t: t[0])
            out.extend(_one_record(row, versions.take(server_seq), trail))
    for rid, seq in db.execute(
            "SELECT a.entity_id, MIN(a.seq) FROM audit a WHERE a.action = 'record.accept'"
            " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = a.entity_id) GROUP BY a.entity_id"
            " ORDER BY MIN(a.seq)"):
        out.append({"check": "records", "id": rid, "seq": seq,
                    "problem": f"accepted in audit row {seq} but no longer in the records table (deleted)"})
    for (rid,) in db.execute("SELECT DISTINCT v.record_id FROM record_versions v WHERE NOT EXISTS"
                             " (SELECT 1 FROM records r WHERE r.id = v.record_id) ORDER BY v.record_id"):
        out.append({"check": "versions", "id": rid, "problem": "versions of a record that is not in the records table"})
    return out


def _one_record(row: list[Any], version_rows: list[tuple], trail: list[tuple[int, str, Any]]) -> list[dict[str, Any]]:
    """The problems of one record: its columns, its versions and its audit rows (oldest first)."""
    rid, rtype, subject, event_time, entered_at, device_seq, server_seq, sha, envelope = row
    out: list[dict[str, Any]] = []

    def bad(problem: str) -> None:
        out.append({"check": "records", "id": rid, "problem": problem})

    accept = next(({"seq": seq, "detail": detail} for seq, action, detail in trail if action == "record.accept"),
                  None)
    corrections = {detail.get("version"): {"seq": seq, "detail": detail} for seq, action, detail in trail
                   if action == "record.correct" and isinstance(detail, dict)}
    env = _loads(envelope)
    if not isinstance(env, dict):
        bad("the stored envelope is not a JSON object")
        return out
    if record_sha256(env) != sha:
        bad("the stored envelope does not match its sha256 (changed in the file)")
    facts = {"id": record_key(env.get("id")), "type": env.get("type"), "participant": env.get("participant"),
             "event_time": env.get("event_time"), "entered_at": env.get("entered_at"),
             "device_seq": env.get("device_seq")}
    columns = {"id": rid, "type": rtype, "participant": subject, "event_time": event_time,
               "entered_at": entered_at, "device_seq": device_seq}
    for name, want in facts.items():
        if columns[name] != want:
            bad(f"column {name} ({columns[name]!r}) differs from the envelope ({want!r})")
    if accept is None:
        bad("no record.accept audit row for this record (stored outside the application)")
    elif not isinstance(accept["detail"], dict) or accept["detail"].get("sha256") != sha \
            or accept["detail"].get("server_seq") != server_seq:
        bad(f"differs from its record.accept audit row {accept['seq']} (sha256 or server_seq changed)")
    versions = [(version, _loads(payload), changes) for version, payload, changes in version_rows]
    out.extend(_version_problems(rid, env.get("payload"), versions, corrections))
    return out


def _apply(payload: Any, changes: Any) -> Any:
    from copy import deepcopy

    from server.store.versions import _set

    out = deepcopy(payload)
    for change in changes if isinstance(changes, list) else []:
        parts = str(change.get("field", "")).removeprefix("payload.").split(".")
        _set(out, parts, change.get("new"))
    return out


def _version_problems(rid: str, payload: Any, rows: list[tuple[int, Any, Any]],
                      corrections: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows``: ``(version, payload, changes as stored)``; ``corrections``: this record's
    ``record.correct`` audit rows by the version they made."""
    out = []

    def bad(problem: str) -> None:
        out.append({"check": "versions", "id": rid, "problem": problem})

    numbers = [v for v, _, _ in rows]
    expected = list(range(1, max(numbers, default=0) + 1))
    if numbers != expected or not numbers:
        bad(f"versions {numbers} are not 1..n (a version was deleted or added)")
    for v in sorted(corrections.keys() - set(numbers)):
        bad(f"version {v} is in the audit trail (record.correct) but missing")
    previous = _MISSING
    for version, body, changes in rows:
        if version == 1:
            if body != payload:
                bad("version 1 differs from the payload of the envelope as received")
        else:
            audit = corrections.get(version)
            if audit is None:
                bad(f"version {version} has no record.correct audit row")
            else:
                detail = audit["detail"]
                if detail.get("changes") != _loads(changes):
                    bad(f"version {version}: its changes differ from audit row {audit['seq']}")
                if previous is not _MISSING and _apply(previous, detail.get("changes")) != body:
                    bad(f"version {version} is not version {version - 1} with the changes of audit row {audit['seq']}")
        previous = body
    return out


def staff_problems(db: Database) -> list[dict[str, Any]]:
    """Replay the audit trail's account rows and compare with the staff table."""
    sites = {code: sid for sid, code in db.execute("SELECT id, code FROM sites")}
    want: dict[str, dict[str, Any]] = {}
    for row in _audit_rows(db, ("staff.create", "staff.role_change", "staff.enable", "staff.disable")):
        d = row["detail"] if isinstance(row["detail"], dict) else {}
        sid = row["entity_id"]
        if row["action"] == "staff.create":
            want[sid] = {"email": d.get("email"), "role": d.get("role"), "site_id": sites.get(d.get("site")),
                         "active": 1, "seq": row["seq"]}
        elif sid in want:
            if row["action"] == "staff.role_change":
                want[sid]["role"] = d.get("new")
            else:
                want[sid]["active"] = int(row["action"] == "staff.enable")
            want[sid]["seq"] = row["seq"]
    out = []
    for sid, email, site_id, role, active in db.execute("SELECT id, email, site_id, role, active FROM staff ORDER BY id"):
        w = want.get(str(sid))
        if w is None:
            out.append({"check": "staff", "id": sid, "problem": f"account {email} has no staff.create audit row "
                                                                 "(made outside the application)"})
            continue
        have = {"email": email, "role": role, "site_id": site_id, "active": int(active)}
        for name, value in have.items():
            expected = w[name].lower() if name == "email" and w[name] else w[name]
            got = value.lower() if name == "email" and value else value
            if got != expected:
                out.append({"check": "staff", "id": sid,
                            "problem": f"{name} is {value!r} but the audit trail (up to row {w['seq']}) says {w[name]!r}"})
    return out


def verify_database(db: Database, anchor_dirs: Iterable[str | Path] = (), *,
                    chunk: int = CHUNK_ROWS) -> dict[str, Any]:
    """Every check above; ``ok`` only when nothing is wrong. One read transaction (a server writing
    meanwhile is not seen half-way); tables are read ``chunk`` rows at a time."""
    with read_snapshot(db):
        chain = verify_chain(db, chunk=chunk)
        problems: list[dict[str, Any]] = []
        if not chain.ok:
            problems.append({"check": "chain", "seq": chain.first_bad_seq, "problem": chain.problem})
        checked, anchor_problems = check_checkpoints(db, anchor_dirs)
        problems += anchor_problems
        problems += trigger_problems(db)
        problems += record_problems(db, chunk=chunk)
        problems += staff_problems(db)
    first_seq = chain.first_bad_seq if not chain.ok else next(
        (p["seq"] for p in problems if p.get("seq")), None)
    return {"ok": not problems, "rows": chain.rows, "first_bad_seq": first_seq,
            "problem": problems[0]["problem"] if problems else None, "checkpoints": checked,
            "problems": problems}
