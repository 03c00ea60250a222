"""A real server process on 127.0.0.1 for end-to-end tests (any area may use it).

    with LiveServer() as srv:                      # temp DB: init, site, staff, participants
        paired = srv.pair("S-001", "participant")  # CLI pairing-code + HTTP POST /devices/pair
        status, body = srv.request("POST", "/api/v1/sync/records",
                                   {"records": [...], "client_time": ...}, token=paired["token"])
        srv.kill()                                 # SIGKILL, as a crash would
        srv.restart()                              # same DB, same port
        srv.cli("device", "revoke", paired["device_id"], "--reason", "lost")

The server runs ``python -m server serve --host 127.0.0.1 --port 0 --db …`` from the repository root;
start-up waits (bounded) for its ``serving on http://HOST:PORT`` line. Its stderr goes to
``<tmp>/server.log`` (see :meth:`LiveServer.log`).

Stable interface: ``url``, ``port``, ``db_path``, ``tmp_dir``, ``site``, ``subjects``,
``staff_email``, ``staff_password``, ``start()``, ``stop()``, ``kill()``, ``restart()``,
``cli(*args, json=True, input=None, check=True)``, ``pair(subject, role, *, caregiver=None,
device_name=...)``, ``pairing_code(subject, role, caregiver=None)``, ``request(method, path,
body=None, token=None)``, ``log()``.
"""

from __future__ import annotations

import json as jsonlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


class LiveServerError(RuntimeError):
    pass


class LiveServer:
    """Context manager around a real ``als-epro-server serve`` subprocess with its own database."""

    def __init__(self, tmp_dir: str | Path | None = None, *, site: str = "BJ01",
                 site_name: str = "Xuanwu Hospital study site",
                 subjects: tuple[str, ...] = ("S-001", "S-002"), first_dose: str = "2025-03-01",
                 onset: str = "2023-05", tz: str = "Asia/Shanghai",
                 staff_email: str = "investigator@site.example",
                 staff_password: str = "correct horse battery staple",
                 staff_role: str = "investigator", env: dict[str, str] | None = None,
                 jobs: bool = False, start_timeout: float = START_TIMEOUT_S) -> None:
        self._own_tmp = tmp_dir is None
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="als-epro-live-")) if tmp_dir is None else Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.tmp_dir / "server.sqlite"
        self.site, self.site_name, self.subjects = site, site_name, tuple(subjects)
        self.first_dose, self.onset, self.tz = first_dose, onset, tz
        self.staff_email, self.staff_password, self.staff_role = staff_email, staff_password, staff_role
        self.extra_env = dict(env or {})
        self.jobs = jobs
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.url: str | None = None
        self.proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log_file = None
        self._prepared = False

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "LiveServer":
        try:
            self.prepare()
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_EPRO_")}
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def prepare(self) -> None:
        """Create the database through the CLI: init, site, staff account, participants."""
        if self._prepared:
            return
        self.cli("init")
        self.cli("site", "add", self.site, self.site_name)
        self.cli("staff", "add", self.staff_email, "--site", self.site, "--role", self.staff_role,
                 "--password-set-by-holder", input=self.staff_password + "\n")
        for subject in self.subjects:
            self.cli("participant", "enroll", subject, "--site", self.site, "--onset", self.onset,
                     "--first-dose", self.first_dose, "--tz", self.tz)
        self._prepared = True

    def start(self, port: int | None = None) -> None:
        """Start serving (``port`` None: the last port used, else a free one) and wait until ready."""
        if self.proc is not None and self.proc.poll() is None:
            raise LiveServerError("already running")
        port = self.port if port is None and self.port else (port or 0)
        args = [sys.executable, "-m", "server", "--db", str(self.db_path), "serve",
                "--host", self.host, "--port", str(port)]
        if not self.jobs:
            args.append("--no-jobs")
        self._log_file = open(self.tmp_dir / "server.log", "ab")
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=self._env(), stdout=subprocess.PIPE,
                                     stderr=self._log_file, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise LiveServerError(f"server did not start within {self.start_timeout}s\n{self.log()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise LiveServerError(f"server exited with {self.proc.wait()}\n{self.log()}")
            if line.startswith("serving on "):
                self.url = line[len("serving on "):].strip()
                self.port = int(self.url.rsplit(":", 1)[1])
                return

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: "queue.Queue[str | None]") -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    def _reap(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            finally:
                if self.proc.stdout:
                    self.proc.stdout.close()
                self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash or power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def restart(self) -> None:
        """Stop the server (if running) and start it again on the same port and database."""
        self.terminate()
        self.start(self.port)

    def stop(self) -> None:
        """Stop the server and remove the temp directory if this object created it."""
        self.terminate()
        if self._own_tmp:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        path = self.tmp_dir / "server.log"
        return path.read_text("utf-8", "replace")[-4000:] if path.exists() else ""

    # --- command line ---------------------------------------------------------------------------
    def cli(self, *args: str, json: bool = True, input: str | None = None, check: bool = True
            ) -> Any:
        """Run ``als-epro-server --db DB [--json] ARGS``; the parsed JSON (or CompletedProcess).

        With ``check`` a non-zero exit raises :class:`LiveServerError` showing stderr.
        """
        cmd = [sys.executable, "-m", "server", "--db", str(self.db_path)]
        if json:
            cmd.append("--json")
        proc = subprocess.run([*cmd, *args], cwd=REPO_ROOT, env=self._env(), input=input,
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        if check and proc.returncode != 0:
            raise LiveServerError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        if json and proc.returncode == 0:
            return jsonlib.loads(proc.stdout)
        return proc

    def pairing_code(self, subject: str = "S-001", role: str = "participant",
                     caregiver: int | None = None) -> dict[str, Any]:
        args = ["pairing-code", subject, "--role", role]
        if caregiver is not None:
            args += ["--caregiver", str(caregiver)]
        return self.cli(*args)

    def pair(self, subject: str = "S-001", role: str = "participant", *, caregiver: int | None = None,
             device_name: str = "test device") -> dict[str, Any]:
        """Issue a code with the CLI and redeem it over HTTP; the pair response (contract §2)."""
        code = self.pairing_code(subject, role, caregiver)["code"]
        status, body = self.request("POST", "/api/v1/devices/pair",
                                    {"code": code, "device_name": device_name})
        if status != 201:
            raise LiveServerError(f"pairing failed: {status} {body}")
        return body

    # --- HTTP -------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                timeout: float = 30.0) -> tuple[int, Any]:
        """One HTTP request with a JSON body; returns (status, parsed JSON or text)."""
        if self.url is None:
            raise LiveServerError("not started")
        data = None if body is None else jsonlib.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, jsonlib.loads(text)
        except ValueError:
            return status, text
