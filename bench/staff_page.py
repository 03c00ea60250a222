"""Benchmark 3: the server's time to build one participant's staff page holding a year of daily
entries (365 nasal diaries, the protocol's dose confirmations, monthly ALSFRS-R reports, each stored
through the real ingest), as a signed-in investigator: real ``GET /staff/participants/<subject>``
requests (the summary with the Safety flags section) and each section's own URL (diary and charts,
doses, records page 1, audit page 1, devices), plus the print view (everything, for paper; not a
target), through the Flask test client (no network): first request and the median of the following.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import log, median

REPEAT = 20
#: the pages measured: the summary (the default URL) and each section's own URL
PAGES = (("summary", ""), ("diary", "/diary"), ("doses", "/doses"), ("records", "/records"),
         ("audit", "/audit"), ("devices", "/devices"), ("print", "/print"))
EMAIL, PASSWORD = "inv@bench.example", "bench password for the staff page"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _year_of_entries(subject: str, first_dose: datetime, protocol) -> list[dict[str, Any]]:
    from tests.support.records import make_alsfrs, make_dose, make_nasal

    out, seq = [], 0

    def nxt() -> int:
        nonlocal seq
        seq += 1
        return seq

    out.append(make_alsfrs(subject, entered_at=first_dose - timedelta(days=2), device_seq=nxt()))
    for day in range(365):
        evening = first_dose + timedelta(days=day, hours=11)
        if day + 1 in protocol.dose_days:
            n = protocol.dose_days.index(day + 1) + 1
            out.append(make_dose(subject, dose_number=n, entered_at=first_dose + timedelta(days=day, minutes=20),
                                 device_seq=nxt()))
        out.append(make_nasal(subject, entered_at=evening, device_seq=nxt(),
                              grades={"congestion": day % 3, "sneezing": (day // 7) % 2}))
        if day + 1 in protocol.alsfrs_days():
            out.append(make_alsfrs(subject, entered_at=evening + timedelta(minutes=30),
                                   score=4 if day < 180 else 3, device_seq=nxt()))
    return out


def signed_in(app, email: str, password: str):
    """A Flask test client signed in through the real form (CSRF included)."""
    client = app.test_client()
    page = client.get("/staff/login", headers={"Accept": "text/html"})
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    resp = client.post("/staff/login", data={"csrf_token": token, "email": email, "password": password,
                                             "next": "/staff/participants"})
    if resp.status_code not in (302, 303):
        raise RuntimeError(f"sign-in failed: {resp.status_code}")
    return client


def run(repeat: int = REPEAT) -> dict[str, Any]:
    from server import create_app
    from server.store.audit import Actor
    from server.store.records import ingest
    from server.store.staff import add_staff
    from shared.protocol import load_protocol
    from tests.evidence.devices import new_server_db, pair_in_process

    tmp = Path(tempfile.mkdtemp(prefix="als-epro-bench-staff-"))
    try:
        log("bench 3: staff page of a participant with a year of daily entries")
        protocol = load_protocol()
        cst = timezone(timedelta(hours=8))
        first_dose = (datetime.now(cst) - timedelta(days=366)).replace(hour=9, minute=0, second=0, microsecond=0)
        path = tmp / "server.sqlite"
        onset = (first_dose - timedelta(days=365)).strftime("%Y-%m")      # inside the 6–24 month window
        db = new_server_db(path, onset=onset, first_dose=first_dose.date().isoformat())
        add_staff(db, EMAIL, "BJ01", "investigator", PASSWORD, actor=Actor.cli(), must_change=False)
        device = pair_in_process(db)
        entries = _year_of_entries("S-001", first_dose, protocol)
        for start in range(0, len(entries), 500):
            results = ingest(db, device, entries[start:start + 500], protocol=protocol)
            if any(r["status"] != "accepted" for r in results):
                raise RuntimeError("bench data was not accepted")
        db.close()

        app = create_app({"DB": str(path)})
        if "staff.login_form" not in app.view_functions:
            return {"pending": "the staff pages are not in this build"}
        client = signed_in(app, EMAIL, PASSWORD)
        pages = {}
        for name, path in PAGES:
            url = "/staff/participants/S-001" + path
            if name != "summary" and url not in {r.rule.replace("<subject>", "S-001") for r in app.url_map.iter_rules()}:
                continue   # a build without the sections
            times, size = [], 0
            for _ in range((repeat if name != "print" else max(3, repeat // 4)) + 1):
                t0 = time.perf_counter()
                resp = client.get(url, headers={"Accept": "text/html"})
                body = resp.get_data()
                times.append(time.perf_counter() - t0)
                if resp.status_code != 200 or b"S-001" not in body:
                    raise RuntimeError(f"participant page {url} failed: {resp.status_code}")
                size = len(body)
            pages[name] = {"first": times[0], "median": median(times[1:]), "max": max(times[1:]), "bytes": size}
        main = pages["summary"]
        return {"records": len(entries), **main, "pages": pages}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
