"""`make demo`: one command that shows the whole of ALS ePRO on its own demo database.

1. builds (or rebuilds) the demo database with `als-epro-server demo` — never the default database;
2. serves it with the production WSGI server on 127.0.0.1;
3. pairs a desktop client (its own data folder) to participant 001-001 over HTTP, as a site would;
4. where a display exists, opens the desktop client; otherwise says so and prints how to look;
5. site alerts: a local SMTP catcher (127.0.0.1, nothing leaves the machine) takes the server's mail; the
   demo puts the investigator on call, plants an urgent safety flag through the sync API and prints the
   file its alert mail landed in;
6. interactive: keeps serving until Ctrl-C. Not interactive (no terminal): walks through the system once —
   an entry made on the client, sent, received with a receipt; the staff page; an export verified — and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PY = sys.executable


def say(text: str = "") -> None:
    print(text, flush=True)


def server_cli(db: Path, *args: str) -> dict:
    out = subprocess.run([PY, "-m", "server", "--db", str(db), *args, "--json"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(out.returncode)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def start_server(db: Path, port: int, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PY, "-m", "server", "--db", str(db), "serve", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    for line in proc.stdout:  # the server prints one line when it listens, then nothing on stdout
        if line.startswith("serving on "):
            return proc, line.split("serving on ", 1)[1].strip().rstrip("/")
    raise SystemExit(f"the server stopped before it listened (exit {proc.wait()})")


def alert_env(mail_port: int, port: int) -> dict:
    """The server's alert settings for the demo: mail to the local catcher, links to this server."""
    return {"ALS_EPRO_SMTP_HOST": "127.0.0.1", "ALS_EPRO_SMTP_PORT": str(mail_port),
            "ALS_EPRO_SMTP_SECURITY": "none", "ALS_EPRO_SMTP_FROM": "alerts@demo.als-epro",
            "ALS_EPRO_PUBLIC_URL": f"http://127.0.0.1:{port}", "ALS_EPRO_ALERTS_INTERVAL_SECONDS": "2"}


def plant_urgent_flag(url: str, db: Path, subject: str, catcher) -> str:
    """Pair a second device for ``subject``, sync a diary with a severe symptom, wait for the mail."""
    import uuid

    code = server_cli(db, "pairing-code", subject, "--role", "participant")["code"]
    req = urllib.request.Request(url + "/api/v1/devices/pair", method="POST",
                                 data=json.dumps({"code": code, "device_name": "demo alert device"}).encode(),
                                 headers={"Content-Type": "application/json"})
    token = json.loads(urllib.request.urlopen(req, timeout=10).read())["token"]
    now = datetime.now(timezone.utc).astimezone()
    from shared.instruments import load_instrument
    from shared.vocab import NASAL_SYMPTOMS
    symptoms = {name: 0 for name in NASAL_SYMPTOMS}
    symptoms["allergic_signs"] = 3
    day = now.date().isoformat()
    offset = now.isoformat()[-6:]
    envelope = {"id": str(uuid.uuid4()), "type": "nasal_symptoms", "schema_version": 1,
                "instrument_version": load_instrument("nasal_symptoms").version_string("en"), "participant": subject, "respondent": "participant",
                "event_time": f"{day}T00:00:00{offset}", "entered_at": now.isoformat(timespec="seconds"),
                "device_seq": 1, "payload": {"date": day, "symptoms": symptoms, "epistaxis_needed_help": False,
                                             "sought_medical_care": False, "notes": ""}}
    req = urllib.request.Request(url + "/api/v1/sync/records", method="POST",
                                 data=json.dumps({"records": [envelope]}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    result = json.loads(urllib.request.urlopen(req, timeout=10).read())["results"][0]
    if result["status"] != "accepted":
        return f"alerts: the planted diary was not accepted ({result})"
    # other demo participants' urgent flags may be mailed too: wait for the one naming this subject
    with catcher.arrived:
        found = catcher.arrived.wait_for(
            lambda: any(subject in str(m["Subject"]) for m in catcher.messages[:len(catcher.files)]), timeout=60)
    if not found:
        return f"alerts: no alert mail for {subject} arrived within 60 s (see Admin → Alerts)"
    index = next(i for i, m in enumerate(catcher.messages) if subject in str(m["Subject"]))
    msg = catcher.messages[index]
    return f"alerts: urgent flag for {subject} planted; its mail to {msg['To']} (\"{msg['Subject']}\") landed in {catcher.files[index]}"


def pair_client(url: str, db: Path, data_dir: Path, subject: str) -> str:
    from desktop.clock import SystemClock
    from desktop.store import Store
    from desktop.sync.credentials import TokenStore
    from desktop.sync.pairing import pair_device

    code = server_cli(db, "pairing-code", subject, "--role", "participant")["code"]
    if data_dir.exists():
        shutil.rmtree(data_dir)
    from desktop.store.keys import keyring_usable, open_store, write_site_policy
    if not keyring_usable():            # the demo machine has no keyring: the demo site allows plain
        write_site_policy(data_dir, True)
    store = open_store(data_dir)
    try:
        pairing = pair_device(store, TokenStore(data_dir), SystemClock(), url, code, "Demo computer")
        if pairing.role == "caregiver":
            return f"caregiver of participant {pairing.participant}"
        return f"participant {pairing.participant}"
    finally:
        store.close()


def walk_through(url: str, data_dir: Path, db: Path, demo: dict, out_dir: Path) -> list[str]:
    """Use the system once, end to end, as its people would; return what was seen."""
    from desktop.clock import SystemClock
    from desktop.services.entries import EntryService
    from desktop.store import Store
    from desktop.sync.credentials import TokenStore
    from desktop.sync.engine import SyncEngine
    from desktop.sync.transport import HttpTransport
    from shared.instruments import load_instrument
    from shared.vocab import NASAL_SYMPTOMS

    seen = []
    clock = SystemClock()
    from desktop.store.keys import open_store
    store = open_store(data_dir)
    try:
        svc = EntryService(store, clock)
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(store.settings.pairing().protocol.get("timezone", "Asia/Shanghai")) \
            if isinstance(getattr(store.settings.pairing(), "protocol", None), dict) else ZoneInfo("Asia/Shanghai")
        today = datetime.now(zone).date().isoformat()
        draft = svc.start("nasal_symptoms", {"date": today, "dosing_day": False})
        draft.answers = {"respondent": "participant",
                         "symptoms": {n: 0 for n in NASAL_SYMPTOMS if n != "cough_choking_dosing"},
                         "sought_medical_care": False}
        svc.save(draft)
        entry = svc.submit(draft, "en").entry
        seen.append(f"client: nasal diary for {today} saved on this computer")
        pairing = store.settings.pairing()
        token = TokenStore(data_dir).load(pairing.device_id)
        result = SyncEngine(store, HttpTransport(pairing.server_url, token), clock).run()
        row = store.outbox.get(entry.id)
        state = row.state if row is not None else "missing"
        receipt = getattr(row, "receipt", None) or {}
        seen.append(f"client: sent; outcome {getattr(result, 'outcome', result)}; entry state now '{state}'"
                    + (f", receipt server_seq {receipt.get('server_seq')}" if receipt else ""))
    finally:
        store.close()
    # staff pages: sign in as the investigator and open the participant with a nosebleed flag
    import re
    import urllib.parse

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        html = opener.open(url + "/staff/login", timeout=10).read().decode("utf-8")
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        form = urllib.parse.urlencode({"csrf_token": token, "next": "", "email": demo["staff"][0]["email"],
                                       "password": demo["password"]}).encode()
        opener.open(url + "/staff/login", data=form, timeout=10).read()
        page = opener.open(url + "/staff/participants/001-002", timeout=10).read().decode("utf-8")
        banner = "with the DEMO banner" if "DEMO" in page else "WITHOUT the DEMO banner"
        flagged = "nosebleed flag shown" if re.search(r"[Nn]osebleed|Epistaxis", page) else "no flag found"
        seen.append(f"staff: signed in as {demo['staff'][0]['email']}; participant 001-002 page {banner}, {flagged}")
    except Exception as err:  # noqa: BLE001 - the demo reports what it saw
        seen.append(f"staff: pages not reachable ({err})")
    # export
    exp = subprocess.run([PY, "-m", "server", "--db", str(db), "export", "--format", "all", "--out", str(out_dir)],
                         cwd=ROOT, capture_output=True, text=True)
    if exp.returncode == 0:
        ver = subprocess.run([PY, "-m", "server", "--db", str(db), "export", "verify", str(out_dir)],
                             cwd=ROOT, capture_output=True, text=True)
        seen.append(f"export: {out_dir} written; verify {'OK' if ver.returncode == 0 else 'FAILED'}")
    else:
        seen.append(f"export: not available ({exp.stderr.strip().splitlines()[-1:] or exp.returncode})")
    return seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="var/demo/als-epro-demo.sqlite")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--once", action="store_true", help="walk through once and exit, even with a terminal")
    args = ap.parse_args(argv)
    db = (ROOT / args.db).resolve()
    var = db.parent
    say("ALS ePRO demo — DEMO: synthetic data only")
    demo = server_cli(db, "demo")
    say(f"  demo database: {db} ({demo['records']} records, {len(demo['participants'])} participants)")
    for p in demo["participants"]:
        say(f"    {p['subject']}: {p['story']}")
    from server.demo.mailcatcher import MailCatcher, free_port

    mail_dir = var / "mail"
    shutil.rmtree(mail_dir, ignore_errors=True)
    catcher = MailCatcher(folder=mail_dir).start()
    server_cli(db, "alerts", "oncall", "add", demo["staff"][0]["email"], "--site", demo["site"])
    port = args.port or free_port()
    try:
        proc, url = start_server(db, port, alert_env(catcher.port, port))
    except SystemExit:
        port = free_port()
        proc, url = start_server(db, port, alert_env(catcher.port, port))
    say(f"  mail catcher: smtp://127.0.0.1:{catcher.port} — every alert mail is saved in {mail_dir}")
    say(f"  server: {url}  (production WSGI server, 127.0.0.1 only)")
    say(f"  staff pages: {url}/staff/  — log in as {demo['staff'][0]['email']} "
        f"(or coordinator@/monitor@/admin@demo.als-epro), password {demo['password']}")
    client_dir = var / "client-001-001"
    try:
        who = pair_client(url, db, client_dir, "001-001")
        say(f"  desktop client: paired as {who}; data folder {client_dir}")
        say(f"  {plant_urgent_flag(url, db, '001-003', catcher)}")
        interactive = sys.stdin.isatty() and not args.once
        client = None
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            client = subprocess.Popen([PY, "-m", "desktop", "--data-dir", str(client_dir)], cwd=ROOT)
            say("  desktop client: opened on your display")
        else:
            say("  desktop client: no display here, so it is not opened. To look at it:")
            say(f"      xvfb-run -a {PY} -m desktop --data-dir {client_dir}   (a virtual screen)")
            say("      make screenshots    (every screen, both languages, into screenshots/)")
        if interactive:
            say("\nServing. Press Ctrl-C to stop.")
            try:
                proc.wait()
            except KeyboardInterrupt:
                pass
        else:
            say("\nNo terminal: walking through the system once.")
            if client is not None:
                client.terminate()
            out_dir = var / f"export-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
            for line in walk_through(url, client_dir, db, demo, out_dir):
                say(f"  {line}")
    finally:
        catcher.stop()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
