"""Wake the alert dispatcher early: the ingest calls :func:`wake` after storing records, and the serve
process (:mod:`server.jobs`) registers how. Without a registered waker (tests, CLI) it does nothing;
the dispatcher's own interval still finds every flag (``server.alerts`` watermark)."""

from __future__ import annotations

import logging
from typing import Callable

_waker: Callable[[], None] | None = None


def set_waker(fn: Callable[[], None] | None) -> None:
    global _waker
    _waker = fn


def wake() -> None:
    if _waker is None:
        return
    try:
        _waker()
    except Exception:  # never let alerting disturb an upload
        logging.getLogger("server.alerts").exception("waking the alert dispatcher failed")
