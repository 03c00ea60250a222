"""Packaging fixtures: a small real server database (WAL file) holding a site, a participant, a
device, records and a correction, built through the store functions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from server.db import open_db, write_tx
from server.migrations import migrate
from server.store.audit import Actor
from server.store.devices import create_device
from server.store.participants import enroll
from server.store.records import ingest
from server.store.sites import add_site
from server.store.versions import correct_record
from shared.protocol import load_protocol
from tests.support.records import make_batch

ADMIN = Actor("test", "packaging")
START = datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))


def build_database(path, records: int = 30):
    """A migrated WAL database with data in the clinical tables; returns the path."""
    db = open_db(path)
    try:
        migrate(db)
        add_site(db, "BJ01", "Xuanwu Hospital study site", actor=ADMIN)
        participant = enroll(db, "S-001", "BJ01", "2023-05", "2025-03-01", actor=ADMIN)
        with write_tx(db):
            device, _token = create_device(db, participant, "participant", None, "packaging test")
        device = {**device, "subject": "S-001", "site_id": participant["site_id"]}
        results = ingest(db, device, make_batch("S-001", records, start=START), protocol=load_protocol())
        assert all(r["status"] == "accepted" for r in results), results[:3]
        rid = db.execute("SELECT id FROM records WHERE type = 'alsfrs_r' ORDER BY server_seq LIMIT 1").fetchone()[0]
        correct_record(db, rid, {"items.1": 3}, reason="transcription error", requested_by="participant",
                       actor=ADMIN)
    finally:
        db.close()
    return path


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("packaging-template") / "server.sqlite"
    build_database(path)
    db = open_db(path)
    with db.ensure_autocommit_on():
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture
def live_db(tmp_path, _template_db):
    """A fresh copy of the template database per test."""
    path = tmp_path / "live" / "server.sqlite"
    path.parent.mkdir()
    path.write_bytes(_template_db.read_bytes())
    return path
