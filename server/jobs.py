"""APScheduler wiring for the ``serve`` process only; the jobs themselves are plain functions in
:mod:`server.tasks` that tests call directly."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping


def start_jobs(config: Mapping[str, Any]):
    """Start a BackgroundScheduler running every task; returns it (call ``shutdown`` on exit)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from server.tasks import run_all

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(run_all, "interval", minutes=float(config["JOBS_INTERVAL_MINUTES"]),
                      args=[config["DB"], config["PROTOCOL"]], id="als-epro-tasks",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc))
    if config.get("BACKUP_DIR"):  # the daily backup with retention (server.tasks.backup)
        scheduler.add_job("server.tasks.backup:scheduled_backup", "interval", hours=1, args=[dict(config)],
                          id="als-epro-backup", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))
    if config.get("AUDIT_ANCHOR_DIR"):  # signed audit-chain checkpoints to a second location
        scheduler.add_job("server.store.anchor:scheduled_checkpoint", "interval",
                          minutes=float(config.get("AUDIT_CHECKPOINT_MINUTES") or 60), args=[dict(config)],
                          id="als-epro-audit-checkpoint", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))
    scheduler.start()
    return scheduler
