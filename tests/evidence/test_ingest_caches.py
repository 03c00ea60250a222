"""The ingest speed-ups found with the benchmarks change nothing a client or the site sees.

``server.store.records`` keeps each participant's schedule matching between uploads and caches
schedule entries by ``(id, sha256)``; it validates before taking the write lock, and the server keeps
one SQLite connection per worker thread. Hypothesis sends the same random batches (in and out of
order, doses that move study day 1, repeats, second diaries of a day, replays) to two databases: one
with the caches working, one with them emptied before every batch. Statuses, receipts' order and
every label must be identical.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import server.store.records as records
from server.db import open_db
from shared.protocol import load_protocol
from tests.evidence.devices import new_server_db, pair_in_process
from tests.support.records import make_alsfrs, make_dose, make_nasal

PROTOCOL = load_protocol()
CST = timezone(timedelta(hours=8))
DAY1 = datetime(2025, 3, 1, 9, 0, tzinfo=CST)
NOW = datetime(2025, 9, 1, 0, 0, tzinfo=timezone.utc)

entry = st.tuples(
    st.sampled_from(("nasal_symptoms", "alsfrs_r", "dose_confirmation", "replay")),
    st.one_of(st.integers(-3, 10), st.integers(-20, 120)),   # day entered, from the planned first dose
    st.integers(0, 23),               # hour
    st.integers(0, 2),                # a diary made this many days after its date
    st.integers(1, 4),                # dose number
    st.booleans(),                    # dose given
)


def _database(tmp: Path, name: str):
    db = new_server_db(tmp / f"{name}.sqlite")
    return db, pair_in_process(db)


def _envelopes(batch, seq, sent):
    out = []
    for kind, day, hour, lag, dose, given in batch:
        if kind == "replay":
            if sent:
                out.append(sent[(day + hour) % len(sent)])
            continue
        entered = DAY1 + timedelta(days=day, hours=hour)
        seq[0] += 1
        if kind == "nasal_symptoms":
            env = make_nasal("S-001", day=(entered - timedelta(days=lag)).date(), entered_at=entered,
                             device_seq=seq[0])
        elif kind == "alsfrs_r":
            env = make_alsfrs("S-001", entered_at=entered, device_seq=seq[0])
        else:
            env = make_dose("S-001", dose_number=dose, entered_at=entered, given=given, device_seq=seq[0])
        out.append(env)
    sent.extend(out)
    return out


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
# a diary for day 10 made on day 12, then another for day 10 made on day 10 arrives: the later upload
# sorts first, so the kept matching must not be used (it would say "second entry" instead of on time)
@example(batches=[[("nasal_symptoms", 12, 9, 2, 1, True)], [("nasal_symptoms", 10, 9, 0, 1, True)]])
# dose 1 given in the second upload moves study day 1: the kept matching belongs to another timeline
@example(batches=[[("nasal_symptoms", 3, 9, 0, 1, True)], [("dose_confirmation", 1, 9, 0, 1, True)],
                  [("nasal_symptoms", 4, 9, 0, 1, True)]])
@given(batches=st.lists(st.lists(entry, min_size=1, max_size=5), min_size=1, max_size=5))
def test_cached_and_uncached_ingest_give_identical_outcomes_and_labels(batches):
    tmp = Path(tempfile.mkdtemp(prefix="als-epro-caches-"))
    try:
        fast, fast_device = _database(tmp, "fast")
        plain, plain_device = _database(tmp, "plain")
        seq, sent = [0], []
        plain_key = records._MATCHED.where(plain, plain_device["participant_id"])
        for batch in batches:
            envs = _envelopes(batch, seq, sent)
            got = records.ingest(fast, fast_device, envs, protocol=PROTOCOL, now=NOW)
            records._MATCHED._kept.pop(plain_key, None)       # the plain database starts over each time
            records._ENTRIES._entries.clear()
            want = records.ingest(plain, plain_device, envs, protocol=PROTOCOL, now=NOW)
            assert [(r["id"], r["status"], r.get("labels")) for r in got] == \
                   [(r["id"], r["status"], r.get("labels")) for r in want]
        fast.close()
        plain.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_kept_matching_is_used_and_dropped_when_another_writer_adds_records(tmp_path):
    db, device = _database(tmp_path, "one")
    first = [make_nasal("S-001", entered_at=DAY1 + timedelta(days=d), device_seq=d + 1) for d in range(3)]
    records.ingest(db, device, first, protocol=PROTOCOL, now=NOW)
    where = records._MATCHED.where(db, device["participant_id"])
    kept = records._MATCHED._kept[where]
    assert kept[1][0] == 3                                # stamp: last server_seq 3 (seq, audit link)
    # another process stores a record: the last seq and audit link no longer agree, so the next batch starts over
    other = open_db(tmp_path / "one.sqlite")
    records._MATCHED._kept.pop(where)
    records.ingest(other, device, [make_nasal("S-001", entered_at=DAY1 + timedelta(days=5), device_seq=9)],
                   protocol=PROTOCOL, now=NOW)
    records._MATCHED._kept[where] = kept                  # this process still holds the old matching
    later = make_nasal("S-001", entered_at=DAY1 + timedelta(days=6), device_seq=10)
    assert records._MATCHED.get(where, kept[0], (999, "another link")) is None
    result = records.ingest(db, device, [later], protocol=PROTOCOL, now=NOW)
    assert result[0]["status"] == "accepted" and records._MATCHED._kept[where][1][0] == 5
    other.close()
    db.close()
