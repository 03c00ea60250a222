"""Group commit (``server.db.grouped_write``): the jobs of threads that queue behind one writer are
committed together, one ``COMMIT`` for the group, each job in its own savepoint; a caller is answered
only once that ``COMMIT`` succeeded. Real SQLite files, real threads.

To get a group deterministically, a test holds the file's write lock (as a writer in the middle of a
transaction would) while the threads queue, watching the group's queue through a condition, then
lets go: the first of them leads and commits all of them at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from datetime import datetime, timedelta, timezone

import pytest

from server import create_app
from server import db as dbmod
from server.db import GroupAborted, grouped_write, open_db, write_tx
from server.store import audit
from server.store.audit import Actor, verify_chain, write_audit
from tests.server.helpers import pair, upload
from tests.support.records import make_batch

BOUND_S = 30          # the most any wait in this file may take (a failure, not a pace)


class _WatchedQueue(deque):
    """A group's queue that tells a condition each time a job joins it."""

    def __init__(self, cond: threading.Condition) -> None:
        super().__init__()
        self.cond = cond

    def append(self, item) -> None:
        super().append(item)
        with self.cond:
            self.cond.notify_all()


class Harness:
    """One database file, its watched group queue, and the statements every connection ran."""

    def __init__(self, path, monkeypatch) -> None:
        self.path = str(path)
        self.cond = threading.Condition()
        group = dbmod._Group()
        group.queue = _WatchedQueue(self.cond)
        monkeypatch.setitem(dbmod._groups, os.path.realpath(self.path), group)
        self.group = group
        self.statements: list[tuple[int, str]] = []
        self.lock = dbmod._write_lock(self.path)
        opened = dbmod.open_db

        def traced_open(*args, **kw):     # the app's connections too (server.db._thread_db)
            return self.traced(opened(*args, **kw))

        monkeypatch.setattr(dbmod, "open_db", traced_open)

    def traced(self, db):
        db.conn.set_trace_callback(lambda sql, c=id(db): self.statements.append((c, sql.strip())))
        return db

    def connect(self):
        return self.traced(open_db(self.path))

    def wait_queued(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.group.queue) >= n, timeout=BOUND_S), \
                f"{len(self.group.queue)} of {n} jobs queued"

    def commits(self) -> int:
        return sum(1 for _, sql in self.statements if sql.upper() == "COMMIT")


class Caller(threading.Thread):
    """A thread calling ``grouped_write`` once, with a connection of its own."""

    def __init__(self, harness: Harness, job, after=None) -> None:
        super().__init__(daemon=True)
        self.harness, self.job, self.after = harness, job, after
        self.result = self.error = self.seen_after = None

    def run(self) -> None:
        db = self.harness.connect()
        try:
            self.result = grouped_write(db, self.job)
        except BaseException as exc:  # noqa: BLE001 — handed to the test
            self.error = exc
        finally:
            if self.after is not None:
                self.seen_after = self.after(self)
            db.close()

    def finish(self):
        self.join(BOUND_S)
        assert not self.is_alive(), "caller did not return"
        return self


def _table(path) -> None:
    db = open_db(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, who INTEGER)")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (id INTEGER PRIMARY KEY,"
               " parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    db.close()


def _rows(path) -> list[str]:
    conn = sqlite3.connect(str(path))
    try:
        return sorted(r[0] for r in conn.execute("SELECT v FROM t"))
    finally:
        conn.close()


def _insert(value: str):
    def job(tx_db):
        tx_db.execute("INSERT INTO t (v, who) VALUES (?, ?)", [value, id(tx_db)])
        return value.upper(), id(tx_db), threading.get_ident()
    return job


def _queue_group(h: Harness, jobs: list, after=None) -> list[Caller]:
    """Start one caller per job while the test holds the write lock, each queued before the next
    starts (so the group runs them in this order); then let go and wait for every caller."""
    callers = []
    with h.lock:
        for n, job in enumerate(jobs, 1):
            caller = Caller(h, job, after)
            caller.start()
            callers.append(caller)
            h.wait_queued(n)
    return [c.finish() for c in callers]


def test_jobs_of_several_threads_commit_in_one_transaction(tmp_path, monkeypatch):
    path = tmp_path / "g.sqlite"
    _table(path)
    h = Harness(path, monkeypatch)
    callers = _queue_group(h, [_insert(f"v{i}") for i in range(6)])
    assert [c.error for c in callers] == [None] * 6
    assert [c.result[0] for c in callers] == [f"V{i}" for i in range(6)]
    assert h.commits() == 1                                   # six callers, one COMMIT (one fsync)
    assert len({c.result[1] for c in callers}) == 1           # all on the leader's connection
    assert len({c.result[2] for c in callers}) == 1           # and the leader's thread
    assert _rows(path) == [f"v{i}" for i in range(6)]


def test_a_failing_job_is_rolled_back_alone_and_only_its_caller_gets_the_error(tmp_path, monkeypatch):
    path = tmp_path / "g.sqlite"
    _table(path)
    h = Harness(path, monkeypatch)

    class Mine(Exception):
        pass

    def failing(tx_db):
        tx_db.execute("INSERT INTO t (v) VALUES ('bad')")
        raise Mine("only mine")

    def duplicate(tx_db):      # a statement error of SQLite's own (UNIQUE): also only this caller's
        tx_db.execute("INSERT INTO t (v) VALUES ('a')")

    callers = _queue_group(h, [_insert("a"), failing, _insert("b"), duplicate, _insert("c")])
    a, bad, b, dup, c = callers
    assert isinstance(bad.error, Mine) and str(bad.error) == "only mine"
    assert isinstance(dup.error, sqlite3.IntegrityError)
    assert [x.error for x in (a, b, c)] == [None] * 3
    assert [x.result[0] for x in (a, b, c)] == ["A", "B", "C"]
    assert h.commits() == 1
    assert _rows(path) == ["a", "b", "c"]


def test_a_failing_commit_reaches_every_caller_and_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "g.sqlite"
    _table(path)
    h = Harness(path, monkeypatch)

    def orphan(tx_db):         # a deferred foreign key: the statement passes, the COMMIT fails
        tx_db.execute("INSERT INTO child (parent_id) VALUES (42)")
        return "orphan"

    callers = _queue_group(h, [_insert("a"), orphan, _insert("b")])
    assert all(isinstance(c.error, sqlite3.IntegrityError) for c in callers), [c.error for c in callers]
    assert all(c.result is None for c in callers)
    assert h.commits() == 1                                   # tried once, failed
    assert _rows(path) == []
    conn = sqlite3.connect(str(path))
    assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    conn.close()
    # the leader's connection is usable afterwards: the next group commits
    again = _queue_group(h, [_insert("a"), _insert("b")])
    assert [c.error for c in again] == [None, None]
    assert _rows(path) == ["a", "b"]


def test_a_caller_is_answered_only_after_the_commit(tmp_path, monkeypatch):
    """When ``grouped_write`` returns, another connection sees the caller's row. The COMMIT is held
    back (up to a second) until a caller has returned, so an answer given before the COMMIT would
    be seen: in the right order no caller returns first and the wait runs out."""
    path = tmp_path / "g.sqlite"
    _table(path)
    h = Harness(path, monkeypatch)
    returned = threading.Event()

    def see(caller: Caller):
        returned.set()
        return caller.result is not None and caller.result[0].lower() in _rows(path)

    def connect():
        db = open_db(h.path)

        def trace(sql: str) -> None:
            h.statements.append((id(db), sql.strip()))
            if sql.strip().upper() == "COMMIT":
                returned.wait(1.0)

        db.conn.set_trace_callback(trace)
        return db

    monkeypatch.setattr(h, "connect", connect)
    callers = _queue_group(h, [_insert(f"v{i}") for i in range(4)], after=see)
    assert [c.error for c in callers] == [None] * 4
    assert [c.seen_after for c in callers] == [True] * 4


def test_a_database_in_memory_is_never_grouped(monkeypatch):
    monkeypatch.setattr(dbmod, "_groups", {})
    db = open_db(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, who INTEGER)")
    value, conn_id, thread = grouped_write(db, _insert("m"))
    assert (value, conn_id, thread) == ("M", id(db), threading.get_ident())
    assert dbmod._groups == {}
    assert not db.conn.in_transaction and db.execute("SELECT v FROM t").fetchall() == [("m",)]
    with pytest.raises(ZeroDivisionError):
        grouped_write(db, lambda tx_db: (tx_db.execute("INSERT INTO t (v) VALUES ('x')"), 1 / 0))
    assert db.execute("SELECT v FROM t").fetchall() == [("m",)]
    assert dbmod._groups == {}


def test_inside_an_open_transaction_it_is_a_savepoint_of_it(tmp_path, monkeypatch):
    path = tmp_path / "g.sqlite"
    _table(path)
    h = Harness(path, monkeypatch)
    db = h.connect()

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        with write_tx(db):
            assert grouped_write(db, _insert("inner"))[1] == id(db)
            assert len(h.group.queue) == 0 and h.group.leader is None    # not queued
            raise Undo
    assert _rows(path) == []                                  # went with the outer transaction
    with write_tx(db):
        with pytest.raises(ZeroDivisionError):
            grouped_write(db, lambda tx_db: (tx_db.execute("INSERT INTO t (v) VALUES ('x')"), 1 / 0))
        grouped_write(db, _insert("kept"))
    assert _rows(path) == ["kept"]
    db.close()


def test_a_job_that_ends_the_transaction_fails_the_whole_group(tmp_path, monkeypatch):
    """Nothing may be answered as stored when the transaction it was in is gone."""
    path = tmp_path / "g.sqlite"
    _table(path)
    h = Harness(path, monkeypatch)

    def rollback(tx_db):
        tx_db.conn.execute("ROLLBACK")

    callers = _queue_group(h, [_insert("a"), rollback, _insert("b")])
    assert all(isinstance(c.error, GroupAborted) for c in callers), [c.error for c in callers]
    assert _rows(path) == []


# --- the audit chain and the upload endpoint -------------------------------------------------------

KEY = "k" * 40


def test_an_audit_epoch_rolled_back_with_its_savepoint_is_written_again(tmp_path, monkeypatch, db_path):
    """A job writes the key's epoch row, more audit rows (the connection remembers the epoch), then
    fails: its savepoint goes, epoch row too. The next job of the group must write the epoch again,
    or its keyed rows would follow an un-keyed chain."""
    monkeypatch.setattr(audit, "_keys", dict(audit._keys))
    audit.configure_keys(KEY)
    h = Harness(db_path, monkeypatch)

    def audited_then_failing(tx_db):
        write_audit(tx_db, Actor.cli(), "test.first", entity="test", entity_id=1)
        write_audit(tx_db, Actor.cli(), "test.second", entity="test", entity_id=2)
        raise RuntimeError("undo")

    def audited(tx_db):
        return write_audit(tx_db, Actor.cli(), "test.third", entity="test", entity_id=3)["seq"]

    callers = _queue_group(h, [audited_then_failing, audited, audited])
    assert isinstance(callers[0].error, RuntimeError)
    assert [c.error for c in callers[1:]] == [None, None]
    db = open_db(db_path)
    try:
        assert verify_chain(db).ok, verify_chain(db).as_dict()
        actions = [r[0] for r in db.execute("SELECT action FROM audit WHERE seq >= ? - 1 ORDER BY seq",
                                            [callers[1].result])]
        assert actions == [audit.KEY_EPOCH_ACTION, "test.third", "test.third"]
    finally:
        db.close()


def _request_group(h: Harness, app, token: str, bodies: list[list]) -> list:
    """Upload each batch from a thread of its own (its own test client and connection) while the
    test holds the write lock; every request queued, then one group."""
    answers: list = [None] * len(bodies)
    client_time = datetime.now(timezone.utc)

    def send(i: int) -> None:
        answers[i] = upload(app.test_client(), token, bodies[i], client_time)

    threads = []
    with h.lock:
        for i in range(len(bodies)):
            thread = threading.Thread(target=send, args=(i,), daemon=True)
            thread.start()
            threads.append(thread)
        h.wait_queued(len(bodies))
    for thread in threads:
        thread.join(BOUND_S)
        assert not thread.is_alive(), "an upload did not return"
    return answers


SUBJECTS = ["S-001", "S-001", "S-002", "S-002", "S-101", "S-101"]   # two devices each


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
def test_concurrent_uploads_of_several_devices_commit_together_and_the_chain_verifies(
        client, db, db_path, monkeypatch, keyed):
    monkeypatch.setattr(audit, "_keys", dict(audit._keys))
    audit.configure_keys(KEY if keyed else None)
    devices = [pair(client, db, subject, name=f"d{i}") for i, subject in enumerate(SUBJECTS)]
    app = create_app({"DB": str(db_path), "TESTING": True, **({"AUDIT_KEY": KEY} if keyed else {})})
    h = Harness(db_path, monkeypatch)
    start = datetime(2025, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=8)))
    client_time = datetime.now(timezone.utc)
    answers: list = [None] * len(devices)

    def send(i: int) -> None:
        batch = make_batch(SUBJECTS[i], 3, start=start + timedelta(minutes=i), first_seq=1)
        answers[i] = upload(app.test_client(), devices[i]["token"], batch, client_time)

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(devices))]
    with h.lock:
        for thread in threads:
            thread.start()
        h.wait_queued(len(devices))
    for thread in threads:
        thread.join(BOUND_S)
        assert not thread.is_alive(), "an upload did not return"
    for resp in answers:
        assert resp.status_code == 200, resp.get_json()
        assert [r["status"] for r in resp.get_json()["results"]] == ["accepted"] * 3
    assert h.commits() == 1                                   # six uploads, one COMMIT
    seqs = sorted(r["receipt"]["server_seq"] for resp in answers for r in resp.get_json()["results"])
    assert seqs == list(range(seqs[0], seqs[0] + 18))
    report = verify_chain(db)
    assert report.ok, report.as_dict()
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action = 'record.accept'").fetchone()[0] == 18
    for i, resp in enumerate(answers):                        # each answer is its own device's
        stored = {r[0] for r in db.execute("SELECT id FROM records WHERE device_id = ?",
                                           [devices[i]["device_id"]])}
        assert {r["id"] for r in resp.get_json()["results"]} == stored


def test_the_same_envelopes_uploaded_at_once_from_several_threads_are_stored_once(
        client, db, db_path, monkeypatch):
    dev = pair(client, db)
    app = create_app({"DB": str(db_path), "TESTING": True})
    h = Harness(db_path, monkeypatch)
    batch = make_batch("S-001", 5, first_seq=1)
    answers = _request_group(h, app, dev["token"], [batch] * 5)
    bodies = [resp.get_json() for resp in answers]
    assert all(resp.status_code == 200 for resp in answers), bodies
    statuses = sorted(tuple(r["status"] for r in b["results"]) for b in bodies)
    assert statuses == [("accepted",) * 5] + [("duplicate",) * 5] * 4
    for i in range(5):
        receipts = {tuple(sorted(b["results"][i]["receipt"].items())) for b in bodies}
        assert len(receipts) == 1                              # every copy has the first one's receipt
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM records").fetchone() == (5, 5)
    assert db.execute("SELECT COUNT(*) FROM record_versions").fetchone()[0] == 5
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action = 'record.accept'").fetchone()[0] == 5
    assert verify_chain(db).ok
