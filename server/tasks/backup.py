"""The daily scheduled backup with retention (SY-09).

The ``serve`` process calls :func:`scheduled_backup` every hour (``server.jobs``); it makes the day's
backup (UTC date) the first time it runs on a day with none yet, so a server that was down at
midnight catches up as soon as it is back. Only after a backup succeeded are older ones pruned to the
newest ``BACKUP_KEEP`` days; a failed backup deletes nothing. The audit table is never touched by
retention: only backup files named ``als-epro-<UTC>.sqlite`` (and their manifests) in ``BACKUP_DIR``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from server.backup import NAME_RE, backup, backups_in, parse_recipients, prune, stamp
from server.clock import utc_now
from server.store.audit import Actor

ACTOR = Actor.system("backup")
log = logging.getLogger("server.tasks.backup")


def daily_backup(db_path: str | Path, backup_dir: str | Path, keep: int, now: datetime | None = None,
                 *, busy_timeout_ms: int = 10000, recipients: Any = (),
                 unencrypted: bool = False) -> dict[str, Any]:
    """Write today's backup into ``backup_dir`` unless one exists, then keep the newest ``keep`` days."""
    now = now or utc_now()
    if int(keep) < 1:
        raise ValueError("BACKUP_KEEP must be at least 1")
    folder = Path(backup_dir)
    folder.mkdir(parents=True, exist_ok=True)
    today = stamp(now)[:8]
    existing = [p for p in backups_in(folder) if NAME_RE.match(p.name).group(1) == today]
    created = None
    if not existing:
        created = backup(db_path, folder, actor=ACTOR, now=now, busy_timeout_ms=busy_timeout_ms,
                         recipients=parse_recipients(recipients), unencrypted=unencrypted)
    kept, removed = prune(folder, keep)
    return {"created": str(created.path) if created else None,
            "chain_ok": created.manifest["audit"]["chain_ok"] if created else None,
            "kept": [p.name for p in kept], "removed": [p.name for p in removed]}


def scheduled_backup(config: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The job ``server.jobs`` runs: :func:`daily_backup` with the server's settings, or nothing when
    ``BACKUP_DIR`` is not set."""
    if not config.get("BACKUP_DIR"):
        return {"skipped": "BACKUP_DIR is not set"}
    try:
        out = daily_backup(config["DB"], config["BACKUP_DIR"], int(config.get("BACKUP_KEEP") or 14), now,
                           busy_timeout_ms=int(config.get("SQLITE_BUSY_TIMEOUT_MS") or 10000),
                           recipients=config.get("BACKUP_RECIPIENTS"),
                           unencrypted=config.get("BACKUP_ALLOW_UNENCRYPTED") is True)
    except Exception:  # logged; the next hourly run tries again
        log.exception("scheduled backup failed")
        raise
    if out["chain_ok"] is False:
        log.error("scheduled backup %s: the audit chain is broken; it will not restore", out["created"])
    return out
