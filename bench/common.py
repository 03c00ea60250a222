"""Shared bench pieces: the machine, timers that split time into stages, and the one output table.

Nothing here asserts a time: benchmarks report, the README keeps the latest table.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


@contextmanager
def timer(into: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - start


@dataclass
class Stages:
    """Exclusive time per stage: a wrapped call inside another wrapped call counts only once,
    in the innermost stage."""

    totals: dict[str, float] = field(default_factory=dict)
    _stack: list[list[float]] = field(default_factory=list)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def timed(self, stage: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = [0.0]                       # time spent in wrapped children
            self._stack.append(frame)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self._stack.pop()
                self.totals[stage] = self.totals.get(stage, 0.0) + spent - frame[0]
                if self._stack:
                    self._stack[-1][0] += spent
        return wrapper

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)
        if isinstance(owner, type) and isinstance(owner.__dict__.get(name), classmethod):
            func = owner.__dict__[name].__func__
            setattr(owner, name, classmethod(self.timed(stage, func)))
            self._undo.append(lambda: setattr(owner, name, classmethod(func)))
        else:
            setattr(owner, name, self.timed(stage, original))
            self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


# --- the table ------------------------------------------------------------------------------------

@dataclass
class Row:
    benchmark: str
    measured: str
    against: str = ""
    result: str = ""
    target: str = ""
    verdict: str = ""


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "—"}[ok]


def table(rows: list[Row]) -> str:
    header = ("Benchmark", "Measured", "Against", "Result", "Target", "")
    cells = [header] + [(r.benchmark, r.measured, r.against, r.result, r.target, r.verdict) for r in rows]
    out = ["| " + " | ".join(c) + " |" for c in cells]
    out.insert(1, "|" + "|".join("---" for _ in header) + "|")
    return "\n".join(out)


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)
