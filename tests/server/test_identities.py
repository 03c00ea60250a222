"""Sites, staff (argon2id, audited logins, roles), participants, caregivers, withdrawal (IA, PS-10)."""

from __future__ import annotations

import json

import pytest

from server.store.audit import audit_for_entity, audit_rows
from server.store.participants import (
    add_caregiver, caregivers_for, enroll, get_participant, participants_for_site, set_first_dose, withdraw,
)
from server.store.sites import get_site, list_sites
from server.store.staff import (
    add_staff, authenticate, get_staff, list_staff, set_staff_active, set_staff_role, staff_by_email,
)
from shared.errors import EproError
from tests.server.helpers import ADMIN, PASSWORD, pair, upload
from tests.support.records import make_nasal


def test_passwords_are_argon2id_hashes_and_never_returned(db):
    row = staff_by_email(db, "inv@bj01.example")
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]
    assert "password_hash" not in list_staff(db)[0]


def test_login_success_and_failures_are_audited_alike(db):
    assert authenticate(db, "INV@bj01.example", PASSWORD)["role"] == "investigator"
    assert authenticate(db, "inv@bj01.example", "nope nope nope") is None
    assert authenticate(db, "ghost@bj01.example", PASSWORD) is None
    staff = staff_by_email(db, "coord@bj01.example")
    set_staff_active(db, staff["id"], False, actor=ADMIN, reason="left the study team")
    assert authenticate(db, "coord@bj01.example", PASSWORD) is None
    assert len(audit_rows(db, action="staff.login")) == 1
    from server.store.security_log import events

    failed = events(db, "staff.login_failed")
    assert len(failed) == 3 and not audit_rows(db, action="staff.login_failed")
    # the unknown email is kept only as a hash (it could be a password typed into the wrong field)
    assert [e["detail"]["account"].startswith("unknown:") for e in failed].count(True) == 1
    assert "ghost@bj01.example" not in json.dumps(failed)


def test_staff_rules(db):
    with pytest.raises(EproError) as err:
        add_staff(db, "new@bj01.example", "BJ01", "investigator", "short", actor=ADMIN)
    assert err.value.code == "staff.password_too_short"
    with pytest.raises(EproError) as err:
        add_staff(db, "Inv@BJ01.example", "BJ01", "monitor", PASSWORD, actor=ADMIN)
    assert err.value.code == "staff.exists"
    with pytest.raises(EproError):
        add_staff(db, "x@bj01.example", "BJ01", "sponsor", PASSWORD, actor=ADMIN)
    with pytest.raises(EproError) as err:
        add_staff(db, "x@bj01.example", "NOPE", "monitor", PASSWORD, actor=ADMIN)
    assert err.value.code == "site.not_found"


def test_staff_name_is_stored_and_audited_without_the_password(db):
    row = add_staff(db, "li@bj01.example", "BJ01", "investigator", PASSWORD, actor=ADMIN, name="  Dr. Li Wei ")
    assert row["name"] == "Dr. Li Wei" and "password_hash" not in row
    assert get_staff(db, row["id"])["name"] == "Dr. Li Wei"
    created = audit_for_entity(db, "staff", row["id"])[0]
    assert created["action"] == "staff.create" and created["detail"]["name"] == "Dr. Li Wei"
    assert PASSWORD not in str(created["detail"])
    # no name, or only blanks: none (NULL), as accounts made before names existed
    assert add_staff(db, "a@bj01.example", "BJ01", "monitor", PASSWORD, actor=ADMIN)["name"] is None
    assert add_staff(db, "b@bj01.example", "BJ01", "monitor", PASSWORD, actor=ADMIN, name="   ")["name"] is None
    with pytest.raises(EproError) as err:
        add_staff(db, "c@bj01.example", "BJ01", "monitor", PASSWORD, actor=ADMIN, name="x" * 201)
    assert err.value.errors[0].field == "name" and staff_by_email(db, "c@bj01.example") is None


def test_role_changes_and_disabling_are_audited_with_old_and_new(db):
    staff = staff_by_email(db, "mon@bj01.example")
    set_staff_role(db, staff["id"], "coordinator", actor=ADMIN, reason="delegation log updated")
    set_staff_active(db, staff["id"], False, actor=ADMIN, reason="left")
    rows = audit_for_entity(db, "staff", staff["id"])
    assert [r["action"] for r in rows] == ["staff.create", "staff.role_change", "staff.disable"]
    assert rows[1]["detail"] == {"old": "monitor", "new": "coordinator", "reason": "delegation log updated"}
    assert get_staff(db, staff["id"])["active"] == 0


def test_sites(db):
    assert [s["code"] for s in list_sites(db)] == ["BJ01", "SH02"]
    assert get_site(db, "BJ01")["name"].startswith("Xuanwu")


def test_enrolment_rules(db):
    p = get_participant(db, "S-001")
    assert (p["onset_precision"], p["tz"], p["status"]) == ("month", "Asia/Shanghai", "active")
    assert get_participant(db, "S-002")["onset_precision"] == "day"
    for kwargs, code in (({"tz": "Mars/Base"}, "validation.invalid"),):
        with pytest.raises(EproError) as err:
            enroll(db, "S-003", "BJ01", "2023-05", "2025-03-01", actor=ADMIN, **kwargs)
        assert err.value.code == code
    with pytest.raises(EproError) as err:
        enroll(db, "S-001", "BJ01", "2023-05", "2025-03-01", actor=ADMIN)
    assert err.value.code == "participant.exists"
    with pytest.raises(EproError):
        enroll(db, "S-004", "BJ01", "May 2023", "2025-03-01", actor=ADMIN)
    with pytest.raises(EproError):
        enroll(db, "S-004", "BJ01", "2023-05", "2025-13-01", actor=ADMIN)


def test_first_dose_change_keeps_history_and_needs_a_reason(db):
    with pytest.raises(EproError):
        set_first_dose(db, "S-001", "2025-03-08", reason=" ", actor=ADMIN)
    set_first_dose(db, "S-001", "2025-03-08", reason="product delivery delayed", actor=ADMIN)
    assert get_participant(db, "S-001")["first_dose_date"] == "2025-03-08"
    row = dict(db.query("SELECT * FROM first_dose_changes").__next__())
    assert (row["old_date"], row["new_date"], row["reason"]) == ("2025-03-01", "2025-03-08",
                                                                  "product delivery delayed")
    detail = audit_for_entity(db, "participant", "S-001")[-1]["detail"]
    assert detail == {"old": "2025-03-01", "new": "2025-03-08", "reason": "product delivery delayed"}


def test_withdrawal_stops_collection_and_deletes_nothing(client, db):
    dev = pair(client, db)
    upload(client, dev["token"], [make_nasal("S-001")])
    withdraw(db, "S-001", reason="participant's decision", actor=ADMIN)
    p = get_participant(db, "S-001")
    assert p["status"] == "withdrawn" and p["withdrawn_at"] and p["withdrawal_reason"]
    assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 1
    with pytest.raises(EproError) as err:
        withdraw(db, "S-001", reason="again", actor=ADMIN)
    assert err.value.code == "participant.already_withdrawn"


def test_caregivers_are_named_identities_of_one_participant(db):
    cg = add_caregiver(db, "S-001", "Wang Li", actor=ADMIN)
    assert [c["name"] for c in caregivers_for(db, get_participant(db, "S-001")["id"])] == ["Wang Li"]
    assert cg["caregiver_id"] and cg["subject"] == "S-001"
    with pytest.raises(EproError):
        add_caregiver(db, "S-001", "  ", actor=ADMIN)


def test_participants_for_site_only_lists_that_site_with_counts(client, db):
    dev = pair(client, db)
    upload(client, dev["token"], [make_nasal("S-001"), {"participant": "S-001"}])
    bj = participants_for_site(db, get_site(db, "BJ01")["id"])
    assert [p["subject"] for p in bj] == ["S-001", "S-002"]
    s1 = bj[0]
    assert (s1["record_count"], s1["active_devices"], s1["quarantined"]) == (1, 1, 1)
    assert [p["subject"] for p in participants_for_site(db, get_site(db, "SH02")["id"])] == ["S-101"]
