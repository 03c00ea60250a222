"""Investigator sign-off (IA-07..IA-09): password re-entered, only investigators, bound to the exact
record versions; a later correction invalidates it; a signature cannot be copied to another record."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta

import pytest

from server.store.audit import Actor, audit_rows
from server.store.corrections import request_correction
from server.store.participants import get_participant
from server.store.signoffs import (
    MAX_FAILURES, content_sha256, get_signoff, sign_off, signature_sha256, signoffs_for_participant,
)
from shared.errors import EproError
from tests.review.conftest import CST, PASSWORD, PROTOCOL, staff
from tests.support.records import make_alsfrs, make_nasal

SIGN_AT = datetime(2025, 3, 10, 2, 0, tzinfo=CST)


def _week(devices, subject="S-001"):
    envs = [make_nasal(subject, day=date(2025, 3, d), entered_at=datetime(2025, 3, d, 20, 0, tzinfo=CST))
            for d in (2, 3, 4)]
    envs.append(make_alsfrs(subject, entered_at=datetime(2025, 3, 8, 10, 0, tzinfo=CST)))
    devices.send(envs, subject)
    return envs


def _sign(db, subject="S-001", email="inv@bj01.example", password=PASSWORD, **kw):
    kw.setdefault("printed_name", "Dr. Li Wei")
    return sign_off(db, get_participant(db, subject)["id"], kw.pop("start", "2025-03-01"), kw.pop("end", "2025-03-07"),
                    staff=staff(db, email), password=password, now=kw.pop("now", SIGN_AT), **kw)


def test_signing_needs_the_password_and_shows_name_meaning_utc_and_local_time(db, devices):
    envs = _week(devices)
    for wrong in ("", "not the password"):
        with pytest.raises(EproError) as err:
            _sign(db, password=wrong)
        assert err.value.status == 401 and err.value.errors[0].field == "password"
    assert db.execute("SELECT COUNT(*) FROM signoffs").fetchone()[0] == 0
    assert len(audit_rows(db, action="signoff.password_failed")) == 2

    s = _sign(db)
    assert s["printed_name"] == "Dr. Li Wei" and s["meaning"] == "Reviewed"
    assert s["signed_at"] == "2025-03-09T18:00:00.000Z" and s["signed_at_local"] == "2025-03-10T02:00:00+08:00"
    assert s["tz"] == "Asia/Shanghai" and s["status"]["state"] == "valid"
    # the ALSFRS-R of 8 March lies outside 1–7 March: three diaries covered, each at version 1
    assert sorted(c["record_id"] for c in s["covered"]) == sorted(e["id"] for e in envs[:3])
    assert {c["version"] for c in s["covered"]} == {1}
    row = audit_rows(db, action="signoff.sign")[0]
    assert row["entity_id"] == str(s["id"]) and row["detail"]["printed_name"] == "Dr. Li Wei"
    assert row["detail"]["signature_sha256"] == s["signature_sha256"] and "password" not in json.dumps(row["detail"])


def test_a_named_account_signs_with_its_own_name_without_typing_it(db, devices):
    from server.store.staff import add_staff
    _week(devices)
    add_staff(db, "li@bj01.example", "BJ01", "investigator", PASSWORD, actor=Actor.cli(), name="Dr. Li Wei")
    s = _sign(db, email="li@bj01.example", printed_name="")
    assert s["printed_name"] == "Dr. Li Wei"
    assert get_signoff(db, s["id"])["printed_name"] == "Dr. Li Wei"
    assert audit_rows(db, action="signoff.sign")[0]["detail"]["printed_name"] == "Dr. Li Wei"


def test_only_investigators_of_the_site_sign(db, devices):
    _week(devices)
    for email in ("coord@bj01.example", "mon@bj01.example", "admin@bj01.example", "inv@sh02.example"):
        with pytest.raises(EproError) as err:
            _sign(db, email=email)
        assert err.value.status == 403, email
    assert db.execute("SELECT COUNT(*) FROM signoffs").fetchone()[0] == 0


def test_period_rules_nothing_to_sign_and_repeated_failures(db, devices):
    _week(devices)
    for start, end, status in (("2025-03-07", "2025-03-01", 400), ("2025-03-01", "2025-04-30", 400),
                               ("2025-03-x", "2025-03-07", 400), ("2025-02-01", "2025-02-10", 409)):
        with pytest.raises(EproError) as err:
            _sign(db, start=start, end=end)
        assert err.value.status == status, (start, end)
    with pytest.raises(EproError) as err:
        _sign(db, printed_name="  ")
    assert err.value.errors[0].field == "printed_name"
    for _ in range(MAX_FAILURES):
        with pytest.raises(EproError):
            _sign(db, password="wrong wrong wrong")
    with pytest.raises(EproError) as err:
        _sign(db)  # even the right password waits after five failures in 15 minutes
    assert err.value.status == 429
    assert _sign(db, now=SIGN_AT + timedelta(minutes=16))["status"]["state"] == "valid"


def test_a_later_correction_of_a_covered_record_invalidates_the_signature(db, devices):
    envs = _week(devices)
    s = _sign(db)
    coord = Actor.staff(staff(db, "coord@bj01.example")["id"])
    # correcting a record outside the period leaves the signature valid
    request_correction(db, envs[3]["id"], {"items.1": 3}, reason="typo", requested_by="participant",
                       actor=coord, protocol=PROTOCOL, now=SIGN_AT + timedelta(hours=1))
    assert get_signoff(db, s["id"])["status"]["state"] == "valid"
    out = request_correction(db, envs[1]["id"], {"symptoms.headache": 2}, reason="headache forgotten",
                             requested_by="caregiver, by phone", actor=coord, protocol=PROTOCOL,
                             now=SIGN_AT + timedelta(hours=2))
    assert out["invalidated_signoffs"] == [s["id"]]
    status = get_signoff(db, s["id"])["status"]
    assert status["state"] == "invalidated"
    assert status["changed"] == [{"record_id": envs[1]["id"], "signed_version": 1, "current_version": 2,
                                  "type": "nasal_symptoms"}]
    assert [i["record_id"] for i in status["invalidations"]] == [envs[1]["id"]]
    inv = audit_rows(db, action="signoff.invalidate")
    assert len(inv) == 1 and inv[0]["entity_id"] == str(s["id"]) and inv[0]["detail"]["new_version"] == 2
    for sql in ("UPDATE signoff_invalidations SET new_version = 1", "DELETE FROM signoff_invalidations"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)
    # a further correction does not invalidate the same signature again
    request_correction(db, envs[1]["id"], {"symptoms.headache": 1}, reason="it was mild after all",
                       requested_by="caregiver, by phone", actor=coord, protocol=PROTOCOL,
                       now=SIGN_AT + timedelta(hours=2, minutes=30))
    assert len(audit_rows(db, action="signoff.invalidate")) == 1
    assert get_signoff(db, s["id"])["status"]["changed"][0]["current_version"] == 3
    # a new signature over the same period covers version 3 and is valid; the old one stays invalidated
    again = _sign(db, now=SIGN_AT + timedelta(hours=3))
    assert {c["record_id"]: c["version"] for c in again["covered"]}[envs[1]["id"]] == 3
    states = [x["status"]["state"] for x in signoffs_for_participant(db, get_participant(db, "S-001")["id"])]
    assert states == ["valid", "invalidated"]


def test_an_entry_arriving_later_in_a_signed_period_is_listed_not_silently_signed(db, devices):
    _week(devices)
    s = _sign(db)
    late = make_nasal("S-001", day=date(2025, 3, 5), entered_at=datetime(2025, 3, 5, 21, 0, tzinfo=CST))
    devices.send([late], now=SIGN_AT + timedelta(hours=5))
    status = get_signoff(db, s["id"])["status"]
    assert status["state"] == "valid" and status["added_since"] == [late["id"]]


def _copy(db, row, **changes):
    row = {**row, **changes}
    row.pop("id")
    cols = ", ".join(row)
    cur = db.execute(f"INSERT INTO signoffs ({cols}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))
    return cur.lastrowid


def test_a_signature_cannot_be_copied_to_another_participant_or_edited(db, devices):
    _week(devices, "S-001")
    _week(devices, "S-002")
    s = _sign(db, "S-001")
    raw = next(db.query("SELECT * FROM signoffs WHERE id = ?", [s["id"]]))
    other = get_participant(db, "S-002")["id"]
    with pytest.raises(sqlite3.IntegrityError):  # the very same signature cannot be stored twice
        _copy(db, raw, participant_id=other)
    # moved to S-002 with a fresh-looking signature hash: the hashes do not match the row
    forged = _copy(db, raw, participant_id=other, signature_sha256="0" * 64)
    assert get_signoff(db, forged)["status"]["state"] == "broken"
    # even with every hash recomputed for S-002, the covered records are not S-002's
    content = content_sha256("S-002", raw["period_from"], raw["period_to"], json.loads(raw["covered"]))
    sig = signature_sha256(content, raw["staff_id"], raw["printed_name"], raw["meaning"], raw["signed_at"])
    forged2 = _copy(db, raw, participant_id=other, content_sha256=content, signature_sha256=sig)
    status = get_signoff(db, forged2)["status"]
    assert status["state"] == "broken" and "not one of S-002" in status["problem"]
    # signatures are append-only: an edit in place is refused by the database
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE signoffs SET printed_name = 'Someone else' WHERE id = ?", [s["id"]])
    assert get_signoff(db, s["id"])["status"]["state"] == "valid"
