"""Issue 13: the engine sends the envelope texts it holds and overlaps its bookkeeping with the
server's work — one request in flight, in strict order, every guarantee of the serial engine kept."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from desktop.clock import local_iso
from desktop.services.entries import EntryService
from desktop.store import Store
from desktop.store.cipher import KEY_BYTES
from desktop.store.outbox import Waiting
from desktop.sync import SyncEngine
from desktop.sync.engine import SIZING_CLIENT_TIME, split_texts
from desktop.sync.transport import RequestError, encode_body, encode_raw_body

from tests.desktop.fake_server import FakeServer
from tests.desktop.helpers import fill_nasal, pair

WAIT_S = 10.0   # the bound on every wait for the other thread; a passing run never waits that long


class RawFake(FakeServer):
    """The fake server behind a transport that has ``push_raw``: it sees the exact bytes sent."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.bodies: list[bytes] = []
        self.threads: list[threading.Thread] = []

    def push_raw(self, record_texts, client_time):
        self.threads.append(threading.current_thread())
        body = encode_raw_body(record_texts, client_time)
        self.bodies.append(body)
        if len(body) > self.max_bytes:
            raise RequestError("too large", 413, "request.too_large")
        if self.faults and self.faults[0] == "400":
            self.faults.pop(0)
            raise RequestError("bad", 400, "request.invalid")
        return self.push(json.loads(body)["records"], client_time)


def submit_many(entries, n):
    """``n`` nasal diaries, one a day back from today (the service refuses future days)."""
    today = entries.clock.now().date()
    return [entries.submit(fill_nasal(entries, day=(today - timedelta(days=i)).isoformat()), "en").entry
            for i in range(n)]


def limit(store, max_records: int, max_bytes: int = 2_097_152) -> None:
    p = store.settings.pairing()
    p.limits = {"max_records": max_records, "max_bytes": max_bytes}
    store.settings.save_pairing(p)


def states(store, entries) -> list[str]:
    return [store.outbox.get(e.id).state for e in entries]


def push_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sync-push")]


# --- the body ---------------------------------------------------------------------------------------
def test_raw_body_is_the_same_json_as_the_parsed_envelopes(paired, entries):
    submit_many(entries, 3)
    odd = {"id": "x", "note": "呼吸 \u2028 \"quoted\" \\ é", "n": 1.5e-7, "big": 10 ** 20, "none": None}
    waiting = paired.outbox.waiting_texts() + [Waiting("x", "0" * 64, 99, json.dumps(odd, ensure_ascii=False).encode())]
    assert all(isinstance(w.text, bytes) for w in waiting)
    assert [w.envelope for w in waiting[:3]] == [e.envelope for e in paired.outbox.waiting()]
    ct = "2026-03-10T09:30:00+08:00"
    raw = encode_raw_body([w.text for w in waiting], ct)
    assert json.loads(raw) == json.loads(encode_body({"records": [w.envelope for w in waiting], "client_time": ct}))
    assert encode_raw_body([], ct) == encode_body({"records": [], "client_time": ct})


@pytest.mark.parametrize("key", [None, bytes(range(KEY_BYTES))], ids=["plain", "sqlcipher"])
def test_waiting_texts_are_the_waiting_entries_in_order(tmp_path, clock, key):
    store = Store(tmp_path / "data", key)
    try:
        pair(store)
        saved = submit_many(EntryService(store, clock), 4)
        with store.outbox.tx() as db:
            db.execute("UPDATE entries SET state = 'received' WHERE id = ?", [saved[1].id])
            db.execute("UPDATE entries SET state = 'sent' WHERE id = ?", [saved[2].id])
        got = store.outbox.waiting_texts("dev-1")
        assert [(w.id, w.sha256, w.device_seq, w.envelope) for w in got] == \
            [(e.id, e.sha256, e.device_seq, e.envelope) for e in store.outbox.waiting("dev-1")]
        assert [w.id for w in got] == [saved[0].id, saved[2].id, saved[3].id]
        raw = store.db.execute("SELECT envelope FROM entries WHERE id = ?", [saved[0].id]).fetchone()[0]
        assert got[0].text == raw.encode("utf-8")                     # the stored text, byte for byte
        assert store.outbox.waiting_texts("another-device") == []
    finally:
        store.close()


# --- sizing -----------------------------------------------------------------------------------------
def test_batches_sized_from_the_texts_never_exceed_max_bytes_and_an_oversize_one_travels_alone():
    texts = [json.dumps({"id": str(i), "pad": "é" * (20 + i * 29 % 300)}, ensure_ascii=False).encode()
             for i in range(60)]
    texts[17] = json.dumps({"id": "big", "pad": "x" * 3000}).encode()
    items = [Waiting(str(i), "", i, t) for i, t in enumerate(texts)]
    # any time the engine can send: an offset with seconds is the longest local_iso gives
    times = ("2026-03-10T09:30:00+08:00", "1900-01-01T00:00:00+08:05:43")
    for max_bytes in range(700, 2700, 3):   # many limits, so some batch ends right at one
        batches = split_texts(items, 7, max_bytes)
        assert [w for b in batches for w in b] == items
        assert [items[17]] in batches
        for i, b in enumerate(batches):
            assert len(b) <= 7
            if len(b) > 1:     # a lone record may be over the limit: it travels alone, the server says 413
                assert all(len(encode_raw_body([w.text for w in b], ct)) <= max_bytes for ct in times)
            if i + 1 < len(batches) and len(b) < 7:
                # exact, not merely safe: one more record would have gone over the limit
                more = [w.text for w in b + batches[i + 1][:1]]
                assert len(encode_raw_body(more, SIZING_CLIENT_TIME)) > max_bytes


# --- the pipeline -----------------------------------------------------------------------------------
def test_next_request_leaves_after_the_answer_and_receipts_are_recorded_while_it_travels(paired, entries, clock):
    """Order on the wire: request i+1 starts only after answer i came back and its rotated token was
    adopted; answer i's receipts are recorded while request i+1 is in flight, and batch i+1 is
    marked sent then. ``client_time`` is read when each request actually leaves."""
    limit(paired, 3)
    saved = submit_many(entries, 9)
    batches = [saved[i:i + 3] for i in range(0, 9, 3)]
    server = RawFake()
    server.token = "tok-0"
    events: list[tuple] = []
    started = {i: threading.Event() for i in range(3)}
    recorded = {i: threading.Event() for i in range(3)}
    real_record = paired.outbox.record

    def record(outcomes, now):
        i = next(i for i, b in enumerate(batches) if b[0].id == outcomes[0].id)
        if i + 1 < len(batches):   # a serial engine would send request i+1 only after this
            assert started[i + 1].wait(WAIT_S), "request i+1 was not in flight while receipts i were recorded"
        real_record(outcomes, now)
        events.append(("record", i))
        recorded[i].set()

    paired.outbox.record = record
    real_push_raw = server.push_raw

    def push_raw(texts, client_time):
        i = sum(1 for e in events if e[0] == "start")
        events.append(("start", i))
        started[i].set()
        assert server.token == f"tok-{i}"                         # the token answer i-1 gave
        assert client_time == local_iso(clock.now())
        if i > 0:
            # while this request travels, the engine records answer i-1 and marks batch i sent
            assert recorded[i - 1].wait(WAIT_S)
            assert states(paired, batches[i - 1]) == ["received"] * 3
            assert states(paired, batches[i]) == ["sent"] * 3
        body = real_push_raw(texts, client_time)
        clock.advance(seconds=61)                                 # the next one leaves later
        events.append(("end", i))
        return dict(body, device_token=f"tok-{i + 1}")

    server.push_raw = push_raw
    tokens = MemoryTokens()
    engine = SyncEngine(paired, server, clock, rng=lambda: 0.5, tokens=tokens)
    result = engine.run()
    assert result.ok and result.received == 9 and result.sent == 9
    assert events == [("start", 0), ("end", 0), ("start", 1), ("record", 0), ("end", 1),
                      ("start", 2), ("record", 1), ("end", 2), ("record", 2)]
    assert server.requests == [[e.id for e in b] for b in batches]
    assert tokens.saved == ["tok-1", "tok-2", "tok-3"] and server.token == "tok-3"
    assert all(t is not threading.current_thread() for t in server.threads)
    assert push_threads() == []
    assert all(paired.outbox.get(e.id).attempts == 1 for e in saved)


class MemoryTokens:
    def __init__(self):
        self.saved: list[str] = []

    def save(self, device_id, token):
        self.saved.append(token)

    def load(self, device_id):
        return self.saved[-1] if self.saved else None


@pytest.mark.parametrize("fault,outcome", [("down", "offline"), ("lost_ack", "offline"),
                                           ("500", "server_error"), ("revoked", "revoked"),
                                           ("400", "error")])
def test_a_failure_on_batch_k_keeps_earlier_batches_received_and_the_rest_waiting(
        paired, entries, clock, fault, outcome):
    limit(paired, 3)
    saved = submit_many(entries, 12)
    batches = [saved[i:i + 3] for i in range(0, 12, 3)]
    server = RawFake()
    server.faults = [None, None, fault]                       # batch 2 of 4 fails
    result = SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
    assert result.outcome == outcome and result.received == 6 and result.waiting == 6
    assert states(paired, batches[0] + batches[1]) == ["received"] * 6
    assert states(paired, batches[2] + batches[3]) == ["saved"] * 6   # none left "sent"
    assert [e.id for e in batches[3]] not in server.requests          # nothing after the failure
    ids = [i for r in server.requests for i in r]
    assert len(ids) == len(set(ids))                                  # nothing sent twice
    stored = {e.id for b in batches[:2] for e in b} | ({e.id for e in batches[2]} if fault == "lost_ack" else set())
    assert set(server.stored) == stored
    assert push_threads() == []
    if outcome in ("offline", "server_error", "error"):
        clock.advance(hours=2)
        again = SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
        assert again.ok and again.received == 6
        assert len(server.stored) == 12 and paired.outbox.counts()["received"] == 12


def test_413_halves_the_batch_and_retries_it_first_in_order(paired, entries, clock):
    saved = submit_many(entries, 8)
    one = len(paired.outbox.waiting_texts()[0].text)
    limit(paired, 8)
    server = RawFake(max_bytes=len(encode_raw_body([b"x" * one] * 3, SIZING_CLIENT_TIME)) + 40)
    result = SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
    assert result.ok and result.received == 8
    assert [len(r) for r in server.requests] == [2, 2, 2, 2]          # 8 → 4+4 → 2+2, 2+2
    assert [i for r in server.requests for i in r] == [e.id for e in saved]
    assert len(server.bodies) == 7                                    # 8, 4, 2, 2, 4, 2, 2


def test_an_oversize_lone_record_is_an_error_and_keeps_it_waiting(paired, entries, clock):
    [entry] = submit_many(entries, 1)
    server = RawFake(max_bytes=200)
    result = SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
    assert result.outcome == "error" and result.message == "request.too_large"
    assert states(paired, [entry]) == ["saved"] and len(server.bodies) == 1


def test_an_exception_in_the_worker_surfaces_in_run_and_no_thread_is_left(paired, entries, clock):
    saved = submit_many(entries, 4)
    limit(paired, 2)
    server = RawFake()
    calls = []

    def broken(texts, client_time):
        calls.append(threading.current_thread())
        if len(calls) == 2:
            raise ZeroDivisionError("a bug in the transport")
        return RawFake.push_raw(server, texts, client_time)

    server.push_raw = broken
    with pytest.raises(ZeroDivisionError):
        SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
    assert calls[0].name.startswith("sync-push") and calls[0] is not threading.current_thread()
    assert push_threads() == [] and not calls[0].is_alive()
    assert states(paired, saved[:2]) == ["received"] * 2
    assert paired.outbox.counts()["received"] == 2 and len(server.stored) == 2


def test_a_transport_without_push_raw_gets_parsed_records(paired, entries, clock):
    saved = submit_many(entries, 5)
    limit(paired, 2)
    server = FakeServer(max_records=2)
    assert not hasattr(server, "push_raw")
    result = SyncEngine(paired, server, clock, rng=lambda: 0.5).run()
    assert result.ok and result.received == 5
    assert server.requests == [[e.id for e in saved[i:i + 2]] for i in range(0, 5, 2)]
    assert all(server.stored[e.id]["envelope"] == e.envelope for e in saved)
    assert push_threads() == []
