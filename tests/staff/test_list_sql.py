"""The participants list is sorted, filtered, counted and paged by SQLite from the kept rows' columns
(issue 13: at ten thousand participants sorting every row in Python took 640 ms). Every page, at
every moment where a figure that moves with the clock moves (each instant kept in a row, a device
crossing the silence threshold, local midnights in two zones), is compared with the same page
computed row by row in Python: the same participants in the same order with the same figures, the
same counts and the same pager."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from server.staff import overview
from server.store import list_summaries as kept_rows
from server.store.audit import Actor
from server.store.day1 import confirm_day1
from server.store.devices import get_device, revoke_device
from server.store.participants import participant_by_id, withdraw
from server.store.records import ingest
from server.store.reviews import acknowledge_flag
from shared.protocol import load_protocol
from tests.evidence.devices import new_server_db, pair_in_process
from tests.staff.test_list_cache import _figures
from tests.support.records import make_dose, make_nasal

P = load_protocol()
CST = timezone(timedelta(hours=8))
START = datetime(2025, 3, 1, 9, 0, tzinfo=CST)
ENROLLED = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)
SUBJECTS = tuple(f"S-{i:03d}" for i in range(1, 9))


def _diaries(subject, days, first_seq, grades=None):
    return [make_nasal(subject, day=(START + timedelta(days=d)).date(), device_seq=first_seq + i,
                       entered_at=START + timedelta(days=d, hours=10), grades=(grades or {}).get(d))
            for i, d in enumerate(days)]


def _dose(subject, n, seq, *, day, given=True):
    return make_dose(subject, dose_number=n, planned=(START + timedelta(days=day)).date(), given=given,
                     entered_at=START + timedelta(days=day, minutes=30), device_seq=seq)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Eight participants in every state the list sorts by."""
    db = new_server_db(tmp_path_factory.mktemp("list") / "list.sqlite", subjects=SUBJECTS, first_dose="2025-03-01")
    # S-008 lives in another zone (its local midnight is not Beijing's)
    db.execute("UPDATE participants SET tz = 'America/New_York' WHERE subject = 'S-008'")
    dev = {s: pair_in_process(db, s) for s in SUBJECTS}
    now = ENROLLED + timedelta(days=1)
    send = lambda s, entries: ingest(db, dev[s], entries, protocol=P, now=now)  # noqa: E731
    # complete: all doses given, every diary
    send("S-001", [_dose("S-001", 1, 1, day=0), _dose("S-001", 2, 2, day=3), _dose("S-001", 3, 3, day=7),
                   _dose("S-001", 4, 4, day=10)] + _diaries("S-001", range(0, 30), 5))
    # diaries with gaps (completion falls under 80 % on some day), an epistaxis flag (medium)
    send("S-002", [_dose("S-002", 1, 1, day=0)] + _diaries("S-002", [0, 1, 2, 3, 5, 9, 14], 2, {9: {"epistaxis": 2}}))
    # a severe symptom (high), then acknowledged
    send("S-003", [_dose("S-003", 1, 1, day=0)] + _diaries("S-003", range(0, 8), 2, {3: {"headache": 3}}))
    # nothing sent: its device falls silent
    # a dose not given, a high flag left open
    send("S-005", [_dose("S-005", 1, 1, day=0), _dose("S-005", 2, 2, day=3, given=False)]
         + _diaries("S-005", range(0, 12), 3, {6: {"sinus_facial_pain": 3}}))
    # withdrawn (its device does not count as silent)
    send("S-006", _diaries("S-006", [0, 1], 1))
    withdraw(db, "S-006", reason="moved away", actor=Actor.cli(), now=now)
    # a revoked device and a caregiver's that keeps contact; day 1 confirmed by staff
    second = pair_in_process(db, "S-007", role="caregiver")
    ingest(db, second, [_dose("S-007", 1, 1, day=1)] + _diaries("S-007", range(1, 20), 2), protocol=P, now=now)
    revoke_device(db, dev["S-007"]["id"], reason="lost", actor=Actor.cli(), now=now)
    confirm_day1(db, "S-007", (START + timedelta(days=1)).date().isoformat(), actor=Actor.cli(), now=now)
    send("S-008", [_dose("S-008", 1, 1, day=0)] + _diaries("S-008", range(0, 25, 2), 2))
    # devices heard at different moments (silence starts at different instants)
    for i, s in enumerate(SUBJECTS):
        db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?",
                   [(ENROLLED + timedelta(days=i, hours=3 * i, milliseconds=7 * i)).isoformat(
                       timespec="milliseconds").replace("+00:00", "Z"), dev[s]["id"]])
    pid3 = participant_by_id(db, dev["S-003"]["participant_id"])
    key = overview.summarize(db, P, pid3, now).open_flags[0].key
    acknowledge_flag(db, P, pid3["id"], key, outcome="not_ae", actor=Actor.cli(), now=now)
    kept_rows.rebuild(db, P, now)
    yield db
    db.close()


def _moments(db) -> list[datetime]:
    """Moments around every instant a kept row or a device moves at, and a sweep of the month."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    instants = set()
    for row in db.execute("SELECT dlt_from, dlt_until, dose_due_list, diary_low FROM list_summaries"):
        instants.update(v for v in (row[0], row[1], row[3]) if v is not None)
        instants.update(json.loads(row[2]))
    out = {epoch + timedelta(microseconds=v + d) for v in instants for d in (-1, 0, 1)}
    hours = float(P.threshold("device_silent_hours"))
    for (heard,) in db.execute("SELECT COALESCE(last_seen_at, created_at) FROM devices"):
        at = datetime.fromisoformat(heard.replace("Z", "+00:00")) + timedelta(hours=hours)
        out.update(at + timedelta(microseconds=d) for d in (-1, 0, 1, 500, 1000))
    out.update(ENROLLED + timedelta(hours=7 * i) for i in range(0, 130))
    return sorted(out)


def _page(result):
    rows, counts, pager = result
    return [_figures(r) for r in rows], counts, pager


def test_every_page_at_every_moment_is_the_one_python_computes(study):
    moments = _moments(study)
    assert len(moments) > 150
    seen_ranks, seen_filters = set(), set()
    for now in moments:
        for sort in overview.SORTS:
            for only in overview.FILTERS:
                everyone = overview.python_page(study, P, 1, now, sort=sort, only=only, per_page=100)
                expected = _page(everyone)
                seen_ranks.update(r.rank for r in everyone[0])
                seen_filters.add((only, len(everyone[0])))
                pages = max(1, -(-len(everyone[0]) // 3))
                for page in range(1, pages + 2):           # and one past the last (clamped)
                    got = _page(overview.participants_page(study, P, 1, now, sort=sort, only=only, page=page,
                                                           per_page=3))
                    want = _page(overview.python_page(study, P, 1, now, sort=sort, only=only, page=page,
                                                      per_page=3))
                    assert got == want, (now, sort, only, page)
                assert expected[1] == want[1]
    # the study exercises every urgency group and both filters
    assert seen_ranks == set(range(len(overview.URGENCY)))
    assert {only for only, n in seen_filters if n} == set(overview.FILTERS)


def test_a_row_that_moved_is_made_again_before_the_page_is_sorted(study, monkeypatch):
    now = ENROLLED + timedelta(days=12)
    pid = study.execute("SELECT id FROM participants WHERE subject = 'S-004'").fetchone()[0]
    device = get_device(study, study.execute("SELECT id FROM devices WHERE participant_id = ?", [pid]).fetchone()[0])
    before = _page(overview.participants_page(study, P, 1, now, sort="flags"))
    # S-004 reports a severe symptom: its row is stale, made again, and it is among those with flags
    ingest(study, device, _diaries("S-004", [4], 1, {4: {"headache": 3}}), protocol=P, now=now)
    assert kept_rows.stale_ids(study, P, 1) == [pid]
    made = []
    plain = kept_rows.make_body
    monkeypatch.setattr(kept_rows, "make_body", lambda db, protocol, p: made.append(p["id"]) or plain(db, protocol, p))
    rows, counts, _ = overview.participants_page(study, P, 1, now, sort="flags")
    assert made == [pid] and {r.subject: r for r in rows}["S-004"].open_count
    assert counts["with_flags"] == before[1]["with_flags"] + 1
    assert _page((rows, counts, _)) == _page(overview.python_page(study, P, 1, now, sort="flags"))
    assert kept_rows.stale_ids(study, P, 1) == []


def test_rows_that_cannot_be_kept_are_sorted_in_python(tmp_path, monkeypatch):
    import sqlite3

    db = new_server_db(tmp_path / "locked.sqlite", subjects=("S-001", "S-002"), first_dose="2025-03-01")
    device = pair_in_process(db)
    ingest(db, device, _diaries("S-001", [0, 1], 1, {1: {"headache": 3}}), protocol=P, now=ENROLLED)

    def locked(*a, **k):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(kept_rows, "store", locked)
    answers = []
    plain = kept_rows.site_page
    monkeypatch.setattr(kept_rows, "site_page", lambda *a, **k: answers.append(plain(*a, **k)) or answers[-1])
    rows, counts, pager = overview.participants_page(db, P, 1, ENROLLED + timedelta(days=3))
    assert answers == [None]                          # SQLite cannot sort rows it does not hold
    assert [r.subject for r in rows] == ["S-001", "S-002"] and counts["with_flags"] == 1 and pager["total"] == 2
    db.close()
