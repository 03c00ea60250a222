#!/usr/bin/env python3
"""Nothing lost, nothing doubled: 1,000 records uploaded twice to a real server over real HTTP.

Run from the repository root:  .venv/bin/python scripts/sync_demo.py

1. Creates a database with the CLI (init, site, staff, participant) and serves it with
   ``als-epro-server serve`` (waitress) on 127.0.0.1, in a temporary directory.
2. Pairs a device: ``als-epro-server pairing-code`` then ``POST /api/v1/devices/pair``.
3. Uploads the same 1,000 valid records twice, each time as two requests of 500.
4. Checks: 1,000 ``accepted`` then 1,000 ``duplicate``; every duplicate's receipt equals the first
   receipt and its sha256 equals the client's own contract §1 hash; exactly 1,000 rows stored;
   ``als-epro-server audit verify`` clean. Prints the wall time; exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.canonical import record_sha256  # noqa: E402
from tests.support.live_server import LiveServer  # noqa: E402
from tests.support.records import make_batch  # noqa: E402


def upload_all(srv: LiveServer, token: str, records: list[dict], per_request: int) -> tuple[list[dict], float]:
    results: list[dict] = []
    start = time.perf_counter()
    for i in range(0, len(records), per_request):
        body = {"records": records[i:i + per_request], "client_time": datetime.now(timezone.utc).isoformat()}
        status, reply = srv.request("POST", "/api/v1/sync/records", body, token=token, timeout=120)
        if status != 200:
            raise SystemExit(f"upload failed: HTTP {status}: {reply}")
        results.extend(reply["results"])
    return results, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--per-request", type=int, default=500)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(("  ok    " if ok else "  FAIL  ") + what)
        if not ok:
            failures.append(what)

    with LiveServer(subjects=("S-001",)) as srv:
        print(f"served at {srv.url} (database {srv.db_path})")
        paired = srv.pair("S-001", "participant", device_name="sync demo")
        print(f"paired device {paired['device_id']} as {paired['originator']}")
        records = make_batch("S-001", args.records)
        local_sha = {r["id"]: record_sha256(r) for r in records}

        first, t_first = upload_all(srv, paired["token"], records, args.per_request)
        second, t_second = upload_all(srv, paired["token"], records, args.per_request)
        n = args.records
        requests = -(-n // args.per_request)
        print(f"first upload {t_first:.2f} s, second upload {t_second:.2f} s ({requests} requests each)")

        check([r["id"] for r in first] == [r["id"] for r in records], "one result per record, in request order")
        check(sum(r["status"] == "accepted" for r in first) == n, f"{n} accepted on the first upload")
        check(sum(r["status"] == "duplicate" for r in second) == n, f"{n} duplicate on the second upload")
        check(all(a["receipt"] == b["receipt"] for a, b in zip(first, second)),
              "every duplicate carries the original receipt")
        check(all(r["receipt"]["sha256"] == local_sha[r["id"]] for r in first),
              "every receipt's sha256 matches the client's own hash")
        check(len({r["receipt"]["server_seq"] for r in first}) == n, "server_seq unique per record")
        with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as conn:
            stored = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM records").fetchone()
        check(stored == (n, n), f"exactly {n} records stored (found {stored[0]})")
        verify = srv.cli("audit", "verify", json=True, check=False)
        check(isinstance(verify, dict) and verify.get("ok") is True,
              f"audit verify clean ({verify.get('rows') if isinstance(verify, dict) else verify} rows)")

    wall = time.perf_counter() - t0
    print(f"wall time {wall:.2f} s")
    print("PASS" if not failures else f"FAILED: {len(failures)} check(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
