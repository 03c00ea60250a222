# DRAFT of the m006_reviews migration, registered by tests/review/conftest.py until it is appended
# to server/migrations.py (then this file is deleted).
from sqlite_utils import Database

from server.migrations import _append_only, _run


def m006_reviews(db: Database) -> None:
    """Staff review: flag acknowledgements, investigator sign-offs and their invalidations
    (append-only), and the cached open-flag counts the scheduled jobs refresh."""
    _run(db, """
    CREATE TABLE flag_reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        flag_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        record_id TEXT REFERENCES records(id),
        record_version INTEGER,
        flag TEXT NOT NULL,
        flag_sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('not_ae', 'ae_recorded', 'participant_contacted')),
        ae_number TEXT,
        note TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL,
        staff_role TEXT,
        reviewed_at TEXT NOT NULL,
        CHECK ((outcome = 'ae_recorded') = (ae_number IS NOT NULL))
    );
    CREATE INDEX flag_reviews_participant ON flag_reviews(participant_id, flag_key);
    CREATE TABLE flag_counts (
        participant_id INTEGER PRIMARY KEY REFERENCES participants(id),
        computed_at TEXT NOT NULL,
        open INTEGER NOT NULL,
        open_high INTEGER NOT NULL,
        changed INTEGER NOT NULL,
        acknowledged INTEGER NOT NULL,
        total INTEGER NOT NULL
    );
    CREATE TABLE signoffs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        period_from TEXT NOT NULL,
        period_to TEXT NOT NULL,
        staff_id INTEGER NOT NULL REFERENCES staff(id),
        printed_name TEXT NOT NULL,
        meaning TEXT NOT NULL,
        signed_at TEXT NOT NULL,
        signed_at_local TEXT NOT NULL,
        tz TEXT NOT NULL,
        covered TEXT NOT NULL,
        content_sha256 TEXT NOT NULL,
        signature_sha256 TEXT NOT NULL UNIQUE,
        CHECK (period_from <= period_to)
    );
    CREATE INDEX signoffs_participant ON signoffs(participant_id);
    CREATE TABLE signoff_invalidations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        signoff_id INTEGER NOT NULL REFERENCES signoffs(id),
        record_id TEXT NOT NULL REFERENCES records(id),
        signed_version INTEGER NOT NULL,
        new_version INTEGER NOT NULL,
        invalidated_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        UNIQUE (signoff_id, record_id, new_version)
    );
    """)
    for table in ("flag_reviews", "signoffs", "signoff_invalidations"):
        _append_only(db, table)
