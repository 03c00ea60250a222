"""``audit verify`` reads the database in bounded, key-ordered chunks (issue 13: memory flat in the
number of records), and finds tampering wherever it falls: in a later chunk and on either side of a
chunk boundary, with the same report as when everything fits in one chunk.

The database is read through a connection that counts the rows each statement hands back; verify
with a small ``chunk`` must never get more than a chunk's worth from one statement, while the tables
hold many chunks. Going back to ``SELECT ... FROM records`` (or audit, or versions) in one statement
fails the count. Last, verify reads one snapshot: a write landing between two of its reads is not
taken for tampering."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlite_utils import Database

from server.db import CHUNK_ROWS, open_db
from server.store.audit import Actor
from server.store.integrity import expected_trigger_sql, verify_database
from server.store.staff import add_staff
from server.store.versions import correct_record
from tests.server.helpers import ADMIN, PASSWORD, pair, upload
from tests.support.records import make_nasal

CHUNK = 4
RECORDS = 26                      # six full chunks of records and a part
CORRECTED = {4: 2, 5: 1, 22: 1}   # record position (server order, from 1) -> corrections: 4 ends a chunk, 5 starts one
CST = timezone(timedelta(hours=8))


class CountingCursor(sqlite3.Cursor):
    """Counts the rows it hands back, however they are fetched, in ``tally`` (``[sql, rows]``)."""

    tally: list

    def _count(self, n: int) -> None:
        self.tally[1] += n

    def __next__(self):
        row = super().__next__()
        self._count(1)
        return row

    def fetchone(self):
        row = super().fetchone()
        self._count(row is not None)
        return row

    def fetchmany(self, *args):
        rows = super().fetchmany(*args)
        self._count(len(rows))
        return rows

    def fetchall(self):
        rows = super().fetchall()
        self._count(len(rows))
        return rows


class CountingConnection(sqlite3.Connection):
    """``rows_read``: ``[sql, rows handed back]`` per statement, in order."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.rows_read: list[list] = []

    def execute(self, sql, parameters=()):
        cursor = self.cursor(CountingCursor)
        cursor.tally = [sql, 0]
        self.rows_read.append(cursor.tally)
        return cursor.execute(sql, parameters)


@pytest.fixture
def filled(client, db, db_path):
    """RECORDS records of S-001 in server order, some corrected; returns their ids in that order."""
    token = pair(client, db)["token"]
    day = date(2025, 3, 1)
    records = [make_nasal("S-001", day=day + timedelta(days=i),
                          entered_at=datetime(2025, 3, 1, 21, 0, tzinfo=CST) + timedelta(days=i))
               for i in range(RECORDS)]
    resp = upload(client, token, records)
    assert resp.status_code == 200 and {r["status"] for r in resp.get_json()["results"]} == {"accepted"}
    ids = [r[0] for r in db.execute("SELECT id FROM records ORDER BY server_seq")]
    assert len(ids) == RECORDS
    for position, times in CORRECTED.items():
        for grade in range(1, times + 1):
            correct_record(db, ids[position - 1], {"symptoms.headache": grade}, reason="participant called",
                           requested_by="participant by phone", actor=Actor("test", "staff"))
    return ids


def _about_the_schema(sql: str) -> bool:
    """Statements on the schema (triggers, column names): as long as the schema, not the data."""
    return sql.lstrip().upper().startswith("PRAGMA") or "sqlite_master" in sql.lower()


def counted(path) -> tuple[Database, CountingConnection]:
    conn = sqlite3.connect(str(path), factory=CountingConnection)
    return Database(conn), conn


def report_in_chunks(path) -> tuple[dict, dict]:
    """(the report read CHUNK rows at a time, the report read in one chunk), the first counted."""
    db, conn = counted(path)
    try:
        small = verify_database(db, chunk=CHUNK)
        data = [(sql, n) for sql, n in conn.rows_read if not _about_the_schema(sql)]
        biggest = max(n for _sql, n in data)
        records = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        audit = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        conn.close()
    # versions come with their chunk of records: a chunk's records and their corrections
    assert biggest <= CHUNK + sum(CORRECTED.values()), [(sql[:60], n) for sql, n in data if n > CHUNK]
    assert audit > 8 * CHUNK and records > 5 * CHUNK   # what one statement would have read before
    whole = open_db(path)
    try:
        assert CHUNK_ROWS > audit
        return small, verify_database(whole)
    finally:
        whole.close()


def _tamper(path, tables, *sql_params):
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        for t in tables:
            for op in ("update", "delete"):
                con.execute(f"DROP TRIGGER {t}_no_{op}")
        for sql, params in sql_params:
            con.execute(sql, params)
        for t in tables:
            for op in ("update", "delete"):
                con.execute(expected_trigger_sql(t, op))
    finally:
        con.close()


def test_an_untouched_database_verifies_chunk_by_chunk(filled, db_path):
    small, whole = report_in_chunks(db_path)
    assert small["ok"] and small == whole
    assert small["rows"] > 8 * CHUNK


@pytest.mark.parametrize("seq", [2 * CHUNK, 2 * CHUNK + 1, 9 * CHUNK + 2])
def test_an_audit_row_changed_on_a_chunk_boundary_or_later_is_found(filled, db_path, seq):
    _tamper(db_path, ["audit"], ("UPDATE audit SET at = '2020-01-01T00:00:00Z' WHERE seq = ?", [seq]))
    small, whole = report_in_chunks(db_path)
    assert small == whole
    assert not small["ok"] and small["first_bad_seq"] == seq
    assert small["problems"][0] == {"check": "chain", "seq": seq, "problem": "content does not match its hash"}


def test_an_audit_row_removed_from_a_later_chunk_is_found(filled, db_path):
    seq = 6 * CHUNK + 1
    _tamper(db_path, ["audit"], ("DELETE FROM audit WHERE seq = ?", [seq]))
    small, whole = report_in_chunks(db_path)
    assert small == whole and small["first_bad_seq"] == seq
    assert small["problems"][0]["problem"] == f"row {seq} is missing"


def test_records_changed_either_side_of_a_chunk_boundary_and_in_the_last_chunk_are_found(filled, db_path):
    changed = [filled[CHUNK - 1], filled[CHUNK], filled[-1]]
    _tamper(db_path, ["records"], *[("UPDATE records SET envelope = replace(envelope, '\"respondent\":\"participant\"',"
                                     " '\"respondent\":\"caregiver\"') WHERE id = ?", [rid]) for rid in changed])
    small, whole = report_in_chunks(db_path)
    assert small == whole and not small["ok"]
    assert [(p["check"], p["id"]) for p in small["problems"]] == [("records", rid) for rid in changed]
    assert all("does not match its sha256" in p["problem"] for p in small["problems"])


def test_a_version_deleted_and_a_record_deleted_in_later_chunks_are_found(filled, db_path):
    twice, gone = filled[3], filled[2 * CHUNK]          # position 4 was corrected twice; 9 starts a chunk
    _tamper(db_path, ["records", "record_versions"],
            ("DELETE FROM record_versions WHERE record_id = ? AND version = 3", [twice]),
            ("DELETE FROM record_versions WHERE record_id = ?", [gone]),
            ("DELETE FROM records WHERE id = ?", [gone]))
    small, whole = report_in_chunks(db_path)
    assert small == whole and not small["ok"]
    found = [(p["check"], p["id"], p["problem"]) for p in small["problems"]]
    assert found[0] == ("versions", twice, "version 3 is in the audit trail (record.correct) but missing")
    assert found[-1][:2] == ("records", gone) and found[-1][2].endswith("no longer in the records table (deleted)")
    assert len(found) == 2


def test_a_correction_in_the_last_chunk_is_checked_against_its_audit_row(filled, db_path):
    rid = filled[21]                                      # position 22, corrected once
    _tamper(db_path, ["record_versions"],
            ("UPDATE record_versions SET changes = '[]' WHERE record_id = ? AND version = 2", [rid]))
    small, whole = report_in_chunks(db_path)
    assert small == whole
    assert [(p["check"], p["id"]) for p in small["problems"]] == [("versions", rid)]
    assert "its changes differ from audit row" in small["problems"][0]["problem"]


def test_chunk_must_be_positive(db):
    with pytest.raises(ValueError):
        verify_database(db, chunk=0)


class WritingConnection(sqlite3.Connection):
    """Runs ``hook`` once, just before the first statement that reads the staff table."""

    hook = None

    def execute(self, sql, parameters=()):
        if self.hook is not None and "FROM staff" in sql:
            hook, self.hook = self.hook, None
            hook()
        return super().execute(sql, parameters)


def test_verify_reads_one_moment_while_the_server_writes(filled, db_path):
    """An account made (staff row and its staff.create audit row, one transaction) after verify
    replayed the audit trail but before it reads the staff table is not a problem: verify runs in one
    read snapshot and sees neither."""
    conn = sqlite3.connect(str(db_path), factory=WritingConnection)
    written = []

    def server_writes():
        other = open_db(db_path)
        try:
            add_staff(other, "late@bj01.example", "BJ01", "monitor", PASSWORD, actor=ADMIN, must_change=False)
            written.append(other.execute("SELECT COUNT(*) FROM staff").fetchone()[0])
        finally:
            other.close()

    conn.hook = server_writes
    try:
        report = verify_database(Database(conn), chunk=CHUNK)
    finally:
        conn.close()
    assert written, "the write did not happen during verify"
    assert report["ok"], report["problems"]
    after = open_db(db_path)
    try:
        assert after.execute("SELECT COUNT(*) FROM staff").fetchone()[0] == written[0]
        assert verify_database(after)["ok"]
    finally:
        after.close()
