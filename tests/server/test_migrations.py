"""Migrations: from an empty database, and each one from the previous version with data in it."""

from __future__ import annotations

import re
import sqlite3

import pytest

from server.db import open_db, write_tx
from server.migrations import APPEND_ONLY, migrate, migrations, missing_guards, pending
from server.store.audit import Actor, verify_chain, write_audit

NAMES = [m.name for m in migrations._migrations]
ACTOR = Actor("test", "migrations")


def _stage_data(db, applied: list[str]) -> dict[str, int]:
    """Rows a database at this schema version could hold, written with plain SQL of that version."""
    with write_tx(db):
        db.execute("INSERT INTO sites (code, name, created_at) VALUES ('BJ01', 'Site', '2025-01-01T00:00:00.000Z')")
        db.execute("INSERT INTO participants (subject, site_id, onset, onset_precision, first_dose_date, tz,"
                   " enrolled_at) VALUES ('S-001', 1, '2023-05', 'month', '2025-03-01', 'Asia/Shanghai',"
                   " '2025-01-02T00:00:00.000Z')")
        db.execute("INSERT INTO devices (id, participant_id, role, name, token_hash, created_at)"
                   " VALUES ('dev-1', 1, 'participant', 'pc', 'ab', '2025-01-03T00:00:00.000Z')")
        write_audit(db, ACTOR, "participant.enroll", entity="participant", entity_id="S-001", site_id=1)
        if "m002_records_and_quarantine" in applied:
            db.execute("INSERT INTO records (id, type, participant_id, device_id, originator, channel, respondent,"
                       " schema_version, instrument_version, event_time, entered_at, device_seq, received_at,"
                       " server_seq, sha256, envelope) VALUES ('r1', 'alsfrs_r', 1, 'dev-1', 'participant:S-001',"
                       " 'sync', 'participant', 1, 'v', 't', 't', 1, '2025-03-01T00:00:00.000Z', 1, 'h', '{}')")
            db.execute("INSERT INTO record_versions (record_id, version, payload, created_at, created_by)"
                       " VALUES ('r1', 1, '{}', '2025-03-01T00:00:00.000Z', 'device:dev-1')")
        if "m003_changes_feed" in applied:
            db.execute("INSERT INTO changes (participant_id, kind, data, created_at)"
                       " VALUES (1, 'timeline', '{}', '2025-03-01T00:00:00.000Z')")
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in db.table_names()
            if not t.startswith(("_", "sqlite_"))}


def test_from_empty_applies_every_migration_in_order_and_records_it(tmp_path):
    db = open_db(tmp_path / "s.sqlite")
    assert migrate(db) == NAMES
    recorded = [r["name"] for r in db.query("SELECT name FROM _migrations ORDER BY id")]
    assert recorded == NAMES and pending(db) == [] and missing_guards(db) == []
    assert migrate(db) == []  # applying again is a no-op
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


@pytest.mark.parametrize("index", range(1, len(NAMES)), ids=NAMES[1:])
def test_each_migration_applies_to_the_previous_version_holding_data(tmp_path, index):
    db = open_db(tmp_path / "s.sqlite")
    migrate(db, stop_before=NAMES[index])
    applied = NAMES[:index]
    assert [m.name for m in migrations.applied(db)] == applied
    before = _stage_data(db, applied)
    assert migrate(db) == NAMES[index:]
    after = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in before}
    assert after == before
    assert verify_chain(db).ok and missing_guards(db) == []
    # the migrated database works for the store functions of the latest version
    from server.store.participants import enroll
    enroll(db, "S-002", "BJ01", "2024-01", "2025-04-01", actor=ACTOR)
    assert verify_chain(db).ok


def test_staff_names_keep_existing_accounts_unnamed(tmp_path):
    db = open_db(tmp_path / "s.sqlite")
    migrate(db, stop_before="m007_staff_names")
    with write_tx(db):
        db.execute("INSERT INTO sites (code, name, created_at) VALUES ('BJ01', 'Site', '2025-01-01T00:00:00.000Z')")
        db.execute("INSERT INTO staff (email, site_id, role, password_hash, active, created_at)"
                   " VALUES ('pi@x.example', 1, 'investigator', 'h', 1, '2025-01-01T00:00:00.000Z')")
    assert migrate(db) == NAMES[NAMES.index("m007_staff_names"):]
    assert [tuple(r) for r in db.execute("SELECT email, name FROM staff")] == [("pi@x.example", None)]


def test_no_table_holds_arm_randomisation_cohort_or_dose_level(tmp_path):
    db = open_db(tmp_path / "s.sqlite")
    migrate(db)
    banned = re.compile(r"arm|randomi|cohort|dose_level|dose_group|treatment|allocation|kit_to", re.I)
    columns = [(t, c.name) for t in db.table_names() for c in db[t].columns]
    assert columns and [tc for tc in columns if banned.search(tc[0]) or banned.search(tc[1])] == []


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_append_only_tables_refuse_update_and_delete(db, table):
    assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] >= 0
    for sql in (f"UPDATE {table} SET rowid = rowid", f"DELETE FROM {table}"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with write_tx(db):
                # the trigger fires per row, so make sure a row exists
                if table == "audit":
                    write_audit(db, ACTOR, "test.row")
                elif table == "changes":
                    db.execute("INSERT INTO changes (participant_id, kind, data, created_at)"
                               " VALUES (1, 'timeline', '{}', 'x')")
                elif table == "first_dose_changes":
                    db.execute("INSERT INTO first_dose_changes (participant_id, old_date, new_date, reason,"
                               " changed_at, changed_by) VALUES (1, 'a', 'b', 'r', 'x', 'y')")
                elif table in ("flag_reviews", "signoffs", "signoff_invalidations"):
                    staff_id = db.execute("SELECT id FROM staff LIMIT 1").fetchone()[0]
                    db.execute("INSERT INTO records (id, type, participant_id, originator, channel, respondent,"
                               " schema_version, instrument_version, event_time, entered_at, received_at,"
                               " server_seq, sha256, envelope) VALUES ('r', 'alsfrs_r', 1, 'o', 'sync', 'p', 1,"
                               " 'v', 't', 't', 'x', 1, 'h', '{}')")
                    db.execute("INSERT INTO flag_reviews (participant_id, flag_key, rule, record_id, flag,"
                               " flag_sha256, outcome, actor, reviewed_at) VALUES (1, 'k', 'r', 'r', '{}', 'h',"
                               " 'not_ae', 'staff:1', 'x')")
                    db.execute("INSERT INTO signoffs (participant_id, period_from, period_to, staff_id,"
                               " printed_name, meaning, signed_at, signed_at_local, tz, covered, content_sha256,"
                               " signature_sha256) VALUES (1, 'a', 'b', ?, 'N', 'Reviewed', 'x', 'x', 'z', '[]',"
                               " 'h', 's')", [staff_id])
                    db.execute("INSERT INTO signoff_invalidations (signoff_id, record_id, signed_version,"
                               " new_version, invalidated_at, actor) VALUES (1, 'r', 1, 2, 'x', 'staff:1')")
                elif table in ("alert_flags", "query_messages"):
                    staff_id = db.execute("SELECT id FROM staff LIMIT 1").fetchone()[0]
                    db.execute("INSERT INTO records (id, type, participant_id, originator, channel, respondent,"
                               " schema_version, instrument_version, event_time, entered_at, received_at,"
                               " server_seq, sha256, envelope) VALUES ('r', 'alsfrs_r', 1, 'o', 'sync', 'p', 1,"
                               " 'v', 't', 't', 'x', 1, 'h', '{}')")
                    db.execute("INSERT INTO alert_flags (flag_key, site_id, participant_id, rule, record_id, urgent,"
                               " detected_at) VALUES ('k', 1, 1, 'symptom_severe', 'r', 1, 'x')")
                    db.execute("INSERT INTO queries (site_id, participant_id, record_id, state, raised_by, raised_at,"
                               " updated_at) VALUES (1, 1, 'r', 'open', ?, 'x', 'x')", [staff_id])
                    db.execute("INSERT INTO query_messages (query_id, action, body, staff_id, staff_role, at)"
                               " VALUES (1, 'raise', '?', ?, 'monitor', 'x')", [staff_id])
                elif table == "day1_confirmations":
                    db.execute("INSERT INTO day1_confirmations (participant_id, day1, confirmed_at, confirmed_by)"
                               " VALUES (1, '2025-03-02', 'x', 'staff:1')")
                elif table in ("records", "record_versions", "quarantine"):
                    db.execute("INSERT INTO quarantine (device_id, channel, reason, received_at, body, errors,"
                               " sha256) VALUES (NULL, 'sync', 'invalid', 'x', '{}', '[]', 'h')")
                    db.execute("INSERT INTO records (id, type, participant_id, originator, channel, respondent,"
                               " schema_version, instrument_version, event_time, entered_at, received_at,"
                               " server_seq, sha256, envelope) VALUES ('r', 'alsfrs_r', 1, 'o', 'sync', 'p', 1,"
                               " 'v', 't', 't', 'x', 1, 'h', '{}')")
                    db.execute("INSERT INTO record_versions (record_id, version, payload, created_at, created_by)"
                               " VALUES ('r', 1, '{}', 'x', 'y')")
                db.execute(sql)
