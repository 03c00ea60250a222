"""Benchmark 2: submits per second with 16 concurrent clients on the production WSGI server.

One ``bench.serve_bench`` process (the ``serve`` app on waitress, same options) answers both:
``POST /api/v1/sync/records`` with one new record per request (a person pressing Submit: device
token checked, validated, labelled, stored, audited, committed with ``synchronous=FULL``), and
``POST /bench/bare`` with the same bodies (JSON parsed, nothing stored). Sixteen threads, each with
its own keep-alive connection and device token, send their requests as fast as answers come back.
Rounds alternate bare and sync so both see the same machine; throughput and latencies are pooled.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, log, median, percentile

CLIENTS = 16
PER_CLIENT = 60
ROUNDS = 3
START_TIMEOUT_S = 30


class BenchServer:
    def __init__(self, db_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_EPRO_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.log = open(db_path.parent / "bench-server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.serve_bench", "--db", str(db_path)],
                                     cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=START_TIMEOUT_S).decode()
        except queue.Empty:
            self.stop()
            raise RuntimeError("bench server did not start") from None
        if not first.startswith("serving on "):
            self.stop()
            raise RuntimeError(f"bench server failed: {first!r}")
        self.url, self.threads = first.split()[2], first.split("threads=")[1].strip()

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def _prepare(tmp: Path) -> tuple[Path, list[tuple[str, str]]]:
    """A database with CLIENTS participants and one pairing code each."""
    from tests.evidence.devices import issue_codes, live_server

    subjects = tuple(f"S-{i:03d}" for i in range(1, CLIENTS + 1))
    with live_server(tmp / "server", subjects) as srv:
        codes = issue_codes(srv, [(s, "participant") for s in subjects])
        return srv.db_path, list(zip(subjects, codes))


def _bodies(subject: str, n: int, start_seq: int, start: datetime) -> list[bytes]:
    from tests.support.records import make_alsfrs, make_nasal

    out = []
    for i in range(n):
        entered = (start + timedelta(minutes=7 * (start_seq + i))).replace(microsecond=0)
        make = make_nasal if i % 2 else make_alsfrs
        env = make(subject, entered_at=entered, device_seq=start_seq + i, clock_offset_s=0.0)
        out.append(json.dumps({"records": [env], "client_time": entered.isoformat()},
                              ensure_ascii=False).encode())
    return out


def _round(url: str, path: str, work: list[tuple[str, list[bytes]]]) -> tuple[float, list[float], list[dict]]:
    import requests

    latencies: list[list[float]] = [[] for _ in work]
    answers: list[list[dict]] = [[] for _ in work]
    errors: list[BaseException] = []
    gate = threading.Barrier(len(work) + 1, timeout=60)

    def client(i: int, token: str, bodies: list[bytes]) -> None:
        try:
            session = requests.Session()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            gate.wait()
            for body in bodies:
                t0 = time.perf_counter()
                resp = session.post(url + path, data=body, headers=headers, timeout=120)
                latencies[i].append(time.perf_counter() - t0)
                if resp.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {resp.status_code} {resp.text[:200]}")
                answers[i].append(resp.json())
            session.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i, tok, b)) for i, (tok, b) in enumerate(work)]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed, [x for lat in latencies for x in lat], [a for ans in answers for a in ans]


def run(clients: int = CLIENTS, per_client: int = PER_CLIENT, rounds: int = ROUNDS) -> dict[str, Any]:
    import requests

    tmp = Path(tempfile.mkdtemp(prefix="als-epro-bench-tp-"))
    try:
        log(f"bench 2: {clients} concurrent clients, {per_client} submits each, {rounds} rounds")
        db_path, codes = _prepare(tmp)
        srv = BenchServer(db_path)
        try:
            tokens = []
            for subject, code in codes[:clients]:
                resp = requests.post(srv.url + "/api/v1/devices/pair",
                                     json={"code": code, "device_name": "bench"}, timeout=30)
                resp.raise_for_status()
                tokens.append((subject, resp.json()["token"]))
            start = datetime.now(timezone(timedelta(hours=8))) - timedelta(days=30)
            results: dict[str, dict[str, list]] = {"bare": {"rate": [], "lat": [], "cpu": []},
                                                  "sync": {"rate": [], "lat": [], "cpu": []}}
            for r in range(rounds):
                work = [(tok, _bodies(subject, per_client, 1 + r * per_client, start))
                        for subject, tok in tokens]
                for kind, path in (("bare", "/bench/bare"), ("sync", "/api/v1/sync/records")):
                    log(f"  round {r + 1}: {kind}…")
                    cpu = srv.cpu_seconds()
                    elapsed, lat, answers = _round(srv.url, path, work)
                    results[kind]["cpu"].append((srv.cpu_seconds() - cpu) / len(lat))
                    if kind == "sync" and any(a["results"][0]["status"] != "accepted" for a in answers):
                        raise RuntimeError("a submit was not accepted")
                    results[kind]["rate"].append(len(lat) / elapsed)
                    results[kind]["lat"].extend(lat)
            threads = srv.threads
        finally:
            srv.stop()
        out = {"clients": clients, "requests": clients * per_client * rounds, "threads": threads}
        for kind, res in results.items():
            out[kind] = {"rate": median(res["rate"]), "p50": percentile(res["lat"], 50),
                         "p95": percentile(res["lat"], 95), "server_cpu": median(res["cpu"])}
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
