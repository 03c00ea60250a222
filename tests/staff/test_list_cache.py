"""The participants list keeps each row's summary between requests (issue 13) and makes it again
whenever what it shows could have changed: new records, a correction, staff confirming day 1 (a flag
reads it), a withdrawal, another day. Compared field by field with a summary made from scratch."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.staff import overview
from server.store.audit import Actor
from server.store.day1 import confirm_day1
from server.store.participants import participant_by_id, withdraw
from server.store.records import ingest
from server.store.versions import correct_record
from shared.protocol import load_protocol
from tests.evidence.devices import new_server_db, pair_in_process
from tests.support.records import make_dose, make_nasal

P = load_protocol()
CST = timezone(timedelta(hours=8))
START = datetime(2025, 3, 1, 9, 0, tzinfo=CST)
NOW = datetime(2025, 3, 20, 4, 0, tzinfo=timezone.utc)


def _shown(s: overview.Summary) -> tuple:
    return (s.study_day, s.doses, s.diary, s.dlt, s.participant["status"], s.timeline,
            [(i.key, i.status, tuple(i.record_ids), i.late) for i in s.items],
            sorted((f.rule, f.record_id, f.key) for f in s.flags), s.reasons)


def _same(db, pid, now=NOW):
    p = participant_by_id(db, pid)
    cached = overview.summarize_for_list(db, P, p, now)
    fresh = overview.summarize(db, P, p, now)
    assert _shown(cached) == _shown(fresh)
    return cached


def test_list_summaries_are_kept_and_made_again_when_the_data_moves(tmp_path, monkeypatch):
    db = new_server_db(tmp_path / "list.sqlite", first_dose="2025-03-01")
    device = pair_in_process(db)
    pid = device["participant_id"]
    made = []
    plain = overview.summarize
    monkeypatch.setattr(overview, "summarize", lambda *a, **k: made.append(1) or plain(*a, **k))

    ingest(db, device, [make_nasal("S-001", day=(START + timedelta(days=d)).date(),
                                   entered_at=START + timedelta(days=d, hours=10), device_seq=d + 1)
                        for d in range(5)], protocol=P, now=NOW)
    _same(db, pid)
    assert len(made) == 2                       # made once for the cache (and once fresh, by _same)
    _same(db, pid)
    assert len(made) == 3                       # kept: only the fresh one was made

    # dose 1 given a day late: day 1 moves and the day1_to_confirm flag is raised
    dose = make_dose("S-001", dose_number=1, planned=START.date(), entered_at=START + timedelta(days=1, hours=1),
                     device_seq=6)
    ingest(db, device, [dose], protocol=P, now=NOW)
    before = _same(db, pid)
    assert len(made) == 5
    # staff confirm day 1: only day1_confirmations changes, and the row must follow it
    confirm_day1(db, "S-001", (START + timedelta(days=1)).date().isoformat(), actor=Actor.cli(), now=NOW)
    after = _same(db, pid)
    assert len(made) == 7
    assert sorted(f.rule for f in before.flags) != sorted(f.rule for f in after.flags) or \
        before.timeline != after.timeline

    first = ingest(db, device, [make_nasal("S-001", day=(START + timedelta(days=6)).date(),
                                           entered_at=START + timedelta(days=6, hours=10), device_seq=7)],
                   protocol=P, now=NOW)
    _same(db, pid)
    correct_record(db, first[0]["id"], {"symptoms.headache": 3}, reason="typo", requested_by="participant",
                   actor=Actor.cli(), protocol=P, now=NOW)
    _same(db, pid)
    count = len(made)
    _same(db, pid, NOW + timedelta(days=1))      # another day: statuses move
    assert len(made) == count + 2
    withdraw(db, "S-001", reason="moved away", actor=Actor.cli(), now=NOW)
    assert _same(db, pid).participant["status"] == "withdrawn"
    db.close()


def test_the_list_comes_in_pages_sorted_and_counted_over_everyone(client, monkeypatch):
    from server.staff import participants as view
    from tests.staff.conftest import HTML, login

    assert login(client).status_code == 303
    everyone = client.get("/staff/participants?sort=subject", headers=HTML).get_data(as_text=True)
    monkeypatch.setattr(view, "LIST_PER_PAGE", 1)
    first = client.get("/staff/participants?sort=subject", headers=HTML).get_data(as_text=True)
    second = client.get("/staff/participants?sort=subject&page=2", headers=HTML).get_data(as_text=True)
    assert "S-001" in first and "/staff/participants/S-002" not in first
    assert "/staff/participants/S-002" in second and 'href="/staff/participants/S-001"' not in second
    assert 'class="pager"' in first and "page=2" in first and "sort=subject" in first
    assert 'class="pager"' not in everyone
    caption = everyone.split("<caption>")[1].split("·")[0]
    assert caption in first and caption in second          # counted over all, not over the page
