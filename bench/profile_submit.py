"""A cProfile of the heaviest request path (issue 13 §2): ``POST /api/v1/sync/records`` with one new
record, as a person pressing Submit sends it, through the ``serve`` app (Flask test client: the same
app, auth, validation, labels, store, audit and commit, without the network).

    python -m bench.profile_submit            # writes bench/submit-profile.txt
    python -m bench.profile_submit --requests 2000 --out /tmp/p.txt

The text file is the pstats listing (cumulative, then own time), and the CPU per request.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.common import REPO_ROOT, log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_submit", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "submit-profile.txt"))
    args = p.parse_args(argv)

    from server import create_app
    from tests.evidence.devices import new_server_db
    from tests.support.records import make_nasal
    from server.store.audit import Actor
    from server.store.pairing import issue_pairing_code, redeem_pairing_code

    tmp = Path(tempfile.mkdtemp(prefix="als-epro-bench-profile-"))
    try:
        db_path = tmp / "server.sqlite"
        db = new_server_db(db_path)
        code = issue_pairing_code(db, "S-001", "participant", actor=Actor.cli())["code"]
        token = redeem_pairing_code(db, code, "profile", client_addr="127.0.0.1").token
        db.close()
        client = create_app({"DB": str(db_path)}).test_client()
        headers = {"Authorization": f"Bearer {token}"}
        start = datetime.now(timezone(timedelta(hours=8))) - timedelta(days=args.requests // 24 + 2)
        bodies = [{"records": [make_nasal("S-001", entered_at=start + timedelta(hours=i), device_seq=i + 1)],
                   "client_time": datetime.now(timezone.utc).isoformat()} for i in range(args.requests + 50)]
        for body in bodies[:50]:                     # warm up (imports, caches, connections)
            assert client.post("/api/v1/sync/records", json=body, headers=headers).status_code == 200
        prof = cProfile.Profile()
        cpu = time.process_time()
        prof.enable()
        for body in bodies[50:]:
            resp = client.post("/api/v1/sync/records", json=body, headers=headers)
            if resp.status_code != 200 or resp.get_json()["results"][0]["status"] != "accepted":
                raise RuntimeError(f"submit failed: {resp.status_code} {resp.get_data()[:200]!r}")
        prof.disable()
        per_request = (time.process_time() - cpu) / args.requests
        out = io.StringIO()
        out.write(f"# {args.requests} single-record submits through the serve app (Flask test client)\n"
                  f"# CPU per request under the profiler: {per_request * 1000:.2f} ms\n\n")
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        Path(args.out).write_text(out.getvalue().replace(str(REPO_ROOT) + "/", ""))
        log(f"wrote {args.out} (CPU per request under the profiler: {per_request * 1000:.2f} ms)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
