"""``kill -9`` during Submit leaves either the whole entry or nothing, and every "Saved" stays saved."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.canonical import record_sha256
from shared.schemas import load_record

from desktop.store import Store

from tests.desktop.helpers import pair

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(data_dir: Path, rng: random.Random) -> set[str]:
    """Start the worker, let it save a few entries, SIGKILL it mid-Submit; return the ids it
    reported as saved."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.desktop.save_worker", str(data_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    saved: set[str] = set()
    target = rng.randint(2, 6)
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, n, *rest = line.split()
            if word == "saved":
                saved.add(rest[0])
            elif int(n) >= target:
                time.sleep(rng.uniform(0, 0.03))   # inside the slowed transaction, usually
                break
            assert time.monotonic() < deadline, "worker too slow"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return saved


@pytest.mark.slow
def test_kill_9_during_save_leaves_whole_entries_or_nothing(tmp_path):
    data = tmp_path / "data"
    s = Store(data)
    pair(s)
    s.close()
    rng = random.Random(4)
    reported: set[str] = set()
    for _ in range(4):
        reported |= run_and_kill(data, rng)
    store = Store(data)
    try:
        entries = store.outbox.entries()
        ids = {e.id for e in entries}
        assert reported <= ids                              # every "Saved" survived the kill
        assert [e.device_seq for e in entries] == list(range(1, len(entries) + 1))   # gap-free
        for e in entries:
            assert e.sha256 == record_sha256(e.envelope)    # the whole envelope, as hashed
            assert load_record(e.envelope)["device_seq"] == e.device_seq
            assert e.state == "saved"
        drafts = {d.id for d in store.drafts.all()}
        assert not drafts & ids                             # never both a draft and an entry
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert len(entries) >= 8
    finally:
        store.close()
