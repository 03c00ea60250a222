"""A hypothesis state machine of the outbox and the sync protocol (regulatory.md §10, IA-06, SY-03/04).

The real pieces: the client's SQLite store and ``SyncEngine`` with ``HttpTransport`` (requests), and
the server's Flask app with its own SQLite file — joined in-process by a requests adapter that injects
the failures a field device meets: no network before sending, the answer lost after the server
stored, a 5xx from in front of the server (before or after it processed), a request delivered
twice, and an answer whose receipt hashes were altered on the way back. Hypothesis interleaves entries, syncs with failures and client restarts, and after every step
checks: nothing lost, nothing doubled, every receipt the server's own. At the end one fault-free sync
must bring the two sides into exact agreement.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from server import create_app
from server.db import open_db
from server.store.audit import Actor
from server.store.pairing import issue_pairing_code
from tests.evidence.devices import (
    Device, WsgiAdapter, check_agreement, new_server_db, server_records, server_rows, wsgi_session,
)

pytestmark = pytest.mark.slow
BASE_URL = "http://127.0.0.1:9"
_TEMPLATE: dict[str, Path] = {}


def template_db() -> Path:
    """A migrated server database with one site and one participant, made once per session."""
    if "path" not in _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="als-sm-template-")) / "server.sqlite"
        db = new_server_db(path)
        with db.ensure_autocommit_on():
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        _TEMPLATE["path"] = path
    return _TEMPLATE["path"]


class OutboxAndSync(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="als-sm-"))
        self.db_path = self.tmp / "server.sqlite"
        shutil.copyfile(template_db(), self.db_path)
        self.app = create_app({"DB": str(self.db_path), "TESTING": True})
        session, self.adapter = wsgi_session(self.app, BASE_URL)
        db = open_db(self.db_path)
        try:
            code = issue_pairing_code(db, "S-001", "participant", actor=Actor.cli())["code"]
        finally:
            db.close()
        self.dev = Device(self.tmp, "client", BASE_URL, code, session=session)
        pairing = self.dev.store.settings.pairing()
        pairing.limits = {**pairing.limits, "max_records": 3}   # several batches per sync
        self.dev.store.settings.save_pairing(pairing)
        self.ever_received: set[str] = set()

    @rule(n=st.integers(1, 4))
    def submit_entries(self, n: int) -> None:
        self.dev.create(n)

    @rule(faults=st.lists(st.sampled_from(WsgiAdapter.FAULTS), max_size=4))
    def sync(self, faults: list[str | None]) -> None:
        self.adapter.faults = list(faults)
        waiting = self.dev.waiting()
        result = self.dev.engine.run()
        used = len(faults) - len(self.adapter.faults)
        self.adapter.faults = []
        hit = [f for f in faults[:used] if f not in (None, "dup", "garbled")]
        if hit:
            expected = "offline" if hit[0] in ("down", "lost") else "server_error"
            assert result.outcome == expected, (faults, result)
        else:
            assert result.ok and result.waiting == 0, (faults, waiting, result)

    @rule()
    def restart_client(self) -> None:
        self.dev.restart()

    @invariant()
    def nothing_lost_nothing_doubled(self) -> None:
        created = self.dev.created()
        states = self.dev.states()
        stored = server_records(self.db_path)
        # the server holds only what the client made, byte for byte (by hash)
        assert set(stored) <= set(created) and all(stored[i] == created[i] for i in stored)
        # between syncs an entry is waiting or received: never half-sent, never refused here; only
        # an answer with a receipt that is not the entry's own puts it in "needs attention"
        assert set(states.values()) <= {"saved", "received", "needs_attention"}, states
        for entry in self.dev.store.outbox.entries(states=["needs_attention"]):
            assert entry.id in self.adapter.garbled_ids and entry.server_message == "receipt_mismatch"
        received = {i for i, s in states.items() if s == "received"}
        assert received <= set(stored), "received on the client but not on the server"
        assert self.ever_received <= received, "a received entry went back to waiting"
        self.ever_received = received
        rows = {r["id"]: (r["server_seq"], r["received_at"], r["sha256"])
                for r in server_rows(self.db_path, "SELECT id, server_seq, received_at, sha256 FROM records")}
        for entry in self.dev.store.outbox.entries(states=["received"]):
            r = entry.receipt
            assert (r["server_seq"], r["received_at"], r["sha256"]) == rows[entry.id]
        accepted = server_rows(self.db_path, "SELECT entity_id, COUNT(*) AS n FROM audit"
                                             " WHERE action = 'record.accept' GROUP BY entity_id")
        assert {r["entity_id"]: r["n"] for r in accepted} == {i: 1 for i in stored}

    def teardown(self) -> None:
        try:
            result = self.dev.engine.run()          # the network is back: eventual agreement
            assert result.ok and result.waiting == 0, result
            created = self.dev.created()
            if not self.adapter.garbled_ids:
                assert check_agreement(self.db_path, [self.dev]) == {
                    "stored": len(created), "refused": 0, "created": len(created)}
            else:   # the server has everything; the client flags what it could not verify
                assert server_records(self.db_path) == created
                doubtful = {e.id for e in self.dev.store.outbox.entries(states=["needs_attention"])}
                assert doubtful <= self.adapter.garbled_ids
                assert {i for i, s in self.dev.states().items() if s != "received"} == doubtful
        finally:
            self.dev.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


OutboxAndSync.TestCase.settings = settings(
    max_examples=60, stateful_step_count=20, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_outbox_and_sync_state_machine = OutboxAndSync.TestCase
