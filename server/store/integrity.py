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
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from sqlite_utils import Database

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


def _audit_rows(db: Database, actions: tuple[str, ...]) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(actions))
    cur = db.execute(f"SELECT seq, action, entity_id, detail FROM audit WHERE action IN ({marks}) ORDER BY seq",
                     list(actions))
    return [{"seq": s, "action": a, "entity_id": e, "detail": _loads(d)} for s, a, e, d in cur.fetchall()]


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return _MISSING


def record_problems(db: Database) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    accepted: dict[str, dict[str, Any]] = {}
    corrections: dict[tuple[str, int], dict[str, Any]] = {}
    for row in _audit_rows(db, ("record.accept", "record.correct")):
        if row["action"] == "record.accept":
            accepted.setdefault(row["entity_id"], row)
        elif isinstance(row["detail"], dict):
            corrections[(row["entity_id"], row["detail"].get("version"))] = row
    subjects = {pid: subject for pid, subject in db.execute("SELECT id, subject FROM participants")}
    versions: dict[str, list[tuple[int, Any, Any]]] = {}
    for rid, version, payload, changes in db.execute(
            "SELECT record_id, version, payload, changes FROM record_versions ORDER BY record_id, version"):
        versions.setdefault(rid, []).append((version, _loads(payload), _loads(changes)))
    seen: set[str] = set()
    cur = db.execute("SELECT id, type, participant_id, event_time, entered_at, device_seq, server_seq, sha256,"
                     " envelope FROM records ORDER BY server_seq")
    for rid, rtype, pid, event_time, entered_at, device_seq, server_seq, sha, envelope in cur:
        seen.add(rid)

        def bad(problem: str, check: str = "records") -> None:
            out.append({"check": check, "id": rid, "problem": problem})

        env = _loads(envelope)
        if not isinstance(env, dict):
            bad("the stored envelope is not a JSON object")
            continue
        if record_sha256(env) != sha:
            bad("the stored envelope does not match its sha256 (changed in the file)")
        facts = {"id": record_key(env.get("id")), "type": env.get("type"), "participant": env.get("participant"),
                 "event_time": env.get("event_time"), "entered_at": env.get("entered_at"),
                 "device_seq": env.get("device_seq")}
        columns = {"id": rid, "type": rtype, "participant": subjects.get(pid), "event_time": event_time,
                   "entered_at": entered_at, "device_seq": device_seq}
        for name, want in facts.items():
            if columns[name] != want:
                bad(f"column {name} ({columns[name]!r}) differs from the envelope ({want!r})")
        audit = accepted.get(rid)
        if audit is None:
            bad("no record.accept audit row for this record (stored outside the application)")
        elif not isinstance(audit["detail"], dict) or audit["detail"].get("sha256") != sha \
                or audit["detail"].get("server_seq") != server_seq:
            bad(f"differs from its record.accept audit row {audit['seq']} (sha256 or server_seq changed)")
        out.extend(_version_problems(rid, env.get("payload"), versions.get(rid, []), corrections))
    for rid, audit in accepted.items():
        if rid not in seen:
            out.append({"check": "records", "id": rid, "seq": audit["seq"],
                        "problem": f"accepted in audit row {audit['seq']} but no longer in the records table (deleted)"})
    for rid in versions.keys() - seen:
        out.append({"check": "versions", "id": rid, "problem": "versions of a record that is not in the records table"})
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
                      corrections: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    out = []

    def bad(problem: str) -> None:
        out.append({"check": "versions", "id": rid, "problem": problem})

    numbers = [v for v, _, _ in rows]
    expected = list(range(1, max(numbers, default=0) + 1))
    if numbers != expected or not numbers:
        bad(f"versions {numbers} are not 1..n (a version was deleted or added)")
    wanted = {v for (r, v) in corrections if r == rid}
    for v in sorted(wanted - set(numbers)):
        bad(f"version {v} is in the audit trail (record.correct) but missing")
    previous = _MISSING
    for version, body, changes in rows:
        if version == 1:
            if body != payload:
                bad("version 1 differs from the payload of the envelope as received")
        else:
            audit = corrections.get((rid, version))
            if audit is None:
                bad(f"version {version} has no record.correct audit row")
            else:
                detail = audit["detail"]
                if detail.get("changes") != changes:
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


def verify_database(db: Database, anchor_dirs: Iterable[str | Path] = ()) -> dict[str, Any]:
    """Every check above; ``ok`` only when nothing is wrong."""
    chain = verify_chain(db)
    problems: list[dict[str, Any]] = []
    if not chain.ok:
        problems.append({"check": "chain", "seq": chain.first_bad_seq, "problem": chain.problem})
    checked, anchor_problems = check_checkpoints(db, anchor_dirs)
    problems += anchor_problems
    problems += trigger_problems(db)
    problems += record_problems(db)
    problems += staff_problems(db)
    first_seq = chain.first_bad_seq if not chain.ok else next(
        (p["seq"] for p in problems if p.get("seq")), None)
    return {"ok": not problems, "rows": chain.rows, "first_bad_seq": first_seq,
            "problem": problems[0]["problem"] if problems else None, "checkpoints": checked,
            "problems": problems}
