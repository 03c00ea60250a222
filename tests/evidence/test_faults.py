"""Fault injection (SY-02..SY-07, anchors §c 1–3, 7): a real server process, the real client sync
engine and local stores, and a loopback proxy that delays, drops, cuts answers and duplicates requests.

Every scenario ends with :func:`check_agreement`: the server holds exactly the records the clients
created (ids and sha256), nothing twice, every outbox empty or holding only what the server refused,
every receipt the original one; then ``audit verify`` and ``PRAGMA integrity_check`` on the server.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.evidence.devices import (
    Device, SkewedClock, check_agreement, issue_codes, live_server, server_records, server_rows,
)
from tests.support.live_server import LiveServer
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.e2e
SYNC = "/api/v1/sync/records"
WITHDRAWN = "S-010"


def sync_only(method: str, path: str) -> bool:
    return method == "POST" and path == SYNC


def assert_server_sound(srv: LiveServer) -> None:
    assert srv.cli("audit", "verify")["ok"] is True
    assert server_rows(srv.db_path, "PRAGMA integrity_check")[0][0] == "ok"


def limit_batches(dev: Device, max_records: int) -> None:
    """The client splits by the limits it was told at pairing; smaller ones mean more batches."""
    pairing = dev.store.settings.pairing()
    pairing.limits = {**pairing.limits, "max_records": max_records}
    dev.store.settings.save_pairing(pairing)


def batch_ids(request) -> list[str]:
    return [r["id"] for r in json.loads(request.body)["records"]]


@pytest.fixture
def srv(tmp_path):
    with LiveServer(tmp_path / "server", subjects=("S-001", "S-002", "S-003")) as server:
        yield server


def test_each_fault_once_loses_nothing_and_doubles_nothing(srv, tmp_path):
    with FaultProxy(srv.port, seed=1, match=sync_only) as proxy:
        dev = Device(tmp_path, "laptop", proxy.url, srv.pairing_code("S-001")["code"], seed=1)
        limit_batches(dev, 10)
        dev.create(35)
        proxy.script("drop", "cut", "duplicate", "delay", "cut", "duplicate")
        outcomes = dev.sync_until_settled(time.monotonic() + 60)
        assert proxy.counts()["drop"] == 1 and proxy.counts()["cut"] == 2
        assert outcomes.count("offline") == 3 and outcomes[-1] == "ok"
        # a cut answer: the server stored the batch, the client never heard; the retry got "duplicate"
        # with the original receipts (checked in check_agreement)
        cut = [e for e in proxy.events if e.fault == "cut"]
        assert all(e.status == 200 and e.delivered < e.response_len for e in cut)
        statuses = {e.server_status for e in dev.store.outbox.entries()}
        assert statuses == {"accepted", "duplicate"}
        assert check_agreement(srv.db_path, [dev]) == {"stored": 35, "refused": 0, "created": 35}
        dev.close()
    assert_server_sound(srv)


def test_client_clocks_days_off_are_stored_as_sent_stamped_by_the_server_and_flagged(srv, tmp_path):
    offsets = {"behind": timedelta(days=-3, hours=-5), "right": timedelta(0), "ahead": timedelta(days=9)}
    devices = {name: Device(tmp_path, name, srv.url, srv.pairing_code(subject)["code"],
                            clock=SkewedClock(off))
               for (name, off), subject in zip(offsets.items(), ("S-001", "S-002", "S-003"))}
    before = datetime.now(timezone.utc)
    for dev in devices.values():
        dev.create(2)                      # before any sync: the device has no clock offset yet
        dev.sync_until_settled(time.monotonic() + 30)
        dev.create(2)                      # after a sync: it knows its offset and sends it
        dev.sync_until_settled(time.monotonic() + 30)
    after = datetime.now(timezone.utc)
    rows = {r["id"]: r for r in server_rows(srv.db_path, "SELECT * FROM records")}
    for name, dev in devices.items():
        learned = dev.store.settings.get("clock_offset_s")
        assert abs(learned - offsets[name].total_seconds()) < 60, (name, learned)
        for entry in dev.store.outbox.entries():
            row = rows[entry.id]
            received = datetime.fromisoformat(row["received_at"].replace("Z", "+00:00"))
            assert before - timedelta(seconds=1) <= received <= after + timedelta(seconds=1)
            assert row["entered_at"] == entry.envelope["entered_at"]      # kept as the device said
            flagged = "clock_drift" in json.loads(row["labels"])
            assert flagged == bool(row["drift_flag"]) == (name != "right"), (name, row["labels"])
    check_agreement(srv.db_path, list(devices.values()))
    for dev in devices.values():
        dev.close()
    assert_server_sound(srv)


@pytest.mark.slow
def test_server_killed_mid_batch_keeps_each_batch_whole_and_the_client_finishes(srv, tmp_path):
    # kill points spread over the server's handling of a 250-record batch (about 0.1 s here),
    # seeded order: before the transaction, inside it, after the commit and before the answer
    delays = [0.0, 0.03, 0.06, 0.09, 0.12, 0.18]
    random.Random(20240601).shuffle(delays)
    with FaultProxy(srv.port, seed=2, match=sync_only) as proxy:
        dev = Device(tmp_path, "laptop", proxy.url, srv.pairing_code("S-001")["code"], seed=2)
        dev.create(750)
        limit_batches(dev, 250)
        kills = []
        for round_no, delay in enumerate(delays):
            killed = threading.Event()

            def kill(event, delay=delay, killed=killed):
                time.sleep(delay)       # land somewhere inside the server's handling of the batch
                srv.kill()
                killed.set()

            proxy.once_forwarded(kill)
            result = dev.engine.run()
            assert killed.wait(30), "the kill hook never fired"
            assert result.outcome == "offline"       # the server died during this run
            in_flight = proxy.events[-1]
            ids = batch_ids(proxy.recorded[in_flight.seq - 1])
            srv.start()
            stored = set(server_records(srv.db_path))
            landed = sum(i in stored for i in ids)
            assert landed in (0, len(ids)), f"kill {round_no}: {landed} of {len(ids)} stored"
            kills.append((in_flight.status, landed))
            dev.create(250)                          # a full batch in flight at the next kill
        # most kills land before the server answered: the batch was in the middle of its transaction
        assert any(status is None for status, _ in kills), kills
        dev.sync_until_settled(time.monotonic() + 90)
        assert check_agreement(srv.db_path, [dev])["created"] == 750 + 250 * len(delays)
        dev.close()
    assert_server_sound(srv)


@pytest.mark.slow
def test_twenty_devices_at_once_through_faults_a_crash_and_a_withdrawal(tmp_path):
    subjects = tuple(f"S-{i:03d}" for i in range(1, 11))
    rng = random.Random(6)
    with live_server(tmp_path / "server", subjects) as srv, \
            FaultProxy(srv.port, seed=6, match=sync_only, max_faults=120, max_delay_s=0.15,
                       rates={"drop": 0.08, "cut": 0.08, "duplicate": 0.08, "delay": 0.12}) as proxy:
        wanted = [(subject, role) for subject in subjects for role in ("participant", "caregiver")]
        devices = []
        for (subject, role), code in zip(wanted, issue_codes(srv, wanted)):
            skew = timedelta(hours=rng.choice((0, 0, -1, 1)) * rng.randint(24, 96))
            if subject == WITHDRAWN:     # clocks not behind: its later entries come after withdrawal
                skew = abs(skew)
            devices.append(Device(tmp_path, f"{subject}-{role}", proxy.url, code,
                                  clock=SkewedClock(skew), seed=100 + len(devices)))
        deadline = time.monotonic() + 120
        errors: list[BaseException] = []
        withdrawn = threading.Event()
        start = threading.Barrier(len(devices) + 1, timeout=30)

        def life(dev: Device) -> None:
            try:
                start.wait()
                for round_no in range(3):
                    if round_no == 2 and dev.participant == WITHDRAWN:
                        assert withdrawn.wait(60)
                    dev.create(dev.rng.randint(4, 12))
                    dev.sync_until_settled(deadline)
                    if round_no == 1:
                        dev.restart()        # the person quits and starts the app again
            except BaseException as exc:     # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=life, args=(d,), name=d.name) for d in devices]
        for t in threads:
            t.start()
        start.wait()
        # crash the server in the middle of someone's batch once traffic is flowing
        while len(proxy.events) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = threading.Event()
        proxy.once_forwarded(lambda event: (srv.kill(), killed.set()))
        assert killed.wait(30)
        srv.start()
        srv.cli("participant", "withdraw", WITHDRAWN, "--reason", "moved away")
        withdrawn.set()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        assert not errors, errors
        assert not any(t.is_alive() for t in threads)

        counts = proxy.counts()
        assert all(counts[f] > 0 for f in ("drop", "cut", "duplicate", "delay")), counts
        before = check_agreement(srv.db_path, devices)
        assert before["created"] == sum(len(d.created()) for d in devices)
        # the withdrawn participant's last entries were refused, kept in quarantine and shown to the
        # person as needing the site's attention; nobody else's
        refused_here = {e.id for d in devices for e in d.store.outbox.entries() if e.state != "received"}
        assert before["refused"] == len(refused_here) > 0
        assert all(d.participant == WITHDRAWN for d in devices
                   for e in d.store.outbox.entries() if e.id in refused_here)

        # every batch any client ever sent, replayed straight to the server: nothing new is stored
        statuses = set()
        for request in proxy.recorded:
            status, body = proxy.replay(request)
            assert status == 200, body[:300]
            statuses |= {r["status"] for r in json.loads(body)["results"]}
        assert statuses <= {"duplicate", "rejected"}, statuses
        assert check_agreement(srv.db_path, devices) == before
        for dev in devices:
            dev.close()
        assert_server_sound(srv)
