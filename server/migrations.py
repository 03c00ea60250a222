"""Ordered, recorded schema migrations (sqlite-utils ``Migrations``, recorded in ``_migrations``).

Each migration runs in one transaction together with the record of it having been applied. Never edit
an applied migration: add the next one. Every migration has a test that applies it to an empty
database and to the previous version holding data (``tests/server/test_migrations.py``).

Clinical and evidence tables are append-only: triggers refuse UPDATE and DELETE on ``audit``,
``records``, ``record_versions``, ``quarantine``, ``first_dose_changes`` and ``changes``. Masking:
no table has an arm, randomisation, kit-to-arm, cohort or dose-level column (BL-01, tested).
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations


class ServerMigrations(Migrations):
    migrations_table = "_migrations"


migrations = ServerMigrations("server")

#: tables whose rows can never change or disappear, with the migration that made them so
APPEND_ONLY = ("audit", "first_dose_changes", "records", "record_versions", "quarantine", "changes",
               "flag_reviews", "signoffs", "signoff_invalidations", "day1_confirmations", "alert_flags",
               "query_messages")


def _run(db: Database, script: str) -> None:
    """Run a multi-statement script inside the migration's transaction.

    ``executescript`` would commit the open transaction first, so statements run one by one.
    """
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            db.execute(buffer)
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement: {buffer.strip()[:60]}")


def _append_only(db: Database, table: str) -> None:
    for op in ("UPDATE", "DELETE"):
        db.execute(f"""
            CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END
        """)


@migrations()
def m001_identities_and_audit(db: Database) -> None:
    """Sites, staff, participants, caregivers, devices, pairing, and the hash-chained audit trail."""
    _run(db, """
    CREATE TABLE sites (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE staff (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        site_id INTEGER NOT NULL REFERENCES sites(id),
        role TEXT NOT NULL CHECK (role IN ('investigator', 'coordinator', 'monitor', 'admin')),
        password_hash TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    CREATE TABLE participants (
        id INTEGER PRIMARY KEY,
        subject TEXT NOT NULL UNIQUE,
        site_id INTEGER NOT NULL REFERENCES sites(id),
        onset TEXT NOT NULL,
        onset_precision TEXT NOT NULL CHECK (onset_precision IN ('month', 'day')),
        first_dose_date TEXT NOT NULL,
        tz TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'withdrawn')),
        enrolled_at TEXT NOT NULL,
        withdrawn_at TEXT,
        withdrawal_reason TEXT
    );
    CREATE TABLE first_dose_changes (
        id INTEGER PRIMARY KEY,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        old_date TEXT NOT NULL,
        new_date TEXT NOT NULL,
        reason TEXT NOT NULL,
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL
    );
    CREATE TABLE caregivers (
        id INTEGER PRIMARY KEY,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        caregiver_id INTEGER REFERENCES caregivers(id),
        role TEXT NOT NULL CHECK (role IN ('participant', 'caregiver')),
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_reason TEXT,
        last_seen_at TEXT,
        last_device_seq INTEGER NOT NULL DEFAULT 0,
        CHECK ((role = 'caregiver') = (caregiver_id IS NOT NULL))
    );
    CREATE INDEX devices_participant ON devices(participant_id);
    CREATE TABLE pairing_codes (
        id INTEGER PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        role TEXT NOT NULL CHECK (role IN ('participant', 'caregiver')),
        caregiver_id INTEGER REFERENCES caregivers(id),
        issued_at TEXT NOT NULL,
        issued_by TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        device_id TEXT REFERENCES devices(id)
    );
    CREATE TABLE pairing_attempts (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        client_addr TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX pairing_attempts_at ON pairing_attempts(at);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        actor_id TEXT,
        action TEXT NOT NULL,
        entity TEXT,
        entity_id TEXT,
        site_id INTEGER,
        detail TEXT NOT NULL,
        app_version TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_entity ON audit(entity, entity_id);
    """)
    _append_only(db, "audit")
    _append_only(db, "first_dose_changes")


@migrations()
def m002_records_and_quarantine(db: Database) -> None:
    """Records (first version as received), their versions, the quarantine and device_seq gaps."""
    _run(db, """
    CREATE TABLE records (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        device_id TEXT REFERENCES devices(id),
        staff_id INTEGER REFERENCES staff(id),
        originator TEXT NOT NULL,
        channel TEXT NOT NULL CHECK (channel IN ('sync', 'import', 'staff')),
        staff_entered INTEGER NOT NULL DEFAULT 0,
        respondent TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        instrument_version TEXT NOT NULL,
        event_time TEXT NOT NULL,
        entered_at TEXT NOT NULL,
        device_seq INTEGER,
        received_at TEXT NOT NULL,
        server_seq INTEGER NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        envelope TEXT NOT NULL,
        clock_offset_s REAL,
        client_time TEXT,
        drift_s REAL,
        drift_flag INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX records_participant ON records(participant_id, entered_at);
    CREATE INDEX records_device ON records(device_id, device_seq);
    CREATE TABLE record_versions (
        record_id TEXT NOT NULL REFERENCES records(id),
        version INTEGER NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        requested_by TEXT,
        reason TEXT,
        changes TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (record_id, version)
    );
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id TEXT,
        device_id TEXT REFERENCES devices(id),
        participant_id INTEGER REFERENCES participants(id),
        channel TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('invalid', 'device_binding', 'withdrawn')),
        device_seq INTEGER,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL,
        errors TEXT NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE UNIQUE INDEX quarantine_body ON quarantine(device_id, sha256);
    CREATE UNIQUE INDEX quarantine_record ON quarantine(record_id)
        WHERE record_id IS NOT NULL AND reason != 'device_binding';
    CREATE TABLE device_seq_gaps (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        seq_from INTEGER NOT NULL,
        seq_to INTEGER NOT NULL,
        detected_at TEXT NOT NULL
    );
    CREATE INDEX device_seq_gaps_device ON device_seq_gaps(device_id);
    """)
    for table in ("records", "record_versions", "quarantine"):
        _append_only(db, table)


@migrations()
def m003_changes_feed(db: Database) -> None:
    """What a device learns from ``GET /sync/changes``: timeline updates and staff decisions."""
    _run(db, """
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX changes_participant ON changes(participant_id, seq);
    """)
    _append_only(db, "changes")


@migrations()
def m004_participant_status(db: Database) -> None:
    """Derived per-participant figures the scheduled jobs recompute (a cache, not evidence)."""
    _run(db, """
    CREATE TABLE participant_status (
        participant_id INTEGER PRIMARY KEY REFERENCES participants(id),
        computed_at TEXT NOT NULL,
        compliance TEXT NOT NULL,
        overdue TEXT NOT NULL,
        dlt TEXT NOT NULL
    );
    """)


def migrate(db: Database, *, stop_before: str | None = None) -> list[str]:
    """Apply pending migrations; return the names applied."""
    before = {m.name for m in migrations.applied(db)}
    migrations.apply(db, stop_before=stop_before)
    return [m.name for m in migrations.applied(db) if m.name not in before]


def pending(db: Database) -> list[str]:
    return [m.name for m in migrations.pending(db)]


def missing_guards(db: Database) -> list[str]:
    """Append-only triggers that should exist but do not (the server refuses to start then, AT-04)."""
    have = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    tables = set(db.table_names())
    want = [f"{t}_no_{op}" for t in APPEND_ONLY if t in tables for op in ("update", "delete")]
    return [name for name in want if name not in have]


@migrations()
def m005_staff_sessions(db: Database) -> None:
    """Staff web sessions (revocable, idle timeout, IA-13) and login attempts for rate limiting (IA-11).

    Only the sha256 of a session cookie is stored; the CSRF token is derived from the cookie and never
    stored. Neither table is evidence: sessions end (``ended_at``) but are never deleted.
    """
    _run(db, """
    CREATE TABLE staff_sessions (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        staff_id INTEGER NOT NULL REFERENCES staff(id),
        lang TEXT,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        ended_at TEXT,
        end_reason TEXT,
        client_addr TEXT,
        user_agent TEXT
    );
    CREATE INDEX staff_sessions_staff ON staff_sessions(staff_id, ended_at);
    CREATE TABLE staff_login_attempts (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        email TEXT NOT NULL,
        client_addr TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'rate_limited'))
    );
    CREATE INDEX staff_login_attempts_email ON staff_login_attempts(email, at);
    CREATE INDEX staff_login_attempts_addr ON staff_login_attempts(client_addr, at);
    """)


@migrations()
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


@migrations()
def m007_staff_names(db: Database) -> None:
    """A display name on staff accounts: the printed name a sign-off carries (21 CFR 11.50).

    Accounts made before this keep NULL; their investigators type the printed name when signing.
    """
    _run(db, "ALTER TABLE staff ADD COLUMN name TEXT;")


@migrations()
def m008_security_accounts(db: Database) -> None:
    """Password lifecycle on staff accounts, the bounded security log and its counters (issue 16).

    ``must_change_password``: set by an admin-made account or an admin reset; the holder must choose a
    new password at the next sign-in, so an investigator's signing password is known to them alone.
    ``security_events`` is a bounded log (oldest rows pruned past ``SECURITY_LOG_MAX_ROWS``) of
    unauthenticated failures — bad pairing codes, failed logins, revoked tokens — that used to be one
    permanent audit row each; ``security_counters`` adds them up per kind and interval, and each closed
    interval becomes one ``security.summary`` audit row. Neither table is evidence (the summaries are).
    """
    _run(db, """
    ALTER TABLE staff ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE staff ADD COLUMN password_changed_at TEXT;
    CREATE TABLE security_events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        client_addr TEXT,
        site_id INTEGER,
        detail TEXT NOT NULL
    );
    CREATE INDEX security_events_kind ON security_events(kind, at);
    CREATE TABLE security_counters (
        kind TEXT NOT NULL,
        period_start TEXT NOT NULL,
        period_end TEXT NOT NULL,
        count INTEGER NOT NULL,
        addresses TEXT NOT NULL DEFAULT '{}',
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        audit_seq INTEGER,
        PRIMARY KEY (kind, period_start)
    );
    CREATE INDEX security_counters_open ON security_counters(audit_seq, period_end);
    """)


@migrations()
def m009_day1_confirmations(db: Database) -> None:
    """Study day 1 confirmed by staff (issue 10 §2): one append-only row per confirmation, the latest
    wins; a dose-1 time typed on a device never moves day 1 without one of these."""
    _run(db, """
    CREATE TABLE day1_confirmations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        day1 TEXT NOT NULL,
        dose1_administered_at TEXT,
        reason TEXT NOT NULL DEFAULT '',
        confirmed_at TEXT NOT NULL,
        confirmed_by TEXT NOT NULL
    );
    CREATE INDEX day1_confirmations_participant ON day1_confirmations(participant_id, id);
    """)
    _append_only(db, "day1_confirmations")


@migrations()
def m010_pairing_limits_and_token_rotation(db: Database) -> None:
    """Pairing limits per source address and per code (no global lock-out), and rotating device tokens.

    ``pairing_attempts.code_hash``: the sha256 of the code tried (never the code), so repeated tries of
    one code slow down on their own. ``devices``: ``pending_token_hash`` is a token handed out with a
    sync answer and not used yet (the old one keeps working until it is); ``previous_token_hash`` is the
    token it replaced, accepted until ``previous_token_until`` (the grace window); ``syncs_since_rotation``
    counts authenticated uploads. Existing rows: no pending or previous token, counter 0.
    """
    _run(db, """
    ALTER TABLE pairing_attempts ADD COLUMN code_hash TEXT;
    CREATE INDEX pairing_attempts_addr ON pairing_attempts(client_addr, at);
    CREATE INDEX pairing_attempts_code ON pairing_attempts(code_hash, at);
    ALTER TABLE devices ADD COLUMN pending_token_hash TEXT;
    ALTER TABLE devices ADD COLUMN pending_token_at TEXT;
    ALTER TABLE devices ADD COLUMN previous_token_hash TEXT;
    ALTER TABLE devices ADD COLUMN previous_token_until TEXT;
    ALTER TABLE devices ADD COLUMN token_rotated_at TEXT;
    ALTER TABLE devices ADD COLUMN syncs_since_rotation INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX devices_pending_token ON devices(pending_token_hash)
        WHERE pending_token_hash IS NOT NULL;
    CREATE INDEX devices_previous_token ON devices(previous_token_hash)
        WHERE previous_token_hash IS NOT NULL;
    """)


@migrations()
def m011_alerts_and_queries(db: Database) -> None:
    """Site alerts (issue 12): on-call lists, each staff member's alert settings, the flags the alerting
    has seen (once each), and the delivery outbox; data clarification queries with their message thread.

    ``alert_outbox.idem_key`` is unique: one delivery per recipient, flag (or digest day) and channel,
    whatever happens. Outbox rows change state (pending → sending → sent / failed); every attempt and
    result is an audit row. ``alert_flags`` and ``query_messages`` are append-only; a query's ``state``
    follows its latest message.
    """
    _run(db, """
    CREATE TABLE alert_oncall (
        site_id INTEGER NOT NULL REFERENCES sites(id),
        staff_id INTEGER NOT NULL REFERENCES staff(id),
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL,
        PRIMARY KEY (site_id, staff_id)
    );
    CREATE TABLE alert_settings (
        staff_id INTEGER PRIMARY KEY REFERENCES staff(id),
        email_enabled INTEGER NOT NULL DEFAULT 1,
        webhook_url TEXT,
        digest_enabled INTEGER NOT NULL DEFAULT 1,
        lang TEXT NOT NULL DEFAULT 'en' CHECK (lang IN ('en', 'zh-CN')),
        updated_at TEXT NOT NULL
    );
    CREATE TABLE alert_flags (
        flag_key TEXT PRIMARY KEY,
        site_id INTEGER NOT NULL REFERENCES sites(id),
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        rule TEXT NOT NULL,
        record_id TEXT,
        urgent INTEGER NOT NULL CHECK (urgent IN (0, 1)),
        detected_at TEXT NOT NULL,
        digest_date TEXT
    );
    CREATE INDEX alert_flags_participant ON alert_flags(participant_id);
    CREATE INDEX alert_flags_digest ON alert_flags(site_id, digest_date);
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY,
        idem_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('urgent', 'digest')),
        channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
        site_id INTEGER NOT NULL REFERENCES sites(id),
        staff_id INTEGER NOT NULL REFERENCES staff(id),
        address TEXT NOT NULL,
        lang TEXT NOT NULL,
        flag_key TEXT,
        flag_keys TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        claimed_at TEXT,
        sent_at TEXT,
        last_error TEXT
    );
    CREATE INDEX alert_outbox_due ON alert_outbox(status, next_attempt_at);
    CREATE INDEX alert_outbox_flag ON alert_outbox(flag_key);
    CREATE TABLE alert_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE queries (
        id INTEGER PRIMARY KEY,
        site_id INTEGER NOT NULL REFERENCES sites(id),
        participant_id INTEGER NOT NULL REFERENCES participants(id),
        record_id TEXT NOT NULL REFERENCES records(id),
        field TEXT,
        state TEXT NOT NULL CHECK (state IN ('open', 'answered', 'closed', 'cancelled')),
        raised_by INTEGER NOT NULL REFERENCES staff(id),
        raised_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX queries_site_state ON queries(site_id, state);
    CREATE INDEX queries_record ON queries(record_id);
    CREATE TABLE query_messages (
        id INTEGER PRIMARY KEY,
        query_id INTEGER NOT NULL REFERENCES queries(id),
        action TEXT NOT NULL CHECK (action IN ('raise', 'answer', 'reopen', 'close', 'cancel')),
        body TEXT NOT NULL,
        staff_id INTEGER NOT NULL REFERENCES staff(id),
        staff_role TEXT NOT NULL,
        at TEXT NOT NULL,
        correction_version INTEGER
    );
    CREATE INDEX query_messages_query ON query_messages(query_id);
    """)
    for table in ("alert_flags", "query_messages"):
        _append_only(db, table)


@migrations()
def m012_records_by_participant_and_type(db: Database) -> None:
    """A participant's records of one type without reading the others (issue 16: the ingest reads the
    participant's dose confirmations for every batch; without this index it read every record's row,
    envelope included, to test its type, so batches slowed as the history grew)."""
    _run(db, """
    CREATE INDEX records_participant_type ON records(participant_id, type, event_time);
    """)


@migrations()
def m013_records_by_participant_and_seq(db: Database) -> None:
    """The newest ``server_seq`` of a participant's records in one look-up: the participants list
    keeps each row's summary until that (or the participant's changes feed) moves (issue 13)."""
    _run(db, """
    CREATE INDEX records_participant_seq ON records(participant_id, server_seq);
    """)


@migrations()
def m014_list_summaries(db: Database) -> None:
    """What each row of the participants list shows that does not move with the clock, kept with the
    data version it was made from (issue 13: the first list request after a start summarised every
    participant's whole history, 50 s at a thousand). Derived, never a source: a row whose version no
    longer matches the participant's data is made again before it is shown, and deleting every row
    only makes the next list request rebuild them."""
    _run(db, """
    CREATE TABLE list_summaries (
        participant_id INTEGER PRIMARY KEY REFERENCES participants(id),
        version TEXT NOT NULL,
        body TEXT NOT NULL,
        made_at TEXT NOT NULL
    );
    """)


@migrations()
def m015_list_sort_columns(db: Database) -> None:
    """The participants list's kept rows gain what the list sorts, filters and counts by, each figure
    that moves with the clock as the instant it moves (issue 13: at ten thousand participants the list
    sorted every row in Python, 640 ms). The table is derived: it is made again empty, and its rows
    are made by ``init``, the serve process or the next list request."""
    _run(db, """
    DROP TABLE list_summaries;
    CREATE TABLE list_summaries (
        participant_id INTEGER PRIMARY KEY REFERENCES participants(id),
        version TEXT NOT NULL,
        body TEXT NOT NULL,
        made_at TEXT NOT NULL,
        open_count INTEGER NOT NULL,
        open_high INTEGER NOT NULL,
        not_given INTEGER NOT NULL,
        tz TEXT NOT NULL,
        day1 INTEGER NOT NULL,
        dlt_from INTEGER,
        dlt_until INTEGER,
        dose_due INTEGER,
        dose_due_all INTEGER,
        dose_undone INTEGER NOT NULL,
        dose_due_list TEXT NOT NULL,
        diary_low INTEGER
    );
    """)


@migrations()
def m016_task_caches_versioned(db: Database) -> None:
    """The scheduled tasks' caches (``participant_status``, ``flag_counts``) keep the participant's data
    version they were computed from and until when they stay true (the next local midnight, the next
    DLT window day): a run recomputes only the participants whose data moved or whose figures may have
    (issue 13: every run recomputed everyone, about 40 s of CPU at a thousand participants)."""
    _run(db, """
    ALTER TABLE participant_status ADD COLUMN version TEXT;
    ALTER TABLE participant_status ADD COLUMN valid_until TEXT;
    ALTER TABLE flag_counts ADD COLUMN version TEXT;
    ALTER TABLE flag_counts ADD COLUMN valid_until TEXT;
    """)


@migrations()
def m017_drop_records_participant_entered(db: Database) -> None:
    """``records_participant`` (participant_id, entered_at) goes: every query that filters a
    participant's records is served as well or better by ``records_participant_seq`` or
    ``records_participant_type`` (the one that used it, dose 1 as given, now searches by participant
    and type), and each stored record paid for a sixth index entry (issue 13: the sync of a
    10,000-record backlog; the query plans are checked in tests/server/test_ingest_history.py)."""
    _run(db, """
    DROP INDEX IF EXISTS records_participant;
    """)
