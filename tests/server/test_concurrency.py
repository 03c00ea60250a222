"""Two processes uploading the same batch at once store exactly one copy (enforced by the database)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from server.store import records as records_store
from server.store.devices import get_device
from server.store.records import ingest
from shared.protocol import load_protocol
from tests.server.helpers import pair
from tests.support.live_server import REPO_ROOT
from tests.support.records import make_batch

WORKER = r"""
import json, os, sys, time
from server.db import open_db
from server.store.devices import get_device
from server.store.records import ingest
from shared.protocol import load_protocol
db_path, device_id, batch_file, ready, go = sys.argv[1:6]
batch = json.load(open(batch_file))
db = open_db(db_path)
device = get_device(db, device_id)
protocol = load_protocol()
open(ready, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.001)
print(json.dumps(ingest(db, device, batch, protocol=protocol)))
"""


def _wait_for(paths, seconds=30):
    deadline = time.monotonic() + seconds
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "workers did not get ready"
        time.sleep(0.01)


def test_two_processes_uploading_the_same_batch_store_one_copy(client, db, db_path, tmp_path):
    dev = pair(client, db)
    batch = make_batch("S-001", 200)
    batch_file = tmp_path / "batch.json"
    batch_file.write_text(json.dumps(batch))
    go = tmp_path / "go"
    procs, ready = [], []
    for n in range(2):
        flag = tmp_path / f"ready-{n}"
        ready.append(flag)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db_path), dev["device_id"], str(batch_file), str(flag), str(go)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    _wait_for(ready)
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM records").fetchone() == (200, 200)
    assert db.execute("SELECT COUNT(*) FROM record_versions").fetchone()[0] == 200
    a, b = outputs
    for first, second in zip(a, b):
        assert {first["status"], second["status"]} == {"accepted", "duplicate"}
        assert first["receipt"] == second["receipt"]
    from server.store.audit import verify_chain
    assert verify_chain(db).ok
    assert len(list(db.query("SELECT seq FROM audit WHERE action = 'record.accept'"))) == 200


def test_the_primary_key_holds_even_when_the_code_check_misses_a_stored_id(client, db, monkeypatch):
    """Simulate a check-then-insert race: the lookup sees nothing, the insert must still not double."""
    dev = pair(client, db)
    batch = make_batch("S-001", 5)
    device = get_device(db, dev["device_id"])
    protocol = load_protocol()
    first = ingest(db, device, batch, protocol=protocol)
    real = records_store._Batch.earlier_outcome
    calls = {"n": 0}

    def blind_then_real(self, record_id, sha):
        calls["n"] += 1
        if calls["n"] <= len(batch):  # the racy first look finds nothing
            return None
        return real(self, record_id, sha)

    monkeypatch.setattr(records_store._Batch, "earlier_outcome", blind_then_real)
    second = ingest(db, device, batch, protocol=protocol)
    assert [r["status"] for r in second] == ["duplicate"] * 5
    assert [r["receipt"] for r in second] == [r["receipt"] for r in first]
    assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 5
    assert db.execute("SELECT COUNT(*) FROM record_versions").fetchone()[0] == 5
