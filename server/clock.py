"""Server time: the only clock records, receipts and audit rows are stamped with (TM-01).

Every stored timestamp is UTC with millisecond precision and a ``Z`` suffix, so text order is time
order. Code that needs "now" takes it as an argument defaulting to :func:`utc_now`, so tests can pass
any moment without patching.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """``2025-03-01T08:00:00.123Z`` for an aware datetime (naive ones are refused)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse a stored or received ISO 8601 timestamp with an offset (``Z`` allowed)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError("timestamp without offset")
    return value
