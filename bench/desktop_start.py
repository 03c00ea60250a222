"""Benchmark 4: desktop cold start to the Today screen, offscreen, and its peak memory.

``python -m desktop --smoke --data-dir DIR`` (the real entry point: store, services, Qt window; it
prints the screen it reached and exits) on a data folder that is paired and holds a year of received
entries. Wall time from spawning the process to its exit, and the peak resident set size the kernel
reports for it (``wait4``, from a small launcher process: a child's peak starts from its parent's size). The first run is the coldest this machine offers without dropping the OS
file cache; the median is over the following runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, log, median

RUNS = 5


def _data_dir(root: Path) -> Path:
    """A paired client folder holding a year of entries the site has received."""
    from desktop.store import Outcome, Pairing, Store
    from shared.protocol import load_protocol
    from tests.support.records import make_alsfrs, make_nasal

    from desktop.store.keys import write_site_policy

    folder = root / "client"
    write_site_policy(folder, True)     # a plain store: no keyring on a benchmark machine
    store = Store(folder)
    store.settings.save_pairing(Pairing(
        server_url="http://127.0.0.1:9", device_id="dev-bench", participant="S-001", role="participant",
        originator="participant:S-001", device_name="bench", protocol=load_protocol().participant_projection(),
        paired_at=datetime.now(timezone.utc).isoformat()))
    cst = timezone(timedelta(hours=8))
    start = datetime.now(cst).replace(microsecond=0) - timedelta(days=365)
    outcomes = []
    for day in range(365):
        when = start + timedelta(days=day, hours=12)
        env = (make_alsfrs if day % 30 == 0 else make_nasal)("S-001", entered_at=when)
        entry = store.outbox.submit(env, None, when.isoformat())
        outcomes.append(Outcome(entry.id, "received", "accepted",
                                {"server_seq": day + 1, "received_at": when.isoformat(), "sha256": entry.sha256}))
    store.outbox.record(outcomes, datetime.now(timezone.utc).isoformat())
    store.close()
    return folder


#: runs in a small fresh interpreter: a child's peak RSS (``ru_maxrss``) starts from its parent's
#: size at fork, so the desktop must not be forked from this (large) benchmark process
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - start
out, err = proc.stdout.read().decode("utf-8", "replace"), proc.stderr.read().decode("utf-8", "replace")
print(json.dumps({"elapsed": elapsed, "maxrss_kib": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status),
                  "out": out.strip(), "err": err[-500:]}))
"""


def _one(folder: Path) -> tuple[float, float, str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "desktop", "--smoke",
                           "--data-dir", str(folder)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    r = json.loads(done.stdout)
    if r["code"] != 0:
        raise RuntimeError(f"desktop --smoke exited {r['code']}: {r['err']}")
    return r["elapsed"], r["maxrss_kib"] / 1024, r["out"]


def run(runs: int = RUNS) -> dict[str, Any]:
    from desktop import app

    if "--smoke" not in open(app.__file__, encoding="utf-8").read():
        return {"pending": "desktop --smoke is not in this build"}
    tmp = Path(tempfile.mkdtemp(prefix="als-epro-bench-desktop-"))
    try:
        log("bench 4: desktop cold start to Today (offscreen)")
        folder = _data_dir(tmp)
        results = [_one(folder) for _ in range(runs)]
        screens = {r[2].split("screen=")[1].split()[0] if "screen=" in r[2] else r[2] for r in results}
        return {"first": results[0][0], "median": median([r[0] for r in results[1:]] or [results[0][0]]),
                "peak_mb": max(r[1] for r in results), "screen": ",".join(sorted(screens)),
                "line": results[-1][2]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
