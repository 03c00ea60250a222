"""The demo database: a served instance with a demo site, staff logins and synthetic participants.

A demo database is marked by an audit row (``action="demo.created"``, ``entity="database"``): the audit
trail is append-only, so a demo database can never pass for a real one. Every staff page and every export
of such a database says "DEMO — synthetic data" (:func:`is_demo_db`, :data:`DEMO_BANNER`).

:func:`build_demo` loads the synthetic history of :mod:`server.demo.data` through the same pairing and
idempotent ingest as real devices, with timestamps of when each entry would have arrived.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

DEMO_BANNER = {"en": "DEMO — synthetic data", "zh-CN": "演示 — 合成数据"}
DEMO_SITE = ("BJ01", "Xuanwu Hospital study site (demo)")
#: (email, role); the password is made at build time and printed once
#: (email, role, display name): the name is the printed name on the investigator's sign-offs
DEMO_STAFF = (("investigator@demo.als-epro", "investigator", "Dr. Li Wei (demo)"),
              ("coordinator@demo.als-epro", "coordinator", "Zhang Min (demo)"),
              ("monitor@demo.als-epro", "monitor", "Wang Fang (demo)"),
              ("admin@demo.als-epro", "admin", "Chen Jie (demo)"))


#: the device the demo shows as silent for more than 48 hours
SILENT_DEVICE = ("001-002", "caregiver")


class DemoRefused(RuntimeError):
    """The target database exists and is not a demo database (exit 2)."""


def is_demo_db(db: Database) -> bool:
    row = db.execute("SELECT 1 FROM audit WHERE entity = 'database' AND entity_id = 'demo' "
                     "AND action = 'demo.created' LIMIT 1").fetchone()
    return row is not None


def target_state(path: str | Path) -> str:
    """``"new"``, ``"demo"`` or ``"other"`` for a database path."""
    from server.db import open_db

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return "new"
    db = open_db(str(path))
    try:
        tables = set(db.table_names())
        if "audit" not in tables:
            return "new" if not tables else "other"
        return "demo" if is_demo_db(db) else "other"
    finally:
        db.close()


@dataclass
class DemoResult:
    db_path: str
    site: str
    staff: list[dict[str, str]]
    password: str
    participants: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    replaced: bool = False


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


def build_demo(db_path: str | Path, *, now: datetime | None = None, password: str | None = None,
               protocol_name: str | None = None) -> DemoResult:
    """Create (or re-create) a demo database at ``db_path``; refuse a non-demo database."""
    from server.clock import utc_now
    from server.db import open_db, write_tx
    from server.migrations import migrate
    from server.store.audit import Actor, write_audit
    from server.store.day1 import confirm_day1
    from server.store.devices import touch
    from server.store.pairing import issue_pairing_code, redeem_pairing_code
    from server.store.participants import enroll
    from server.store.records import ingest
    from server.store.sites import add_site
    from server.store.staff import add_staff
    from shared.protocol import DEFAULT_PROTOCOL, load_protocol

    from server.demo.data import build_demo_history

    path = Path(db_path)
    state = target_state(path)
    if state == "other":
        raise DemoRefused(f"{path} holds a database that is not a demo database; refusing to touch it")
    replaced = state == "demo"
    if replaced:
        _remove_db_files(path)  # synthetic data only: a demo database is rebuilt from scratch
    path.parent.mkdir(parents=True, exist_ok=True)

    now = now or utc_now()
    protocol = load_protocol(protocol_name or DEFAULT_PROTOCOL)
    history = build_demo_history(protocol, now)
    start = min([now - timedelta(days=40)] + [
        datetime.fromisoformat(r["entered_at"]) for p in history for d in p.devices for r in d.records])
    setup_at = start - timedelta(days=2)
    password = password or "demo-" + secrets.token_urlsafe(9)
    actor = Actor.cli()

    db = open_db(str(path))
    try:
        migrate(db)
        with write_tx(db):
            write_audit(db, actor, "demo.created", entity="database", entity_id="demo",
                        detail={"note": "DEMO — synthetic data", "participants": len(history)}, now=setup_at)
        add_site(db, *DEMO_SITE, actor=actor, now=setup_at)
        staff = []
        for email, role, name in DEMO_STAFF:
            # synthetic demo accounts with published passwords: no forced change
            add_staff(db, email, DEMO_SITE[0], role, password, actor=actor, now=setup_at, name=name, must_change=False)
            staff.append({"email": email, "role": role, "name": name})
        result = DemoResult(str(path), DEMO_SITE[0], staff, password, replaced=replaced)
        for person in history:
            enrolled_at = setup_at + timedelta(hours=1)
            enroll(db, person.subject, DEMO_SITE[0], person.onset, person.first_dose_date.isoformat(),
                   tz=person.tz, actor=actor, now=enrolled_at)
            count = 0
            for dev in person.devices:
                issued = enrolled_at + timedelta(minutes=5)
                code = issue_pairing_code(db, person.subject, dev.role, actor=actor, now=issued)
                code_text = code["code"] if isinstance(code, dict) else code
                paired = redeem_pairing_code(db, code_text, dev.name, client_addr="127.0.0.1",
                                             now=issued + timedelta(minutes=2))
                last_heard = issued
                for env in dev.records:
                    arrived = datetime.fromisoformat(env["entered_at"]) + timedelta(minutes=4)
                    results = ingest(db, paired.device, [env], protocol=protocol, client_time=arrived,
                                     now=arrived)
                    if results[0]["status"] != "accepted":
                        raise RuntimeError(f"demo record refused: {results[0]}")
                    count += 1
                    last_heard = arrived
                # devices check in for schedule changes between entries: heard from two hours ago, except
                # the one the demo shows as silent (a caregiver laptop not heard from for three days)
                silent = (person.subject, dev.role) == SILENT_DEVICE
                heard = now - (timedelta(days=3) if silent else timedelta(hours=2))
                with write_tx(db):
                    touch(db, paired.device["id"], max(last_heard, heard) if not silent else heard)
            if person.confirm_day1 and person.first_dose_date <= now.date():
                confirm_day1(db, person.subject, person.first_dose_date.isoformat(), actor=actor,
                             now=now - timedelta(hours=3))
            result.participants.append({"subject": person.subject, "story": person.story, "records": count})
            result.records += count
        return result
    finally:
        db.close()
