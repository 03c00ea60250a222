"""Small helpers for server tests: seeding, pairing through the API, uploading, the error shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.store.audit import Actor
from server.store.pairing import issue_pairing_code
from server.store.participants import enroll
from server.store.sites import add_site
from server.store.staff import add_staff

ADMIN = Actor("test", "seed")
PASSWORD = "correct horse battery staple"
STAFF = {  # email -> (site, role)
    "inv@bj01.example": ("BJ01", "investigator"),
    "coord@bj01.example": ("BJ01", "coordinator"),
    "mon@bj01.example": ("BJ01", "monitor"),
    "admin@bj01.example": ("BJ01", "admin"),
    "inv@sh02.example": ("SH02", "investigator"),
}


def seed(db) -> None:
    """Two sites, one staff member per role, S-001 and S-002 at BJ01, S-101 at SH02."""
    add_site(db, "BJ01", "Xuanwu Hospital study site", actor=ADMIN)
    add_site(db, "SH02", "Second site", actor=ADMIN)
    for email, (site, role) in STAFF.items():
        add_staff(db, email, site, role, PASSWORD, actor=ADMIN, must_change=False)
    enroll(db, "S-001", "BJ01", "2023-05", "2025-03-01", actor=ADMIN)
    enroll(db, "S-002", "BJ01", "2023-07-14", "2025-03-01", actor=ADMIN)
    enroll(db, "S-101", "SH02", "2024-01", "2025-04-01", actor=ADMIN)


def pair(client, db, subject: str = "S-001", role: str = "participant", caregiver_id: int | None = None,
         name: str = "test device") -> dict[str, Any]:
    code = issue_pairing_code(db, subject, role, caregiver_id, actor=ADMIN)["code"]
    resp = client.post("/api/v1/devices/pair", json={"code": code, "device_name": name})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def upload(client, token: str, records: list, client_time: datetime | str | None = None, **kw):
    if isinstance(client_time, datetime):
        client_time = client_time.isoformat()
    body = {"records": records, "client_time": client_time}
    return client.post("/api/v1/sync/records", json=body,
                       headers={"Authorization": f"Bearer {token}"}, **kw)


def assert_error(resp, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error body (contract §2), with this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) >= {"ok", "status", "code", "error", "errors"}
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["code"], str) and body["code"] and isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], list)
    for item in body["errors"]:
        assert set(item) == {"field", "rule", "message"} and all(isinstance(v, str) for v in item.values())
    if code is not None:
        assert body["code"] == code, body
    return body
