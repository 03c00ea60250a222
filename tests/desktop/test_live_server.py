"""The sync engine against a real server process on 127.0.0.1 (``tests/support/live_server.py``):
server down, SIGKILL in the middle of a batch, a lost acknowledgement then a retry, a conflict, a
revoked device whose export is imported by staff — nothing lost, nothing doubled."""

from __future__ import annotations

import json
import sqlite3

import pytest

from shared.canonical import record_sha256

from desktop.clock import SystemClock
from desktop.services.entries import EntryService
from desktop.store import Store
from desktop.sync import HttpTransport, SyncEngine
from desktop.sync.credentials import TokenStore
from desktop.sync.pairing import export_unsent, pair_device

from tests.desktop.helpers import fill_alsfrs, fill_dose, fill_nasal
from tests.support.live_server import LiveServer
from tests.support.proxy import FaultProxy

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def srv():
    with LiveServer(subjects=("S-001", "S-002", "S-003")) as server:
        yield server


@pytest.fixture
def device(srv, tmp_path):
    made = []

    def make(subject: str = "S-001") -> "Device":
        made.append(Device(srv, tmp_path / f"d{len(made)}", subject))
        return made[-1]
    yield make
    for d in made:
        d.close()


class Device:
    """A client as the app builds it: real store, pairing over HTTP, token store, engine."""

    def __init__(self, srv: LiveServer, tmp_path, subject: str = "S-001", url: str | None = None):
        self.transports: list[HttpTransport] = []
        self.store = Store(tmp_path / "client")
        self.tokens = TokenStore(tmp_path / "client")
        self.clock = SystemClock()
        code = srv.pairing_code(subject, "caregiver")["code"]
        self.pairing = pair_device(self.store, self.tokens, self.clock, srv.url, code, "test pc")
        self.entries = EntryService(self.store, self.clock)
        self.engine = self.engine_for(url or srv.url)

    def engine_for(self, url: str) -> SyncEngine:
        transport = HttpTransport(url, self.tokens.load(self.pairing.device_id))
        self.transports.append(transport)
        return SyncEngine(self.store, transport, self.clock, rng=lambda: 0.0)

    def close(self) -> None:
        for t in self.transports:
            t.close()
        self.store.close()

    def make(self, n: int = 1) -> list:
        out = []
        for i in range(n):
            kind = i % 3
            d = (fill_alsfrs(self.entries) if kind == 0 else fill_nasal(self.entries) if kind == 1
                 else fill_dose(self.entries, n=1 + i // 3, at=self.clock.now().replace(microsecond=0).isoformat()))
            out.append(self.entries.submit(d, "zh-CN").entry)
        return out


def server_rows(srv: LiveServer, device_id: str) -> list[tuple[str, str, int]]:
    con = sqlite3.connect(srv.db_path)
    try:
        return con.execute("SELECT id, sha256, server_seq FROM records WHERE device_id = ? ORDER BY server_seq",
                           [device_id]).fetchall()
    finally:
        con.close()


def assert_nothing_lost_nothing_doubled(dev: Device, srv: LiveServer, made: list) -> None:
    rows = server_rows(srv, dev.pairing.device_id)
    assert sorted(r[0] for r in rows) == sorted(e.id for e in made)          # each exactly once
    stored = {r[0]: (r[1], r[2]) for r in rows}
    for e in made:
        got = dev.store.outbox.get(e.id)
        assert got.state == "received", (e.id, got.state, got.server_message)
        assert got.receipt["sha256"] == e.sha256 == stored[e.id][0]
        assert got.receipt["server_seq"] == stored[e.id][1]


def test_entries_made_while_the_server_is_down_arrive_when_it_is_back(srv, device):
    dev = device()
    srv.terminate()
    try:
        made = dev.make(3)                           # an ALSFRS-R, a nasal diary, a dose confirmation
        result = dev.engine.run()
        assert result.outcome == "offline" and result.waiting == 3
        assert dev.store.outbox.counts()["saved"] == 3
    finally:
        srv.start()
    dev.engine.store.settings.set("next_sync_at", None)
    result = dev.engine.run()
    assert result.ok and result.received == 3
    assert_nothing_lost_nothing_doubled(dev, srv, made)


def test_server_killed_in_the_middle_of_a_batch(srv, device):
    dev = device("S-002")
    p = dev.store.settings.pairing()
    p.limits = {"max_records": 10, "max_bytes": 2 * 1024 * 1024}
    dev.store.settings.save_pairing(p)
    made = dev.make(30)
    with FaultProxy(srv.port, match=lambda method, path: path == "/api/v1/sync/records") as proxy:
        engine = dev.engine_for(proxy.url)
        calls = []

        def kill_on_second(event):
            calls.append(event)
            if len(calls) == 2:
                srv.kill()
            else:
                proxy.once_forwarded(kill_on_second)
        proxy.once_forwarded(kill_on_second)
        result = engine.run()
        assert result.outcome in ("offline", "server_error")
        assert result.received == 10 and result.waiting == 20
        srv.start()
        # the killed batch was either stored whole or not at all (one transaction on the server)
        assert len(server_rows(srv, dev.pairing.device_id)) in (10, 20)
        result = engine.run()
        assert result.ok, result
    assert_nothing_lost_nothing_doubled(dev, srv, made)


def test_lost_acknowledgement_then_retry_gives_the_original_receipts(srv, device):
    dev = device()
    made = dev.make(4)
    with FaultProxy(srv.port, match=lambda method, path: path == "/api/v1/sync/records") as proxy:
        engine = dev.engine_for(proxy.url)
        proxy.script("cut")
        assert engine.run().outcome == "offline"
        assert len(server_rows(srv, dev.pairing.device_id)) == 4   # stored, but the client never heard
        assert dev.store.outbox.counts()["saved"] == 4
        result = engine.run()
    assert result.ok and result.received == 4
    assert {dev.store.outbox.get(e.id).server_status for e in made} == {"duplicate"}
    assert_nothing_lost_nothing_doubled(dev, srv, made)


def test_conflict_is_shown_never_resent_and_the_server_keeps_the_first(srv, device):
    dev = device()
    [entry] = dev.make(1)
    assert dev.engine.run().ok
    first = server_rows(srv, dev.pairing.device_id)
    # the same id comes back with other content (e.g. a restored old copy of the database)
    other = dict(entry.envelope, respondent="participant_assisted")
    assert record_sha256(other) != entry.sha256
    with dev.store.outbox.tx() as db:
        db.execute("UPDATE entries SET envelope = ?, sha256 = ?, state = 'saved' WHERE id = ?",
                   [json.dumps(other), record_sha256(other), entry.id])
    result = dev.engine.run()
    assert result.attention == 1
    got = dev.store.outbox.get(entry.id)
    assert got.state == "needs_attention" and got.server_status == "conflict"
    assert dev.engine.run().sent == 0                                # never re-sent
    assert server_rows(srv, dev.pairing.device_id) == first          # nothing overwritten or added


def test_revoked_device_keeps_everything_and_staff_import_the_export(srv, device, tmp_path):
    dev = device("S-003")
    sent = dev.make(2)
    assert dev.engine.run().ok
    srv.cli("device", "revoke", dev.pairing.device_id, "--reason", "lost tablet")
    unsent = dev.make(3)
    result = dev.engine.run()
    assert result.outcome == "revoked"
    assert dev.store.outbox.counts()["saved"] == 3
    out = tmp_path / "unsent.json"
    assert export_unsent(dev.store, out, exported_at="2026-03-10T09:00:00+08:00") == 3
    imported = srv.cli("import", str(out))
    assert imported["accepted"] == 3
    again = srv.cli("import", str(out))
    assert again["duplicate"] == 3 and again["accepted"] == 0
    ids = {r[0] for r in server_rows(srv, dev.pairing.device_id)}
    assert ids == {e.id for e in sent + unsent}
