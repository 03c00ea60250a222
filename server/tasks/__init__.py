"""Scheduled tasks: plain functions ``(db, protocol, now)`` that the serve process runs on a timer
(:mod:`server.jobs`) and tests call directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def run_all(db_path: str, protocol_name: str, now: datetime | None = None) -> dict[str, Any]:
    """Run every task once against the database file; returns each task's summary."""
    return {}
