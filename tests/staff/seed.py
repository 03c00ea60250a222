"""Recent, realistic history for staff-page tests, stored through the real pairing and ingest code.

:func:`seed_recent` enrols a participant whose first dose was ``days_in`` days ago (site zone), pairs a
participant device and a caregiver device, and ingests what they would have sent: a baseline
ALSFRS-R, a pre-dose nasal baseline and daily diaries, dose 1 given, dose 2 missed, a severe
nosebleed that needed help with hostile text in its notes, and a weekly ALSFRS-R 5 points lower.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from server.store.audit import Actor
from server.store.pairing import issue_pairing_code, redeem_pairing_code
from server.store.participants import enroll
from server.store.records import ingest
from shared.protocol import load_protocol
from tests.support.records import make_alsfrs, make_dose, make_nasal

ACTOR = Actor("test", "staff-seed")
TZ = ZoneInfo("Asia/Shanghai")
HOSTILE_NOTE = "<script>alert('x')</script> '; DROP TABLE records; --"


class Device:
    """A paired device with its own gap-free ``device_seq``."""

    def __init__(self, db, subject: str, role: str, name: str, now: datetime) -> None:
        code = issue_pairing_code(db, subject, role, actor=ACTOR, now=now)["code"]
        self.paired = redeem_pairing_code(db, code, name, client_addr="127.0.0.1", now=now)
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def _at(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(d, time(hour, minute), tzinfo=TZ)


def seed_recent(db, subject: str, site: str = "BJ01", *, days_in: int = 10,
                now: datetime | None = None) -> dict[str, Any]:
    """Enrol ``subject`` with dose 1 ``days_in`` days ago and ingest its history; returns ids."""
    now = now or datetime.now(timezone.utc)
    protocol = load_protocol()
    today = now.astimezone(TZ).date()
    day1 = today - timedelta(days=days_in - 1)
    enrolled = now - timedelta(days=days_in + 5)
    enroll(db, subject, site, "2025-06", day1.isoformat(), actor=ACTOR, now=enrolled)
    pdev = Device(db, subject, "participant", f"{subject} home computer", enrolled)
    cdev = Device(db, subject, "caregiver", f"{subject} caregiver laptop", enrolled)
    sent: dict[str, list[dict[str, Any]]] = {"p": [], "c": []}
    ids: dict[str, str] = {}

    def send(dev: str, env: dict[str, Any], key: str | None = None) -> None:
        sent[dev].append(env)
        if key:
            ids[key] = env["id"]

    def day(n: int) -> date:
        return day1 + timedelta(days=n - 1 if n > 0 else n)

    send("p", make_alsfrs(subject, entered_at=_at(day(-3), 10), score=4, device_seq=pdev.next_seq()), "baseline")
    send("p", make_nasal(subject, day=day(1), entered_at=_at(day(1), 7, 30), device_seq=pdev.next_seq()),
         "nasal_baseline")
    send("c", make_dose(subject, dose_number=1, planned=day(1), entered_at=_at(day(1), 9, 15),
                        device_seq=cdev.next_seq()), "dose1")
    for n in range(1, days_in):
        if n == 3:
            continue  # a missing diary day
        grades = {"rhinorrhea": n % 2}
        env = make_nasal(subject, day=day(n), entered_at=_at(day(n), 20, 30), grades=grades,
                         device_seq=pdev.next_seq())
        if n == 5:
            env["payload"]["symptoms"]["epistaxis"] = 3
            env["payload"]["epistaxis_needed_help"] = True
            env["payload"]["notes"] = HOSTILE_NOTE
            ids["severe"] = env["id"]
        send("p", env)
    if days_in >= 4:
        send("c", make_dose(subject, dose_number=2, planned=day(4), entered_at=_at(day(4), 21),
                            given=False, device_seq=cdev.next_seq()), "dose2_missed")
    if days_in >= 8:
        items = {k: 4 for k in ("1", "2", "3", "4", "5a", "6", "7", "8", "9", "10", "11", "12")}
        items.update({"1": 3, "2": 3, "7": 3, "8": 2, "10": 3})
        send("p", make_alsfrs(subject, entered_at=_at(day(8), 10), score=items, device_seq=pdev.next_seq()),
             "alsfrs_drop")
    for dev, key in ((pdev, "p"), (cdev, "c")):
        results = ingest(db, dev.paired.device, sent[key], protocol=protocol, client_time=now, now=now)
        assert all(r["status"] == "accepted" for r in results), results
    return {"ids": ids, "devices": {"participant": pdev.paired.device["id"], "caregiver": cdev.paired.device["id"]},
            "day1": day1}
