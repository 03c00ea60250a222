"""The composition root: ``--smoke`` start-up, the data dir, and the scheduler's jobs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from desktop.app import parse_args
from desktop.store import Store
from desktop.store.keys import SITE_FILE, write_site_policy
from desktop.ui.qt import QLineEdit
from desktop.ui.scheduling import start_scheduler
from desktop.ui.widgets import WrapButton

from tests.desktop.helpers import fill_alsfrs
from tests.tools.scenes import pair

ROOT = Path(__file__).resolve().parents[2]


def smoke(data_dir: Path, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    if not (data_dir / SITE_FILE).exists():
        write_site_policy(data_dir, True)        # no keyring on this machine: the site allows plain
    out = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", str(data_dir), "--smoke", *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_smoke_shows_pairing_then_today_and_keeps_state_in_the_data_dir(tmp_path):
    data = tmp_path / "client"
    line = smoke(data, "--lang", "zh-CN")
    assert "screen=pairing" in line and "paired=no" in line and "lang=zh-CN" in line
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "als-epro.sqlite").stat().st_mode) == 0o600
    s = Store(data)
    pair(s)
    s.close()
    line = smoke(data)
    assert "screen=today" in line and "paired=yes" in line and "lang=en" in line   # --lang is for one run


def test_arguments():
    a = parse_args(["--data-dir", "/x", "--server", "https://e.org"])
    assert (a.data_dir, a.server, a.smoke) == ("/x", "https://e.org", False)


def test_scheduler_jobs_and_the_hop_to_the_main_thread(app):
    sched = start_scheduler(app.ctx)
    try:
        jobs = {j.id: j for j in sched.get_jobs()}
        assert {"sync", "reminders", "reminder:dose", "reminder:diary", "reminder:alsfrs"} <= set(jobs)
        assert jobs["sync"].trigger.interval.total_seconds() == 60
        assert str(jobs["reminder:diary"].trigger.fields[5]) == "20"        # hour field of the cron
        app.w.show_settings()
        field = app.find(QLineEdit, "time_diary")
        field.setText("21:30")
        app.find(WrapButton, "saveTimes").click()
        diary = sched.get_job("reminder:diary").trigger
        assert (str(diary.fields[5]), str(diary.fields[6])) == ("21", "30")
    finally:
        sched.shutdown(wait=False)
    app.ctx.entries.submit(fill_alsfrs(app.ctx.entries), "en")
    # a scheduler job runs on a worker thread: it only emits; the sync starts on the main thread
    t = threading.Thread(target=app.ctx.auto_sync_requested.emit)
    t.start()
    t.join()
    app.qtbot.waitUntil(lambda: app.store.outbox.counts()["received"] == 1, timeout=5000)
    app.settle()


def test_the_program_encrypts_with_the_keyring_key_and_refuses_without_a_keyring(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update(PYTHON_KEYRING_BACKEND="tests.support.filekeyring.FileKeyring",
               ALS_EPRO_TEST_KEYRING=str(tmp_path / "ring.json"))
    data = tmp_path / "client"
    run = [sys.executable, "-m", "desktop", "--data-dir", str(data), "--smoke"]
    out = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (data / "als-epro.sqlite").read_bytes()[:16] != b"SQLite format 3\x00"
    assert "db-key@" in (tmp_path / "ring.json").read_text(encoding="utf-8")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    fresh = tmp_path / "fresh"
    out = subprocess.run([*run[:4], str(fresh), "--smoke"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 3 and "refused: store=keyring" in out.stderr
    assert not (fresh / "als-epro.sqlite").exists()
    out = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "refused: store=key_lost" in out.stderr    # encrypted, key gone
