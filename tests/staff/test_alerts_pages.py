"""The alert pages: admins keep each site's on-call list, everyone their own alert settings (audited,
of a webhook only its host), the deliveries with their failures, and the participants list flags an
urgent flag whose alerts all failed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.alerts import dispatch
from shared.protocol import load_protocol
from tests.server.helpers import pair, upload
from tests.staff.conftest import HTML, csrf_of, login
from tests.support.records import make_nasal


def test_admin_keeps_the_on_call_list_and_sees_failed_deliveries(app, db):
    admin = app.test_client()
    assert login(admin, "admin@bj01.example").status_code == 303
    page = admin.get("/staff/admin/alerts?site=BJ01", headers=HTML)
    assert page.status_code == 200 and "Nobody is on call" in page.get_data(as_text=True)
    sid = db.execute("SELECT id FROM sites WHERE code = 'BJ01'").fetchone()[0]
    coord = db.execute("SELECT id FROM staff WHERE email = 'coord@bj01.example'").fetchone()[0]
    resp = admin.post("/staff/admin/alerts/oncall", data={"csrf_token": csrf_of(page), "site_id": sid,
                                                          "staff_id": coord, "op": "add"}, headers=HTML)
    assert resp.status_code == 303
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action = 'alert.oncall_add' AND entity_id = ?",
                      [str(coord)]).fetchone()[0] == 1
    # an urgent flag; the mail relay is not configured, so after 24 h the delivery fails for good
    cfg = {**app.config, "SMTP_HOST": None}
    t0 = datetime.now(timezone.utc)
    dispatch(db, load_protocol(), cfg, now=t0)
    dev = pair(app.test_client(), db, "S-001")
    upload(app.test_client(), dev["token"], [make_nasal("S-001", grades={"congestion": 3})])
    dispatch(db, load_protocol(), cfg, now=t0 + timedelta(seconds=5))
    dispatch(db, load_protocol(), cfg, now=t0 + timedelta(hours=25))
    text = admin.get("/staff/admin/alerts?site=BJ01&status=failed", headers=HTML).get_data(as_text=True)
    assert "ALS_EPRO_SMTP_HOST is not set" in text and "S-001: Severe symptom reported" in text
    assert "Failures: 2" in text and "S-003: Dose never confirmed" in text   # the seed's missed dose is urgent too
    inv = app.test_client()
    assert login(inv, "inv@bj01.example").status_code == 303
    assert inv.get("/staff/admin/alerts", headers=HTML).status_code == 403
    listing = inv.get("/staff/participants", headers=HTML).get_data(as_text=True)
    assert "Alert not delivered" in listing


def test_staff_set_their_own_alerts_and_the_change_is_audited(app, db):
    c = app.test_client()
    assert login(c, "coord@bj01.example").status_code == 303
    page = c.get("/staff/account/alerts", headers=HTML)
    assert page.status_code == 200 and "not on the on-call list" in page.get_data(as_text=True)
    token = csrf_of(page)
    bad = c.post("/staff/account/alerts", data={"csrf_token": token, "email_enabled": "1", "lang": "zh-CN",
                                                "webhook_url": "http://chat.example.com/hook"}, headers=HTML)
    assert bad.status_code == 303 and db.execute("SELECT COUNT(*) FROM alert_settings").fetchone()[0] == 0
    ok = c.post("/staff/account/alerts", data={"csrf_token": token, "lang": "zh-CN",
                                               "webhook_url": "https://qyapi.example.com/send?key=SECRETKEY"}, headers=HTML)
    assert ok.status_code == 303
    row = db.execute("SELECT email_enabled, digest_enabled, lang, webhook_url FROM alert_settings").fetchone()
    assert tuple(row) == (0, 0, "zh-CN", "https://qyapi.example.com/send?key=SECRETKEY")
    detail = db.execute("SELECT detail FROM audit WHERE action = 'alert.settings_change'").fetchone()[0]
    assert "qyapi.example.com" in detail and "SECRETKEY" not in detail
