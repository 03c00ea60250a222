"""Time as a dependency: the store, the sync engine and the services never call ``datetime.now``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The device wall clock as an aware datetime in the local zone."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now().astimezone()


class FixedClock:
    """A clock for tests: stands still until moved."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


def utc_iso(moment: datetime) -> str:
    """A sortable UTC timestamp for local bookkeeping columns."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def local_iso(moment: datetime) -> str:
    """A wire timestamp: local wall time with its UTC offset, to the second."""
    return moment.isoformat(timespec="seconds")


def clock_offset_s(server_time: object, before: datetime, after: datetime) -> float | None:
    """Device clock minus server clock, taking the server's time as read at the middle of the request.
    None when ``server_time`` is not an ISO timestamp with an offset."""
    if not isinstance(server_time, str):
        return None
    try:
        server = datetime.fromisoformat(server_time.replace("Z", "+00:00"))
    except ValueError:
        return None
    if server.tzinfo is None:
        return None
    middle = before + (after - before) / 2
    return round((middle - server).total_seconds(), 1)
