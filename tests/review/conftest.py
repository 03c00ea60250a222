"""Review-area fixtures: the server area's real migrated and seeded SQLite WAL file per test (``db``,
``db_path``), devices paired through the store, records ingested through the same idempotent path as
uploads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from server.store.pairing import issue_pairing_code, redeem_pairing_code
from server.store.records import ingest
from server.store.staff import staff_by_email
from shared.protocol import load_protocol
from tests.server.conftest import _seeded_template, db, db_path  # noqa: F401  (fixtures reused)
from tests.server.helpers import ADMIN, PASSWORD

CST = timezone(timedelta(hours=8))
PROTOCOL = load_protocol()
__all__ = ["CST", "PROTOCOL", "PASSWORD", "staff", "Devices"]


def staff(db, email: str = "inv@bj01.example") -> dict[str, Any]:
    """A staff row as the pages see it (without the password hash)."""
    row = staff_by_email(db, email)
    return {k: v for k, v in row.items() if k != "password_hash"}


class Devices:
    """Pair devices through the store and ingest records as they would arrive."""

    def __init__(self, db) -> None:
        self.db = db
        self.paired: dict[str, Any] = {}

    def device(self, subject: str = "S-001", role: str = "participant"):
        key = f"{subject}/{role}"
        if key not in self.paired:
            code = issue_pairing_code(self.db, subject, role, actor=ADMIN)["code"]
            self.paired[key] = redeem_pairing_code(self.db, code, f"{role} pc", client_addr="127.0.0.1")
        return self.paired[key]

    def send(self, envs: list[dict[str, Any]], subject: str = "S-001", *, role: str = "participant",
             now: datetime | None = None, client_time: datetime | None = None) -> list[dict[str, Any]]:
        latest = max(datetime.fromisoformat(e["entered_at"]) for e in envs)
        now = now or latest + timedelta(minutes=3)
        results = ingest(self.db, self.device(subject, role).device, envs, protocol=PROTOCOL,
                         client_time=client_time, now=now)
        assert all(r["status"] == "accepted" for r in results), results
        return results


@pytest.fixture
def devices(db):
    return Devices(db)

