"""Device tokens rotate on every N-th upload without breaking any client (IA-13, contract §2).

The new token comes in the optional ``device_token`` field; the old one stays current until the new
one is used, then works for the grace window; revocation kills every token of the device at once.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from server import create_app
from server.clock import utc_now
from server.store.audit import audit_rows
from server.store.devices import authenticate_device, revoke_device
from shared.errors import EproError
from tests.server.helpers import ADMIN, assert_error, pair, upload
from tests.support.records import make_nasal

CHANGES = "/api/v1/sync/changes?since=0"


@pytest.fixture
def rotating(db_path):
    return create_app({"DB": str(db_path), "TESTING": True, "TOKEN_ROTATE_EVERY_SYNCS": 3,
                       "TOKEN_GRACE_SECONDS": 3600}).test_client()


def changes(client, token):
    return client.get(CHANGES, headers={"Authorization": f"Bearer {token}"})


def test_a_client_that_ignores_rotation_keeps_working(rotating, db):
    token = pair(rotating, db)["token"]
    offered = []
    for _ in range(10):
        resp = upload(rotating, token, [make_nasal()])
        assert resp.status_code == 200
        body = resp.get_json()
        assert set(body) <= {"results", "server_time", "device_token"}
        if "device_token" in body:
            offered.append(body["device_token"])
    assert len(offered) == 3 and len(set(offered)) == 3          # every 3rd upload, a fresh one
    assert changes(rotating, token).status_code == 200
    assert audit_rows(db, action="device.token_rotated") == []  # never used: the old one stays current


def test_the_new_token_takes_over_and_the_old_one_works_for_the_grace_window(rotating, db):
    paired = pair(rotating, db)
    old = paired["token"]
    bodies = [upload(rotating, old, [make_nasal()]).get_json() for _ in range(3)]
    new = bodies[-1]["device_token"]
    assert all("device_token" not in b for b in bodies[:2])
    assert changes(rotating, new).status_code == 200              # first use: it becomes current
    assert audit_rows(db, action="device.token_rotated")[0]["entity_id"] == paired["device_id"]
    resp = upload(rotating, old, [make_nasal()])                  # an offline client's old token, once
    assert resp.status_code == 200 and "device_token" not in resp.get_json()
    assert len(audit_rows(db, action="device.previous_token_used")) == 1
    later = utc_now() + timedelta(seconds=3601)
    with pytest.raises(EproError) as err:
        authenticate_device(db, old, now=later, grace_seconds=3600)
    assert err.value.code == "auth.token_invalid"
    assert authenticate_device(db, new, now=later)["id"] == paired["device_id"]
    stored = "\n".join(db.iterdump())
    assert old not in stored and new not in stored                # hashes only


def test_revocation_kills_current_pending_and_previous_tokens_at_once(rotating, db):
    paired = pair(rotating, db)
    old = paired["token"]
    for _ in range(3):
        body = upload(rotating, old, [make_nasal()]).get_json()
    new = body["device_token"]
    assert changes(rotating, new).status_code == 200
    for _ in range(3):
        body = upload(rotating, new, [make_nasal()]).get_json()
    pending = body["device_token"]
    revoke_device(db, paired["device_id"], reason="lost", actor=ADMIN)
    for token in (old, new, pending):
        assert_error(upload(rotating, token, [make_nasal()]), 401, "auth.device_revoked")


def test_rotation_off_by_setting_zero(db_path, db):
    client = create_app({"DB": str(db_path), "TESTING": True, "TOKEN_ROTATE_EVERY_SYNCS": 0}).test_client()
    token = pair(client, db)["token"]
    assert all("device_token" not in upload(client, token, [make_nasal()]).get_json() for _ in range(5))
