"""Scheduled tasks: plain functions ``(db, …, now)`` that the serve process runs on a timer
(:mod:`server.jobs`) and tests call directly."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from server.clock import utc_now

log = logging.getLogger("server.tasks")


def run_all(db_path: str, protocol_name: str, now: datetime | None = None) -> dict[str, Any]:
    """Run every task once against the database file; returns each task's summary."""
    from server.db import open_db
    from server.tasks.compliance import recompute_compliance
    from server.store.reviews import recompute_flag_counts
    from server.store.security_log import flush_summaries
    from server.tasks.devices import mark_silent_devices
    from shared.protocol import load_protocol

    now = now or utc_now()
    protocol = load_protocol(protocol_name)
    db = open_db(db_path)
    try:
        out = {"compliance": recompute_compliance(db, protocol, now),
               "devices": mark_silent_devices(db, float(protocol.threshold("device_silent_hours")), now),
               "flags": recompute_flag_counts(db, protocol, now),
               "security_summaries": flush_summaries(db, now=now)}
    except Exception:  # a failed run is logged and retried at the next interval
        log.exception("scheduled tasks failed")
        raise
    finally:
        db.close()
    return out
