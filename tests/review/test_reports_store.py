"""AT-12 review reports and the AT-08 audit trail view: seed each anomaly, see it reported; filters
by participant, record, user, action and inclusive dates; CSV; another site's rows never appear."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

from server.store.audit import Actor
from server.store.audit_search import audit_csv, search_audit
from server.store.corrections import request_correction
from server.store.participants import get_participant
from server.store.review_reports import all_reports, late_corrections
from tests.review.conftest import CST, PROTOCOL, staff
from tests.support.records import make_alsfrs, make_dose, make_nasal


def _coord(db):
    return Actor.staff(staff(db, "coord@bj01.example")["id"])


def _seed_anomalies(devices):
    """One record per anomaly at BJ01 (S-001) and one at SH02 (S-101); returns the ids by name."""
    d = lambda day, hh=20: datetime(2025, 3, day, hh, 0, tzinfo=CST)  # noqa: E731
    ids = {}
    normal = make_nasal("S-001", day=date(2025, 3, 2), entered_at=d(2))
    ids["normal"] = normal["id"]
    devices.send([normal])
    backfilled = make_nasal("S-001", day=date(2025, 3, 3), entered_at=d(5))         # two days later: late
    ids["backfilled"] = backfilled["id"]
    devices.send([backfilled])
    waited = make_nasal("S-001", day=date(2025, 3, 6), entered_at=d(6))             # sent three days later
    ids["late_upload"] = waited["id"]
    devices.send([waited], now=d(9, 9))
    drift = make_nasal("S-001", day=date(2025, 3, 7), entered_at=d(7))
    ids["drift"] = drift["id"]
    devices.send([drift], client_time=d(7) + timedelta(hours=2))                    # device clock 2 h ahead
    dose = make_dose("S-001", dose_number=9, planned=date(2025, 3, 7), entered_at=d(7, 10))
    ids["unscheduled"] = dose["id"]
    devices.send([dose], role="caregiver")
    again = make_nasal("S-001", day=date(2025, 3, 2), entered_at=d(2, 22))          # second diary that day
    ids["second"] = again["id"]
    devices.send([again])
    early = make_nasal("S-001", day=date(2025, 2, 20), entered_at=datetime(2025, 2, 20, 20, 0, tzinfo=CST))
    ids["before_dose"] = early["id"]
    devices.send([early])
    report = make_alsfrs("S-001", entered_at=d(8, 10))
    ids["alsfrs"] = report["id"]
    devices.send([report])
    foreign = make_nasal("S-101", day=date(2025, 4, 3), entered_at=datetime(2025, 4, 6, 20, 0, tzinfo=CST))
    ids["foreign"] = foreign["id"]
    devices.send([foreign], "S-101")
    return ids


def test_each_anomaly_appears_in_its_report_and_only_the_sites_own(db, devices):
    ids = _seed_anomalies(devices)
    coord = _coord(db)
    request_correction(db, ids["normal"], {"symptoms.rhinorrhea": 2}, reason="quick fix", requested_by="participant",
                       actor=coord, protocol=PROTOCOL, now=datetime(2025, 3, 3, 9, 0, tzinfo=CST))
    request_correction(db, ids["alsfrs"], {"items.3": 3}, reason="found at month-2 visit", requested_by="participant",
                       actor=coord, protocol=PROTOCOL, now=datetime(2025, 5, 10, 9, 0, tzinfo=CST))
    site = get_participant(db, "S-001")["site_id"]
    r = all_reports(db, site, PROTOCOL)

    assert {(c["record_id"], c["field"]) for c in r["changes"]} == {
        (ids["normal"], "payload.symptoms.rhinorrhea"), (ids["alsfrs"], "payload.items.3")}
    change = next(c for c in r["changes"] if c["record_id"] == ids["normal"])
    assert (change["old"], change["new"], change["reason"], change["requested_by"]) == (0, 2, "quick fix", "participant")
    assert [c["record_id"] for c in r["late_corrections"]] == [ids["alsfrs"]]
    assert r["late_corrections"][0]["lag_days"] > 60
    assert late_corrections(db, site, threshold_days=0.1)[-1]["record_id"] == ids["normal"]

    late = {x["id"]: x for x in r["late_entries"]}
    assert "backfilled" in late[ids["backfilled"]]["kinds"] and late[ids["backfilled"]]["backfill_days"] == 2
    assert "late" in late[ids["backfilled"]]["kinds"]
    assert late[ids["late_upload"]]["kinds"] == ["late_upload"] and late[ids["late_upload"]]["upload_delay_hours"] > 24
    assert ids["normal"] not in late and ids["foreign"] not in late

    assert [x["id"] for x in r["clock_drift"]] == [ids["drift"]] and r["clock_drift"][0]["drift_s"] > 7000

    windows = {x["id"]: x["kinds"] for x in r["outside_windows"]}
    assert windows[ids["unscheduled"]] == ["unscheduled_dose_number"]
    assert "second_entry_same_day" in windows[ids["second"]]
    assert "before_first_dose" in windows[ids["before_dose"]]
    assert ids["normal"] not in windows

    users = r["edits_by_user"]
    assert users == [{"user": str(coord), "corrections": 2, "fields": 2, "last_at": users[0]["last_at"]}]
    flat = repr(r)
    assert ids["foreign"] not in flat and "S-101" not in flat


def test_audit_trail_filters_and_csv(db, devices):
    ids = _seed_anomalies(devices)
    coord = _coord(db)
    request_correction(db, ids["normal"], {"symptoms.rhinorrhea": 2}, reason="quick fix", requested_by="participant",
                       actor=coord, protocol=PROTOCOL, now=datetime(2025, 3, 3, 9, 0, tzinfo=CST))
    site = get_participant(db, "S-001")["site_id"]
    everything = search_audit(db, site, limit=1000)
    assert everything["total"] == len(everything["rows"]) > 5
    assert all(row["site_id"] == site for row in everything["rows"])
    assert ids["foreign"] not in repr(everything)

    by_subject = search_audit(db, site, subject="S-001", limit=1000)["rows"]
    assert {r["action"] for r in by_subject} >= {"participant.enroll", "record.accept", "record.correct"}
    assert search_audit(db, site, subject="S-002")["total"] == 1  # only its enrolment

    by_record = search_audit(db, site, record_id=ids["normal"])["rows"]
    assert [r["action"] for r in by_record] == ["record.correct", "record.accept"]  # newest first

    by_user = search_audit(db, site, user="coord@bj01.example")["rows"]
    assert [r["action"] for r in by_user] == ["record.correct"] and by_user[0]["actor_name"] == "coord@bj01.example"
    assert search_audit(db, site, user=str(coord))["total"] == 1

    assert search_audit(db, site, action="record.accept")["total"] == 8
    assert search_audit(db, site, action="record.")["total"] == 9
    assert search_audit(db, site, action="record_")["total"] == 0  # LIKE wildcards are literal

    # inclusive local dates: the correction at 09:00 on 3 March (Beijing) is inside 3–3 March
    day = search_audit(db, site, start="2025-03-03", end="2025-03-03", action="record.correct")
    assert day["total"] == 1
    assert search_audit(db, site, start="2025-03-04", action="record.correct")["total"] == 0
    assert search_audit(db, site, end="2025-03-02", action="record.correct")["total"] == 0

    text = audit_csv(by_subject)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:6] == ["seq", "at", "at_local", "actor", "actor_name", "action"]
    assert len(rows) == len(by_subject) + 1 and any(r[5] == "record.correct" for r in rows[1:])
