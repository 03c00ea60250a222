"""APScheduler jobs (``QtScheduler``): reminders at their times and every few minutes, and automatic
sync on an interval (the engine's backoff decides whether a run is due).

Jobs run on the scheduler's worker threads, so they touch no widget: they call plain services and
emit signals that Qt delivers on the main thread.
"""

from __future__ import annotations

from apscheduler.schedulers.qt import QtScheduler

from desktop.services.reminders import reminder_times
from desktop.ui.context import UiContext

SYNC_EVERY_S = 60
REMINDER_CHECK_EVERY_MIN = 5


def start_scheduler(ctx: UiContext) -> QtScheduler:
    sched = QtScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    sched.add_job(ctx.auto_sync_requested.emit, "interval", seconds=SYNC_EVERY_S, id="sync",
                  replace_existing=True)
    sched.add_job(ctx.check_reminders, "interval", minutes=REMINDER_CHECK_EVERY_MIN, id="reminders",
                  replace_existing=True)
    schedule_reminders(sched, ctx)
    ctx.reminder_times_changed.connect(lambda: schedule_reminders(sched, ctx))
    sched.start()
    return sched


def schedule_reminders(sched: QtScheduler, ctx: UiContext) -> None:
    """(Re)register one cron job per reminder at the times chosen in Settings."""
    for name, at in reminder_times(ctx.store).items():
        sched.add_job(ctx.check_reminders, "cron", hour=at.hour, minute=at.minute,
                      id=f"reminder:{name}", replace_existing=True)
