"""The local store: durable settings, file permissions, gap-free device_seq, all-or-nothing Submit."""

import json
import os
import stat

import pytest
from marshmallow import ValidationError

from shared.canonical import record_sha256

from desktop.store import Outcome, Store

from tests.desktop.helpers import fill_alsfrs, fill_dose, fill_nasal
from tests.shared.factories import alsfrs


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_is_wal_with_full_sync_and_readable_only_by_the_user(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert mode(store.data_dir) == 0o700
    assert mode(store.path) == 0o600
    store.settings.set("x", 1)
    assert mode(str(store.path) + "-wal") == 0o600


def test_existing_loose_permissions_are_tightened(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir(mode=0o755)
    (folder / "als-epro.sqlite").touch(mode=0o644)
    os.chmod(folder / "als-epro.sqlite", 0o644)
    s = Store(folder)
    assert mode(folder) == 0o700 and mode(s.path) == 0o600
    s.close()


def test_settings_survive_reopen(tmp_path):
    s = Store(tmp_path / "d")
    s.settings.set("language", "zh-CN")
    s.settings.set("offset", {"a": [1, 2]})
    s.close()
    s = Store(tmp_path / "d")
    assert s.settings.get("language") == "zh-CN"
    assert s.settings.get("offset") == {"a": [1, 2]}
    assert s.settings.get("missing", 7) == 7
    s.close()


def test_submit_assigns_gap_free_device_seq_and_removes_the_draft(entries, paired):
    drafts = [fill_alsfrs(entries), fill_nasal(entries), fill_dose(entries)]
    saved = [entries.submit(d, "en").entry for d in drafts]
    assert [e.device_seq for e in saved] == [1, 2, 3]
    assert [e.state for e in saved] == ["saved"] * 3
    assert paired.drafts.all() == []
    for e, d in zip(saved, drafts):
        assert e.id == d.id                      # the uuid made at creation
        assert e.sha256 == record_sha256(e.envelope)
        assert e.envelope["device_seq"] == e.device_seq


def test_submit_twice_keeps_one_entry(entries, paired):
    d = fill_alsfrs(entries)
    first = entries.submit(d, "en").entry
    second = entries.submit(d, "en").entry
    assert first.id == second.id and first.sha256 == second.sha256
    assert len(paired.outbox.entries()) == 1


def test_invalid_envelope_is_refused_and_nothing_is_stored(paired):
    env = alsfrs()
    del env["device_seq"]
    env["payload"]["items"]["3"] = 9
    with pytest.raises(ValidationError):
        paired.outbox.submit(env, None, "2026-03-10T01:00:00+00:00")
    assert paired.outbox.entries() == []
    # the failed attempt did not use up a device_seq
    good = alsfrs()
    del good["device_seq"]
    assert paired.outbox.submit(good, None, "now").device_seq == 1


def test_received_entries_never_change_again(entries, paired):
    e = entries.submit(fill_alsfrs(entries), "en").entry
    receipt = {"server_seq": 5, "received_at": "2026-03-10T01:31:00+00:00", "sha256": e.sha256}
    paired.outbox.record([Outcome(e.id, "received", "accepted", receipt)], "t1")
    paired.outbox.record([Outcome(e.id, "needs_attention", "conflict", None, "x")], "t2")
    paired.outbox.mark_sending([e.id], "t3")
    got = paired.outbox.get(e.id)
    assert got.state == "received" and got.receipt == receipt and got.server_status == "accepted"


def test_counts_and_waiting(entries, paired):
    a = entries.submit(fill_alsfrs(entries), "en").entry
    b = entries.submit(fill_nasal(entries), "en").entry
    paired.outbox.mark_sending([a.id], "t")
    assert [e.id for e in paired.outbox.waiting()] == [a.id, b.id]
    paired.outbox.mark_unsent([a.id], "t")
    assert paired.outbox.counts()["saved"] == 2
    raw = paired.db.execute("SELECT envelope FROM entries WHERE id = ?", [a.id]).fetchone()[0]
    assert json.loads(raw) == a.envelope
