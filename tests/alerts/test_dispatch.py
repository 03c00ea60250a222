"""The alert outbox in-process, with a real SMTP server (aiosmtpd) and a real HTTP receiver, and time
driven through the dispatcher's ``now``: urgent flags reach the on-call list once, failures are retried
with backoff and become visible, other flags go in a daily digest in each person's language."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from server.alerts import (
    add_oncall, backoff_seconds, deliveries, dispatch, remove_oncall, save_settings, unalerted_flags,
)
from server.store.audit import Actor
from shared.protocol import check_urgent, load_protocol
from tests.alerts.conftest import alert_config
from tests.server.helpers import pair, upload
from tests.support.records import make_dose, make_nasal

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=timezone.utc)       # 11:00 in Beijing
ADMIN = Actor("test", "admin")


def staff_id(db, email):
    return db.execute("SELECT id FROM staff WHERE email = ?", [email]).fetchone()[0]


def site_id(db, code="BJ01"):
    return db.execute("SELECT id FROM sites WHERE code = ?", [code]).fetchone()[0]


def on_call(db, *emails, webhook=None, lang="en"):
    for email in emails:
        sid = staff_id(db, email)
        add_oncall(db, site_id(db), sid, ADMIN, now=T0)
        save_settings(db, sid, email_enabled=True, digest_enabled=True, lang=lang, webhook_url=webhook,
                      actor=Actor.staff(sid), now=T0)


def severe(subject="S-001", **over):
    rec = make_nasal(subject, grades={"congestion": 3}, **over)
    rec["payload"]["notes"] = "free text never leaves"
    return rec


def audit_actions(db, entity_id_like):
    return [r[0] for r in db.execute("SELECT action FROM audit WHERE entity = 'alert_delivery' AND entity_id LIKE ?"
                                     " ORDER BY seq", [entity_id_like])]


def test_an_urgent_flag_from_the_sync_api_reaches_everyone_on_call_once(world, mail, hook):
    app, db = world
    cfg = alert_config(app, mail)
    protocol = load_protocol()
    on_call(db, "inv@bj01.example", webhook=hook.url)
    on_call(db, "coord@bj01.example", lang="zh-CN")
    dispatch(db, protocol, cfg, now=T0)              # alerting starts before the record arrives
    dev = pair(app.test_client(), db, "S-001")
    assert upload(app.test_client(), dev["token"], [severe()]).status_code == 200

    out = dispatch(db, protocol, cfg, now=T0 + timedelta(seconds=15))
    assert (out["new_flags"], out["queued"], out["sent"]) == (1, 3, 3)
    assert mail.wait_for(2) and hook.wait_for(1)
    by_to = {m["To"]: m for m in mail.messages}
    assert set(by_to) == {"inv@bj01.example", "coord@bj01.example"}
    en, zh = by_to["inv@bj01.example"], by_to["coord@bj01.example"]
    assert "S-001" in en["Subject"] and "Severe symptom reported" in en["Subject"]
    assert "紧急安全提示" in zh["Subject"] and "报告了重度症状" in zh["Subject"]
    body = en.get_content()
    assert "https://epro.example.org/staff/participants/S-001" in body
    post = hook.posts[0]["json"]
    assert post["msgtype"] == "text" and "S-001" in post["text"]["content"]
    assert post["als_epro"]["flags"] == [{"participant": "S-001", "rule": "symptom_severe",
                                          "rule_title": "Severe symptom reported",
                                          "link": "https://epro.example.org/staff/participants/S-001"}]
    assert hook.posts[0]["headers"]["Idempotency-Key"].startswith("urgent:symptom_severe:")
    # never a grade, a score, a symptom name or free text
    for text in (body, zh.get_content(), post["text"]["content"], str(post)):
        assert "free text" not in text and "congestion" not in text and " 3" not in text.replace("S-00", "")

    # more runs, and the same flag seen again, send nothing more
    for k in range(3):
        dispatch(db, protocol, cfg, now=T0 + timedelta(minutes=1 + k))
    assert len(mail.messages) == 2 and len(hook.posts) == 1
    key = deliveries(db)[0]["idem_key"]
    assert audit_actions(db, key) == ["alert.enqueue", "alert.attempt", "alert.sent"]


def test_smtp_down_is_retried_with_backoff_and_delivered_once_it_is_back(world):
    from server.demo.mailcatcher import MailCatcher, free_port

    app, db = world
    port = free_port()                                  # nothing listens there yet
    cfg = alert_config(app, None, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    protocol = load_protocol()
    on_call(db, "inv@bj01.example")
    dispatch(db, protocol, cfg, now=T0)
    dev = pair(app.test_client(), db, "S-001")
    upload(app.test_client(), dev["token"], [severe()])
    now = T0 + timedelta(seconds=10)
    assert dispatch(db, protocol, cfg, now=now)["retry"] == 1
    row = deliveries(db)[0]
    assert row["status"] == "pending" and "ConnectionRefused" in row["last_error"]
    assert row["next_attempt_at"] > now.isoformat()[:19]
    assert dispatch(db, protocol, cfg, now=now + timedelta(seconds=5))["retry"] == 0      # not due yet
    now += timedelta(seconds=backoff_seconds(cfg, 1))
    assert dispatch(db, protocol, cfg, now=now)["retry"] == 1                               # still down
    assert deliveries(db)[0]["attempts"] == 2
    with MailCatcher(port) as mail:                                                         # back
        now += timedelta(seconds=backoff_seconds(cfg, 2))
        assert dispatch(db, protocol, cfg, now=now)["sent"] == 1
        assert mail.wait_for(1) and len(mail.messages) == 1
        dispatch(db, protocol, cfg, now=now + timedelta(hours=1))
        assert len(mail.messages) == 1
    key = deliveries(db)[0]["idem_key"]
    assert audit_actions(db, key) == ["alert.enqueue", "alert.attempt", "alert.retry", "alert.attempt",
                                      "alert.retry", "alert.attempt", "alert.sent"]


def test_backoff_keeps_retrying_for_24_hours_then_the_failure_is_final_and_visible(world, mail):
    app, db = world
    with __import__("tests.alerts.receiver", fromlist=["HookReceiver"]).HookReceiver(status=500) as hook:
        cfg = alert_config(app, mail)
        protocol = load_protocol()
        on_call(db, "inv@bj01.example", webhook=hook.url)
        dispatch(db, protocol, cfg, now=T0)
        dev = pair(app.test_client(), db, "S-001")
        upload(app.test_client(), dev["token"], [severe()])
        now = T0
        attempts_at = []
        for _ in range(200):            # jump to each next attempt the outbox asks for
            waiting = [r for r in deliveries(db) if r["status"] == "pending"]
            now = max([now + timedelta(seconds=1)]
                      + [datetime.fromisoformat(r["next_attempt_at"].replace("Z", "+00:00")) for r in waiting])
            before = len(hook.posts)
            dispatch(db, protocol, cfg, now=now)
            if len(hook.posts) > before:
                attempts_at.append(now)
            if deliveries(db, status="failed"):
                break
        by_channel = {r["channel"]: r for r in deliveries(db)}
        assert by_channel["email"]["status"] == "sent"                  # the mail was not held up
        failed = by_channel["webhook"]
        assert failed["status"] == "failed" and failed["last_error"] == "webhook: HTTP 500"
        assert attempts_at[-1] - T0 >= timedelta(hours=24)
        gaps = [b - a for a, b in zip(attempts_at, attempts_at[1:])]
        assert gaps[0] < gaps[3] and max(gaps) <= timedelta(seconds=cfg["ALERTS_BACKOFF_MAX_SECONDS"] + 30)
        # one delivery of the flag still succeeded: the flag is not "unalerted"
        assert unalerted_flags(db, site_id(db)) == {}


def test_a_bad_address_fails_at_once_visibly_and_blocks_no_one_else(world, mail):
    app, db = world
    cfg = alert_config(app, mail)
    protocol = load_protocol()
    db.execute("UPDATE staff SET email = 'nobody@invalid.example' WHERE email = 'coord@bj01.example'")
    db.conn.commit()
    on_call(db, "nobody@invalid.example", "inv@bj01.example")
    dispatch(db, protocol, cfg, now=T0)
    dev = pair(app.test_client(), db, "S-001")
    upload(app.test_client(), dev["token"], [severe()])
    out = dispatch(db, protocol, cfg, now=T0 + timedelta(seconds=20))
    assert (out["sent"], out["failed"]) == (1, 1)
    assert [m["To"] for m in mail.messages] == ["inv@bj01.example"]
    bad = deliveries(db, status="failed")[0]
    assert bad["address"] == "nobody@invalid.example" and "550" in bad["last_error"]
    # when every delivery of an urgent flag failed, the participants list says so
    remove_oncall(db, site_id(db), staff_id(db, "inv@bj01.example"), ADMIN)
    dev2 = pair(app.test_client(), db, "S-002")
    upload(app.test_client(), dev2["token"], [severe("S-002")])
    dispatch(db, protocol, cfg, now=T0 + timedelta(seconds=40))
    pid = db.execute("SELECT id FROM participants WHERE subject = 'S-002'").fetchone()[0]
    assert [f["rule"] for f in unalerted_flags(db, site_id(db))[pid]] == ["symptom_severe"]


def test_other_flags_go_in_one_daily_digest_per_person_in_their_language(world, mail):
    app, db = world
    cfg = alert_config(app, mail)
    protocol = load_protocol()
    on_call(db, "inv@bj01.example", lang="zh-CN")
    on_call(db, "coord@bj01.example")
    dispatch(db, protocol, cfg, now=T0)
    dev = pair(app.test_client(), db, "S-001")
    # a missed dose is urgent in the protocol file; an epistaxis grade 2 is not
    upload(app.test_client(), dev["token"], [make_nasal("S-001", grades={"epistaxis": 2}),
                                             make_nasal("S-001", grades={"epistaxis": 2},
                                                        day=datetime(2025, 3, 2).date())])
    out = dispatch(db, protocol, cfg, now=T0 + timedelta(minutes=1))
    assert out["new_flags"] >= 2 and out["queued"] == 0 and not mail.messages
    # the next 08:00 in Beijing is 00:00 UTC the next day
    assert dispatch(db, protocol, cfg, now=datetime(2026, 12, 4, 23, 59, tzinfo=timezone.utc))["sent"] == 0
    out = dispatch(db, protocol, cfg, now=datetime(2026, 12, 5, 0, 0, 30, tzinfo=timezone.utc))
    assert out["sent"] == 2 and mail.wait_for(2)
    by_to = {m["To"]: m for m in mail.messages}
    assert "每日汇总" in by_to["inv@bj01.example"]["Subject"]
    assert "Daily digest" in by_to["coord@bj01.example"]["Subject"]
    assert by_to["coord@bj01.example"].get_content().count("Participant S-001") >= 2
    dispatch(db, protocol, cfg, now=datetime(2026, 12, 5, 1, 0, tzinfo=timezone.utc))
    assert len(mail.messages) == 2


def test_records_stored_before_alerting_existed_raise_no_alert(world, mail):
    app, db = world
    dev = pair(app.test_client(), db, "S-001")
    upload(app.test_client(), dev["token"], [severe()])      # before the first dispatcher run
    on_call(db, "inv@bj01.example")
    out = dispatch(db, load_protocol(), alert_config(app, mail), now=T0)
    assert out["queued"] == 0 and not mail.messages


def test_a_missed_dose_is_urgent(world, mail):
    app, db = world
    on_call(db, "inv@bj01.example")
    cfg = alert_config(app, mail)
    dispatch(db, load_protocol(), cfg, now=T0)
    dev = pair(app.test_client(), db, "S-001", role="caregiver")
    upload(app.test_client(), dev["token"], [make_dose("S-001", given=False)])
    assert dispatch(db, load_protocol(), cfg, now=T0 + timedelta(seconds=5))["sent"] == 1
    assert "Dose not given" in mail.messages[0]["Subject"]


def test_the_protocol_file_refuses_unknown_urgent_rules():
    check_urgent({"flags": {"urgent": {"symptom_severe": True, "dose_not_confirmed": False}}})
    with pytest.raises(ValueError, match="unknown flag rules.*symptom_sever"):
        check_urgent({"flags": {"urgent": {"symptom_sever": True}}})
    with pytest.raises(ValueError, match="true or false"):
        check_urgent({"flags": {"urgent": {"symptom_severe": "yes"}}})
    assert load_protocol().is_urgent("symptom_severe") and not load_protocol().is_urgent("alsfrs_drop")
