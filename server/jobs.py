"""APScheduler wiring for the ``serve`` process only; the jobs themselves are plain functions in
:mod:`server.tasks` that tests call directly."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping


def start_jobs(config: Mapping[str, Any]):
    """Start a BackgroundScheduler running every task; returns it (call ``shutdown`` on exit)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from server.config import DEFAULTS
    from server.tasks import run_all

    config = {**DEFAULTS, **config}
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(run_all, "interval", minutes=float(config["JOBS_INTERVAL_MINUTES"]),
                      args=[config["DB"], config["PROTOCOL"]], id="als-epro-tasks",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc))
    if config.get("BACKUP_DIR"):  # the daily backup with retention (server.tasks.backup)
        scheduler.add_job("server.tasks.backup:scheduled_backup", "interval", hours=1, args=[dict(config)],
                          id="als-epro-backup", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))
    # site alerts (server.alerts): every ALERTS_INTERVAL_SECONDS, and woken early by the ingest
    scheduler.add_job("server.alerts:run_dispatch", "interval", seconds=float(config["ALERTS_INTERVAL_SECONDS"]),
                      args=[dict(config)], id=ALERTS_JOB, max_instances=1, coalesce=True,
                      next_run_time=datetime.now(timezone.utc))
    # the participants list's kept rows (server.store.list_summaries): remade off the request path,
    # woken with the alerts after each upload, and every LIST_ROWS_INTERVAL_SECONDS
    scheduler.add_job("server.store.list_summaries:scheduled_rebuild", "interval", seconds=LIST_ROWS_INTERVAL_SECONDS,
                      args=[dict(config)], id=LIST_ROWS_JOB, max_instances=1, coalesce=True,
                      next_run_time=datetime.now(timezone.utc))
    if config.get("AUDIT_ANCHOR_DIR"):  # signed audit-chain checkpoints to a second location
        scheduler.add_job("server.store.anchor:scheduled_checkpoint", "interval",
                          minutes=float(config.get("AUDIT_CHECKPOINT_MINUTES") or 60), args=[dict(config)],
                          id="als-epro-audit-checkpoint", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))
    scheduler.start()
    _wake_alerts_with(scheduler)
    return scheduler


ALERTS_JOB = "als-epro-alerts"
LIST_ROWS_JOB = "als-epro-list-rows"
LIST_ROWS_INTERVAL_SECONDS = 300.0
#: an early run starts at most this often, so a burst of uploads costs one flag evaluation a second
ALERTS_MIN_GAP_SECONDS = 1.0


def _wake_alerts_with(scheduler) -> None:
    import threading
    from datetime import timedelta

    from server.alerts.wake import set_waker

    lock = threading.Lock()
    last = [datetime.min.replace(tzinfo=timezone.utc)]

    def waker() -> None:
        if not scheduler.running:
            return
        now = datetime.now(timezone.utc)
        with lock:
            if last[0] > now:
                return    # an early run is already on its way
            at = max(now, last[0] + timedelta(seconds=ALERTS_MIN_GAP_SECONDS))
            last[0] = at
        for job in (ALERTS_JOB, LIST_ROWS_JOB):     # new records: alerts, and the list's rows
            scheduler.modify_job(job, next_run_time=at)

    set_waker(waker)
