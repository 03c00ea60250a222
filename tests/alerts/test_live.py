"""Alerts end to end: a real ``als-epro-server serve`` process (its scheduler runs the dispatcher), a
real SMTP server (aiosmtpd) and a real HTTP receiver. Waits are bounded waits on conditions."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone

import pytest

from server.alerts import save_settings
from server.db import open_db
from server.demo.mailcatcher import MailCatcher
from server.store.audit import Actor
from tests.alerts.receiver import HookReceiver
from tests.support.live_server import LiveServer
from tests.support.records import make_nasal

pytestmark = pytest.mark.slow


def _env(mail: MailCatcher) -> dict[str, str]:
    return {"ALS_EPRO_SMTP_HOST": "127.0.0.1", "ALS_EPRO_SMTP_PORT": str(mail.port), "ALS_EPRO_SMTP_SECURITY": "none",
            "ALS_EPRO_SMTP_FROM": "alerts@site.example", "ALS_EPRO_PUBLIC_URL": "https://epro.example.org",
            "ALS_EPRO_ALERTS_INTERVAL_SECONDS": "1", "ALS_EPRO_ALERTS_LEASE_SECONDS": "1"}


def _severe():
    return make_nasal("S-001", grades={"allergic_signs": 3}, entered_at=datetime.now(timezone.utc))


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)          # polling a database file, bounded by the deadline
    return False


def _status(srv) -> list[tuple[str, str]]:
    db = open_db(srv.db_path)
    try:
        return [tuple(r) for r in db.execute("SELECT channel, status FROM alert_outbox ORDER BY id")]
    finally:
        db.close()


def _prepare(srv, webhook: str | None = None) -> None:
    srv.prepare()
    srv.cli("alerts", "oncall", "add", srv.staff_email, "--site", srv.site)
    if webhook:
        db = open_db(srv.db_path)
        try:
            sid = db.execute("SELECT id FROM staff WHERE email = ?", [srv.staff_email]).fetchone()[0]
            save_settings(db, sid, email_enabled=True, digest_enabled=True, lang="en", webhook_url=webhook,
                          actor=Actor.staff(sid))
        finally:
            db.close()


def test_a_flag_synced_to_a_real_server_reaches_mail_and_webhook_within_a_minute(tmp_path):
    with MailCatcher() as mail, HookReceiver() as hook:
        srv = LiveServer(tmp_path, jobs=True, env=_env(mail))
        try:
            _prepare(srv, hook.url)
            srv.start()
            dev = srv.pair("S-001")
            started = time.monotonic()
            status, body = srv.request("POST", "/api/v1/sync/records", {"records": [_severe()]}, token=dev["token"])
            assert status == 200 and body["results"][0]["status"] == "accepted"
            assert mail.wait_for(1, timeout=60) and hook.wait_for(1, timeout=60), srv.log()
            elapsed = time.monotonic() - started
            assert elapsed < 60
            msg = mail.messages[0]
            assert msg["To"] == srv.staff_email
            assert "S-001" in msg["Subject"] and "https://epro.example.org/staff/participants/S-001" in msg.get_content()
            assert hook.posts[0]["json"]["als_epro"]["flags"][0]["participant"] == "S-001"
            assert _wait(lambda: _status(srv) == [("email", "sent"), ("webhook", "sent")])
        finally:
            srv.stop()


def test_sigkill_between_send_and_record_gives_at_most_one_duplicate_after_restart(tmp_path):
    killed = []

    def crash(_msg):
        if not killed:            # the mail server has the message; the sender dies before it hears "250"
            killed.append(True)
            os.kill(srv.proc.pid, signal.SIGKILL)

    with MailCatcher(on_data=crash) as mail:
        srv = LiveServer(tmp_path, jobs=True, env=_env(mail))
        try:
            _prepare(srv)
            srv.start()
            dev = srv.pair("S-001")
            status, _ = srv.request("POST", "/api/v1/sync/records", {"records": [_severe()]}, token=dev["token"])
            assert status == 200
            assert mail.wait_for(1, timeout=60)
            assert _wait(lambda: srv.proc.poll() is not None, 10)
            srv.kill()
            assert _status(srv) == [("email", "sending")]       # claimed, never recorded
            srv.start(srv.port)
            assert _wait(lambda: _status(srv) == [("email", "sent")], 60), srv.log()
            srv.cli("alerts", "send-pending")                     # and more runs change nothing
            srv.terminate()                                       # a clean restart too
            srv.start(srv.port)
            srv.cli("alerts", "send-pending")
            assert "alert dispatcher run failed" not in srv.log()
            assert len(mail.messages) == 2                        # the documented single duplicate ...
            assert mail.messages[0]["Message-ID"] == mail.messages[1]["Message-ID"]   # ... recognisable
            db = open_db(srv.db_path)
            try:
                actions = [r[0] for r in db.execute("SELECT action FROM audit WHERE entity = 'alert_delivery'"
                                                    " ORDER BY seq")]
            finally:
                db.close()
            assert actions == ["alert.enqueue", "alert.attempt", "alert.interrupted", "alert.attempt", "alert.sent"]
        finally:
            srv.stop()


def test_a_crash_before_the_send_gives_no_duplicate(tmp_path):
    """The kill comes after the claim is committed and before any byte reaches the mail server: the mail
    server is down then, so the claim fails; after the restart exactly one mail arrives."""
    port_holder = MailCatcher()
    srv = LiveServer(tmp_path, jobs=True, env=_env(port_holder))
    try:
        _prepare(srv)
        srv.start()
        dev = srv.pair("S-001")
        srv.request("POST", "/api/v1/sync/records", {"records": [_severe()]}, token=dev["token"])
        assert _wait(lambda: _status(srv) and _status(srv)[0][1] in ("pending", "sending"))
        srv.kill()
        with port_holder as mail:
            srv.start(srv.port)
            assert mail.wait_for(1, timeout=60)
            assert _wait(lambda: _status(srv) == [("email", "sent")])
            srv.cli("alerts", "send-pending")
            assert len(mail.messages) == 1
    finally:
        srv.stop()
