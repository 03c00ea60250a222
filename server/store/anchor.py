"""Signed checkpoints of the audit chain head, kept outside the database (Part 11 §11.10(e), AT-03).

The chain alone shows that rows were changed, not that the newest rows were cut off: a chain that ends
early is still a valid chain. A *checkpoint* is a small JSON file holding the head (``seq`` and
``hash``) and the row count at a moment, signed with the audit key (HMAC-SHA256; the same key as the
chain, from the env file) and written to a second location, ``AUDIT_ANCHOR_DIR``, and beside every
backup. ``audit verify`` (:func:`server.store.integrity.verify_database`) reads them back: a database
whose chain does not contain a checkpoint's row with that exact hash has lost or rewritten rows.

Without an audit key a checkpoint is written unsigned (``"mac": null``): it still finds accidental
loss, not deliberate tampering, and verify says so.

- :func:`write_checkpoint` — one checkpoint into one or more folders;
- :func:`backup_checkpoint` — the single call the backup code makes after a backup (into
  ``audit-checkpoints/`` beside the backup file, and into ``AUDIT_ANCHOR_DIR``);
- :func:`scheduled_checkpoint` — the plain function ``server.jobs`` schedules;
- :func:`check_checkpoints` — what verify reports for the checkpoints it finds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.store.audit import current_key, key_id, known_keys

FORMAT = "als-epro-audit-checkpoint/1"
#: the sub-folder of a backup folder that holds the checkpoints written with its backups
CHECKPOINT_DIR = "audit-checkpoints"
PREFIX = "audit-checkpoint-"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    unsigned = {k: v for k, v in body.items() if k != "mac"}
    return hmac.new(key, _canonical(unsigned).encode("utf-8"), hashlib.sha256).hexdigest()


def head(db: Database) -> dict[str, Any]:
    row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    count = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    return {"seq": row[0] if row else 0, "hash": row[1] if row else None, "rows": count}


def _db_identity(db: Database) -> str:
    """Which database a checkpoint belongs to: the first audit row's hash (fixed for its lifetime)."""
    row = db.execute("SELECT hash FROM audit ORDER BY seq LIMIT 1").fetchone()
    return row[0] if row else ""


def write_checkpoint(db: Database, folders: Iterable[str | Path], *, reason: str = "scheduled",
                     now: datetime | None = None) -> dict[str, Any]:
    """Write the current head as a signed checkpoint into every folder (created if missing, 0700)."""
    now = now or utc_now()
    key = current_key()
    body = {"format": FORMAT, "at": iso(now), "reason": reason, "chain": _db_identity(db), **head(db),
            "key_id": key_id(key) if key else None}
    body["mac"] = _mac(key, body) if key else None
    name = f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}-{body['seq']}.json"
    written = []
    for folder in folders:
        folder = Path(folder)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / name
        tmp = path.with_name(path.name + ".partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(body, indent=1, sort_keys=True))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        written.append(str(path))
    return {**body, "files": written}


def backup_checkpoint(db: Database, backup_path: str | Path, config: Mapping[str, Any] | None = None,
                      *, now: datetime | None = None) -> dict[str, Any]:
    """After a backup: a checkpoint beside the backup file and in ``AUDIT_ANCHOR_DIR`` (if set)."""
    from server.config import load_config

    config = load_config() if config is None else config
    folders = [Path(backup_path).parent / CHECKPOINT_DIR]
    if config.get("AUDIT_ANCHOR_DIR"):
        folders.append(Path(config["AUDIT_ANCHOR_DIR"]))
    return write_checkpoint(db, folders, reason=f"backup {Path(backup_path).name}", now=now)


def scheduled_checkpoint(config: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The job ``server.jobs`` runs every ``AUDIT_CHECKPOINT_MINUTES``: a checkpoint into
    ``AUDIT_ANCHOR_DIR``, or nothing when it is not set."""
    from server.db import open_db

    if not config.get("AUDIT_ANCHOR_DIR"):
        return {"skipped": "AUDIT_ANCHOR_DIR is not set"}
    db = open_db(config["DB"], busy_timeout_ms=int(config.get("SQLITE_BUSY_TIMEOUT_MS") or 10000))
    try:
        return write_checkpoint(db, [config["AUDIT_ANCHOR_DIR"]], now=now)
    finally:
        db.close()


def read_checkpoints(folders: Iterable[str | Path]) -> list[tuple[Path, Any]]:
    """Every checkpoint file in the folders, oldest name first: ``(path, parsed JSON or None)``."""
    out = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"{PREFIX}*.json")):
            try:
                out.append((path, json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError):
                out.append((path, None))
    return out


def check_checkpoints(db: Database, folders: Iterable[str | Path]) -> tuple[int, list[dict[str, Any]]]:
    """``(checkpoints checked, problems)`` for the checkpoints of this database in ``folders``.

    A problem: a checkpoint that does not parse or whose signature fails; a checkpoint row missing
    from the database (tail rows deleted) or holding another hash (rows rewritten, chain recomputed).
    The anchor folder belongs to one installation: a checkpoint whose first-row hash differs is a
    problem too (the whole chain rewritten), not another database to skip."""
    keys = known_keys()
    identity = _db_identity(db)
    problems: list[dict[str, Any]] = []
    checked = 0
    for path, body in read_checkpoints(folders):
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            problems.append({"check": "checkpoint", "file": str(path), "problem": "not a checkpoint file"})
            continue
        checked += 1
        if body.get("mac") is not None:
            key = keys.get(body.get("key_id"))
            if key is None:
                problems.append({"check": "checkpoint", "file": str(path),
                                 "problem": f"signed with audit key {body.get('key_id')}, which is not configured"})
                continue
            if not hmac.compare_digest(_mac(key, body), str(body["mac"])):
                problems.append({"check": "checkpoint", "file": str(path), "problem": "signature does not match"})
                continue
        elif keys:
            problems.append({"check": "checkpoint", "file": str(path),
                             "problem": "unsigned checkpoint although an audit key is configured"})
        seq = body.get("seq")
        if not seq:
            continue
        if body.get("chain") != identity:
            problems.append({"check": "checkpoint", "file": str(path), "seq": 1,
                             "problem": "the chain's first row differs from the checkpoint's (the chain was "
                                        "rewritten from the start, or the checkpoint belongs to another database)"})
            continue
        row = db.execute("SELECT hash FROM audit WHERE seq = ?", [seq]).fetchone()
        top = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
        if row is None:
            problems.append({"check": "checkpoint", "file": str(path), "seq": seq,
                             "problem": f"the checkpoint of {body.get('at')} names row {seq}; the database ends at "
                                        f"row {top} (rows deleted)"})
        elif row[0] != body.get("hash"):
            problems.append({"check": "checkpoint", "file": str(path), "seq": seq,
                             "problem": f"row {seq} differs from the checkpoint of {body.get('at')} "
                                        "(rows rewritten and the chain recomputed)"})
    return checked, problems
