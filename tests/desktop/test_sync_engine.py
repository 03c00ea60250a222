"""The sync engine against an in-process fake of the contract: nothing lost, nothing doubled."""

import json

import pytest

from desktop.sync import SyncEngine, backoff_delay, split_batches
from desktop.sync.transport import encode_body

from tests.desktop.fake_server import FakeServer
from tests.desktop.helpers import fill_alsfrs, fill_dose, fill_nasal


def submit_many(entries, n):
    out = []
    for i in range(n):
        d = fill_nasal(entries, day=f"2026-03-{1 + i % 28:02d}")
        out.append(entries.submit(d, "en").entry)
    return out


@pytest.fixture
def server():
    return FakeServer()


@pytest.fixture
def engine(paired, server, clock):
    return SyncEngine(paired, server, clock, rng=lambda: 0.5)


def test_push_records_receipts_and_empties_waiting(engine, entries, paired, server):
    saved = [entries.submit(fill_alsfrs(entries), "en").entry,
             entries.submit(fill_dose(entries), "en").entry]
    result = engine.run()
    assert result.ok and result.sent == 2 and result.received == 2 and result.waiting == 0
    for e in saved:
        got = paired.outbox.get(e.id)
        assert got.state == "received"
        assert got.receipt == server.stored[e.id]["receipt"]
        assert got.receipt["sha256"] == e.sha256


def test_batches_respect_count_and_byte_limits(paired, entries, clock):
    server = FakeServer(max_records=3, max_bytes=4000)
    p = paired.settings.pairing()
    p.limits = {"max_records": 3, "max_bytes": 4000}
    paired.settings.save_pairing(p)
    submit_many(entries, 10)
    result = SyncEngine(paired, server, clock).run()
    assert result.ok and result.received == 10
    assert all(len(r) <= 3 for r in server.requests)
    assert len(server.stored) == 10


def test_split_batches_never_exceeds_bytes():
    envs = [{"id": str(i), "pad": "x" * (100 + i * 37)} for i in range(40)]
    batches = split_batches(envs, 500, 2000, "T")
    assert [e for b in batches for e in b] == envs
    for b in batches:
        assert len(encode_body({"records": b, "client_time": "T"})) <= 2000


def test_server_down_keeps_everything_and_backs_off(engine, entries, paired, server, clock):
    submit_many(entries, 3)
    server.faults = ["down"]
    result = engine.run()
    assert result.outcome == "offline" and result.waiting == 3
    assert {e.state for e in paired.outbox.entries()} == {"saved"}
    assert result.retry_in_s == pytest.approx(30.0)   # jitter pinned at ×1
    assert not engine.due()
    clock.advance(seconds=31)
    assert engine.due()
    assert engine.run().ok and len(server.stored) == 3


def test_backoff_grows_without_a_retry_cap():
    delays = [backoff_delay(n, rng=lambda: 0.5) for n in range(1, 40)]
    assert delays[:4] == [30, 60, 120, 240]
    assert max(delays) == 3600 and delays[-1] == 3600
    assert backoff_delay(3, rng=lambda: 0.0) == 60 and backoff_delay(3, rng=lambda: 0.999) < 180


def test_lost_acknowledgement_then_retry_stores_one_copy(engine, entries, paired, server):
    saved = submit_many(entries, 4)
    server.faults = ["lost_ack"]
    assert engine.run().outcome == "offline"
    assert len(server.stored) == 4 and paired.outbox.counts()["saved"] == 4
    result = engine.run()
    assert result.ok and result.received == 4
    assert len(server.stored) == 4
    assert all(paired.outbox.get(e.id).server_status == "duplicate" for e in saved)


def test_5xx_is_retried(engine, entries, paired, server):
    submit_many(entries, 2)
    server.faults = ["500"]
    assert engine.run().outcome == "server_error"
    assert engine.run().ok and paired.outbox.counts()["received"] == 2


def test_conflict_goes_to_attention_and_is_never_resent(engine, entries, paired, server):
    e = entries.submit(fill_alsfrs(entries), "en").entry
    server.stored[e.id] = {"sha256": "0" * 64, "receipt": {}, "envelope": {}}
    result = engine.run()
    assert result.attention == 1 and result.attention_ids == [e.id]
    got = paired.outbox.get(e.id)
    assert got.state == "needs_attention" and got.server_status == "conflict"
    assert got.server_message
    engine.run()
    assert sum(r.count(e.id) for r in server.requests) == 1


def test_rejected_record_is_kept_with_the_servers_words(engine, entries, paired, server):
    server.participant = "001-999"
    e = entries.submit(fill_nasal(entries), "en").entry
    engine.run()
    got = paired.outbox.get(e.id)
    assert got.state == "needs_attention" and got.server_errors[0]["rule"] == "device_binding"
    assert paired.outbox.waiting() == []


def test_receipt_with_another_hash_is_not_taken_as_received(engine, entries, paired, server, monkeypatch):
    e = entries.submit(fill_alsfrs(entries), "en").entry
    real = server._one

    def wrong(env):
        res = real(env)
        res["receipt"] = {**res["receipt"], "sha256": "f" * 64}
        return res
    monkeypatch.setattr(server, "_one", wrong)
    engine.run()
    assert paired.outbox.get(e.id).state == "needs_attention"


def test_revoked_device_stops_syncing_and_keeps_everything(engine, entries, paired, server, tmp_path):
    from desktop.sync.pairing import EXPORT_FORMAT, export_unsent
    saved = submit_many(entries, 2)
    server.faults = ["revoked"]
    assert engine.run().outcome == "revoked"
    assert engine.run().outcome == "revoked" and not engine.due()
    assert len(server.requests) == 0 and paired.outbox.counts()["saved"] == 2
    out = tmp_path / "unsent.json"
    assert export_unsent(paired, out) == 2
    doc = json.loads(out.read_text())
    assert doc["format"] == EXPORT_FORMAT and doc["participant"] == "001-001"
    assert [r["id"] for r in doc["records"]] == [e.id for e in saved]
    assert (out.stat().st_mode & 0o777) == 0o600
    assert paired.outbox.counts()["saved"] == 2


def test_clock_offset_is_learned_from_server_time(engine, entries, paired, server):
    server.server_time = "2026-03-10T01:20:00+00:00"   # device is 10 minutes ahead
    entries.submit(fill_alsfrs(entries), "en")
    engine.run()
    assert paired.settings.get("clock_offset_s") == 600.0
    later = entries.submit(fill_nasal(entries), "en").entry
    assert later.envelope["clock_offset_s"] == 600.0


def test_changes_update_protocol_and_timeline_and_keep_the_cursor(engine, paired, server):
    proto = dict(paired.settings.pairing().protocol, show_scores_to_participant=True)
    server.change_log = [{"kind": "protocol", "data": proto},
                         {"kind": "timeline", "data": {"first_dose_date": "2026-03-12", "tz": "Asia/Shanghai"}},
                         {"kind": "flag_acknowledged", "data": {"record_id": "abc", "rule": "r"}}]
    assert engine.run().pulled == 3
    assert paired.settings.pairing().protocol["show_scores_to_participant"] is True
    assert paired.settings.get("timeline")["first_dose_date"] == "2026-03-12"
    assert paired.settings.get("cursor") == 3
    assert paired.changes.for_record("abc")[0]["body"]["data"]["rule"] == "r"
    assert engine.run().pulled == 0


def test_a_request_costs_two_commits_and_a_partly_answered_one_keeps_the_rest_waiting(paired, entries, clock):
    """Issue 13: marking a batch sent is one transaction and storing what its answer taught (clock
    offset, outcomes, entries left unanswered) is one more, not three; nothing is committed for an
    empty list. The guarantee stays: an entry leaves "waiting" only with its own receipt."""
    server = FakeServer(max_records=4)
    p = paired.settings.pairing()
    p.limits = {"max_records": 4, "max_bytes": 2_097_152}
    paired.settings.save_pairing(p)
    saved = submit_many(entries, 8)
    statements: list[str] = []
    paired.db.conn.set_trace_callback(statements.append)
    dropped = saved[5].id
    real_push = server.push

    def push(records, client_time):      # the answer leaves one record out
        body = real_push(records, client_time)
        body["results"] = [r for r in body["results"] if r["id"] != dropped]
        return body

    server.push = push
    try:
        result = SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
    finally:
        paired.db.conn.set_trace_callback(None)
    assert len(server.requests) == 2 and result.received == 7
    commits_in_push = [s for s in statements if s.strip().upper() == "COMMIT"]
    # two requests: two commits each, then the run's own (settings, sync log) after the push
    assert len(commits_in_push) <= 2 * 2 + 4, statements
    assert paired.outbox.get(dropped).state == "saved"
    assert all(paired.outbox.get(e.id).state == "received" for e in saved if e.id != dropped)
