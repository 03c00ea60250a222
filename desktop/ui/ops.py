"""The one background-operation helper: run a plain-Python call on a ``QThreadPool`` and get its
result back on the main thread.

    BackgroundOp(lambda: engine.run()).success(show).failure(warn).run()

Be careful not to touch any widget inside the function: it runs on a worker thread.
"""

from __future__ import annotations

from typing import Any, Callable

from desktop.ui.qt import QObject, QRunnable, QThreadPool, Signal, isValid

_running: set["BackgroundOp"] = set()


class _Relay(QObject):
    done = Signal(object, object)      # result, exception


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn, self.relay = fn, relay

    def run(self) -> None:
        try:
            result, error = self.fn(), None
        except Exception as exc:  # delivered to .failure on the main thread
            result, error = None, exc
        self.relay.done.emit(result, error)


class BackgroundOp:
    def __init__(self, fn: Callable[[], Any], owner: QObject | None = None) -> None:
        self.fn = fn
        self.owner = owner
        self._ok: Callable[[Any], None] | None = None
        self._fail: Callable[[Exception], None] | None = None
        self._relay = _Relay()
        self._relay.done.connect(self._finish)

    def success(self, cb: Callable[[Any], None]) -> "BackgroundOp":
        self._ok = cb
        return self

    def failure(self, cb: Callable[[Exception], None]) -> "BackgroundOp":
        self._fail = cb
        return self

    def run(self) -> "BackgroundOp":
        _running.add(self)
        QThreadPool.globalInstance().start(_Job(self.fn, self._relay))
        return self

    def _finish(self, result: Any, error: Exception | None) -> None:
        _running.discard(self)
        if self.owner is not None and not isValid(self.owner):
            return
        if error is None:
            if self._ok:
                self._ok(result)
        elif self._fail:
            self._fail(error)
        else:
            raise error


def busy() -> bool:
    """Is any background operation still running? (tests wait on this)"""
    return bool(_running)
