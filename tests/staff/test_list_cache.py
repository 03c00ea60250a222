"""The participants list keeps each row's clock-free figures in ``list_summaries`` (issue 13), with the
data version they were made from, and makes them again whenever what they show could have changed:
new records, a correction, staff confirming day 1 (a flag reads it), an acknowledgement, a withdrawal.
The date-bound figures (statuses by date, study day, DLT window) follow the clock from the kept row
with nothing made again. Every row is compared field by field with a summary made from scratch."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.db import open_db
from server.staff import overview
from server.store.audit import Actor
from server.store import list_summaries as kept_rows
from server.store.day1 import confirm_day1
from server.store.participants import participant_by_id, withdraw
from server.store.records import ingest
from server.store.reviews import acknowledge_flag, participant_flags
from server.store.versions import correct_record
from shared.protocol import Protocol, load_protocol
from tests.evidence.devices import new_server_db, pair_in_process
from tests.support.records import make_dose, make_nasal

P = load_protocol()
CST = timezone(timedelta(hours=8))
START = datetime(2025, 3, 1, 9, 0, tzinfo=CST)
NOW = datetime(2025, 3, 20, 4, 0, tzinfo=timezone.utc)


def _states(db, now=NOW):
    """Acknowledged flags, as the review module tells the pages (without Flask)."""
    def states(pid):
        found = participant_flags(db, P, participant_by_id(db, pid), now=now)["flags"]
        return {i["key"]: {} for i in found if i["state"] == "acknowledged"}
    return states


def _figures(s) -> tuple:
    return (s.subject, s.study_day, s.today, s.doses, s.diary, s.dlt, s.participant["status"], s.timeline,
            s.open_count, s.open_high, s.reasons, s.rank, s.highest, s.last_sync,
            [(d.row["id"], d.silent_hours, d.missing_seqs) for d in s.devices], s.missing_entries)


def _same(db, pid, now=NOW):
    """The list's row of ``pid`` against a summary made from scratch at ``now``."""
    p = participant_by_id(db, pid)
    row = next(r for r in overview.list_rows(db, P, p["site_id"], now) if r.participant["id"] == pid)
    fresh = overview.summarize(db, P, p, now, states=_states(db, now)(pid))
    assert _figures(row) == _figures(fresh)
    return row


def _diaries(days, first_seq):
    return [make_nasal("S-001", day=(START + timedelta(days=d)).date(), entered_at=START + timedelta(days=d, hours=10),
                       device_seq=first_seq + i) for i, d in enumerate(days)]


def _counting(monkeypatch) -> list[int]:
    """Every kept row made from the records (at a write or by the list) appends its participant."""
    made: list[int] = []
    plain = kept_rows.make_body
    monkeypatch.setattr(kept_rows, "make_body", lambda db, protocol, p: made.append(p["id"]) or plain(db, protocol, p))
    return made


def test_list_rows_are_kept_and_made_again_when_the_data_moves(tmp_path, monkeypatch):
    path = tmp_path / "list.sqlite"
    db = new_server_db(path, first_dose="2025-03-01")
    device = pair_in_process(db)
    pid = device["participant_id"]
    made = _counting(monkeypatch)

    _same(db, pid)                               # no records yet: made when first shown
    assert made == [pid]
    sent = _diaries([0, 1, 2, 4], 1)            # day 4 (index 3) never sent
    ingest(db, device, sent, protocol=P, now=NOW)
    assert len(made) == 1                        # not in the upload's transaction
    _same(db, pid)
    _same(db, pid)
    assert len(made) == 2                        # made once by the list, then kept
    ingest(db, device, sent[:2], protocol=P, now=NOW)   # a retry: nothing new, nothing made
    _same(db, pid)
    assert len(made) == 2

    # other days: statuses, expected counts and the study day move with no row made again
    for days in (1, 3, 30, 200, 400, -25):       # -25: before day 1
        _same(db, pid, NOW + timedelta(days=days))
    assert len(made) == 2

    # dose 1 given a day late: day 1 moves and the day1_to_confirm flag is raised
    dose = make_dose("S-001", dose_number=1, planned=START.date(), entered_at=START + timedelta(days=1, hours=1),
                     device_seq=6)
    ingest(db, device, [dose], protocol=P, now=NOW)
    before = _same(db, pid)
    assert len(made) == 3
    # staff confirm day 1: only day1_confirmations changes, and the row must follow it (made when shown)
    confirm_day1(db, "S-001", (START + timedelta(days=1)).date().isoformat(), actor=Actor.cli(), now=NOW)
    after = _same(db, pid)
    assert len(made) == 4
    assert before.timeline != after.timeline

    # after an upload the serve process remakes the row in the background (server.jobs), not the list
    first = ingest(db, device, _diaries([6], 7), protocol=P, now=NOW)
    assert kept_rows.rebuild(db, P, NOW) == 1 and kept_rows.rebuild(db, P, NOW) == 0
    _same(db, pid)
    assert len(made) == 5
    correct_record(db, first[0]["id"], {"symptoms.headache": 3}, reason="typo", requested_by="participant",
                   actor=Actor.cli(), protocol=P, now=NOW)
    assert len(made) == 6                       # in the correction's transaction
    flagged = _same(db, pid)
    assert flagged.open_count                   # the corrected grade raises a flag the row shows
    assert len(made) == 6

    # an acknowledgement closes the flag in the row, made again in the acknowledgement's transaction
    key = overview.summarize(db, P, participant_by_id(db, pid), NOW).open_flags[0].key
    acknowledge_flag(db, P, pid, key, outcome="not_ae", actor=Actor.cli(), now=NOW)
    assert len(made) == 7
    acked = _same(db, pid)
    assert len(made) == 7
    assert acked.open_count == flagged.open_count - 1

    withdraw(db, "S-001", reason="moved away", actor=Actor.cli(), now=NOW)
    assert _same(db, pid).participant["status"] == "withdrawn"
    assert len(made) == 8
    db.close()

    # another process (a restart): the kept rows are read, none made again, still equal to fresh
    db = open_db(path)
    _same(db, pid, NOW + timedelta(days=2))
    assert len(made) == 8
    # derived, not a source: with every kept row gone they are made again, as with another build or
    # another protocol
    db.execute("DELETE FROM list_summaries")
    _same(db, pid)
    assert len(made) == 9
    monkeypatch.setattr(kept_rows, "LIST_FORMAT", kept_rows.LIST_FORMAT + 1)
    _same(db, pid)
    assert len(made) == 10
    overview.list_rows(db, load_protocol(), 1, NOW)   # the same content read again: the row is kept
    assert len(made) == 10
    overview.list_rows(db, Protocol({**P.data, "note": "another protocol"}, source="test"), 1, NOW)
    assert len(made) == 11
    db.close()


def test_rebuild_makes_the_missing_rows_and_a_kept_row_follows_devices(tmp_path, monkeypatch):
    db = new_server_db(tmp_path / "devices.sqlite", subjects=("S-001", "S-002"), first_dose="2025-03-01")
    device = pair_in_process(db)
    pid = device["participant_id"]
    ingest(db, device, _diaries([0, 1], 1), protocol=P, now=NOW)
    _same(db, pid)                                 # both rows made by the list and kept
    made = _counting(monkeypatch)
    second = db.execute("SELECT id FROM participants WHERE subject = 'S-002'").fetchone()[0]
    db.execute("DELETE FROM list_summaries WHERE participant_id = ?", [second])
    assert kept_rows.rebuild(db, P, NOW) == 1 and made == [second]   # S-002's is gone; S-001's is current
    assert kept_rows.rebuild(db, P, NOW) == 0
    pair_in_process(db, role="caregiver")          # a second device, never heard from
    ingest(db, device, _diaries([5], 9), protocol=P, now=NOW)   # device_seq 3..8 never arrived
    row = _same(db, pid, NOW + timedelta(days=10))  # silent by now
    assert made == [second, pid]                   # only the row whose participant uploaded
    assert len(row.devices) == 2 and row.silent_devices and row.missing_entries == 6
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


def test_uploads_wake_the_list_rows_job_with_the_alerts(tmp_path):
    from server import jobs
    from server.alerts.wake import set_waker, wake

    class Scheduler:
        running = True
        woken: list[str] = []

        def modify_job(self, job_id, next_run_time):
            self.woken.append(job_id)

    jobs._wake_alerts_with(Scheduler())
    try:
        wake()
    finally:
        set_waker(None)
    assert Scheduler.woken == [jobs.ALERTS_JOB, jobs.LIST_ROWS_JOB]

    path = tmp_path / "job.sqlite"
    db = new_server_db(path, subjects=("S-001", "S-002"), first_dose="2025-03-01")
    assert kept_rows.scheduled_rebuild({"DB": str(path), "PROTOCOL": "nct06598202"}) == 2
    assert db.execute("SELECT COUNT(*) FROM list_summaries").fetchone()[0] == 2
    db.close()


def test_a_list_that_cannot_keep_its_rows_still_shows_them(tmp_path, monkeypatch):
    import sqlite3

    db = new_server_db(tmp_path / "locked.sqlite", first_dose="2025-03-01")
    device = pair_in_process(db)
    ingest(db, device, _diaries([0, 1], 1), protocol=P, now=NOW)

    def locked(*a, **k):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(kept_rows, "store", locked)
    _same(db, device["participant_id"])
    assert db.execute("SELECT COUNT(*) FROM list_summaries").fetchone()[0] == 0
    db.close()



def test_a_correction_commits_even_when_its_list_row_cannot_be_made(tmp_path, monkeypatch):
    """The kept row is derived: a failure making it leaves it stale, never undoes the correction."""
    db = new_server_db(tmp_path / "derived.sqlite", first_dose="2025-03-01")
    device = pair_in_process(db)
    entries = _diaries([0, 1], 1)
    ingest(db, device, entries, protocol=P, now=NOW)
    pid = device["participant_id"]
    kept_rows.rebuild(db, P, NOW)
    plain = kept_rows.make_body

    def broken(*a, **k):
        raise RuntimeError("summary bug")

    monkeypatch.setattr(kept_rows, "make_body", broken)
    done = correct_record(db, entries[0]["id"], {"symptoms.headache": 3}, reason="typo", requested_by="participant",
                          actor=Actor.cli(), protocol=P, now=NOW)
    assert done["version"] == 2
    assert db.execute("SELECT MAX(version) FROM record_versions WHERE record_id = ?",
                      [entries[0]["id"]]).fetchone()[0] == 2
    monkeypatch.setattr(kept_rows, "make_body", plain)
    row = _same(db, pid)                 # the stale row is made again when the list is shown
    assert row.participant["id"] == pid
    db.close()
