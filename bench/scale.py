"""Scale (issue 13 §4): a study of N participants with a year of daily diaries each, and what a site
does with it at that size.

The generator enrols N participants at one site, pairs a device for each and stores a year of
entries per participant (365 nasal diaries, the protocol's dose confirmations, the ALSFRS-R reports:
:func:`bench.staff_page._year_of_entries`) through the real ingest (``server.store.records.ingest``,
batches of 500), so receipts, versions, labels and the hash-chained audit are exactly what devices
would have produced. Then, per size:

- the participant list page and one participant page (signed-in investigator, Flask test client,
  median of a few requests after the first);
- site export in every format, backup, restore and ``audit verify``, each as the real command
  (``als-epro-server …``) in its own process, so its time and peak memory (max RSS, ``wait4``) are its
  own;
- the database file's size.

    python -m bench --scale 38,1000        # the default sizes
    python -m bench --scale 38,1000,10000  # 10,000 takes long (a few million records)

Nothing asserts a time. ``--chart PATH`` writes a PNG of time against size (needs matplotlib: the
``bench`` extra).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, log, median

SIZES = (38, 1000)
SITE = "BJ01"
EMAIL, PASSWORD = "inv@scale.example", "bench password for the scale pages"
REPEAT = 5
#: a memory ceiling for each command (address space), so a command that would exhaust the machine
#: fails and is reported instead of taking the bench down
MEMORY_LIMIT = 12 * 1024 ** 3
#: keep the generated databases in this folder, and use the ones already there (measure again
#: without generating again)
KEEP = os.environ.get("ALS_EPRO_BENCH_KEEP") or None


def subject(i: int) -> str:
    return f"S-{i:05d}"


def generate(path: Path, participants: int) -> dict[str, Any]:
    """A migrated database at ``path`` holding ``participants`` with a year of entries each."""
    from bench.staff_page import _year_of_entries
    from server.store.audit import Actor
    from server.store.records import ingest
    from server.store.staff import add_staff
    from shared.protocol import load_protocol
    from tests.evidence.devices import new_server_db, pair_in_process

    protocol = load_protocol()
    cst = timezone(timedelta(hours=8))
    first_dose = (datetime.now(cst) - timedelta(days=366)).replace(hour=9, minute=0, second=0, microsecond=0)
    subjects = tuple(subject(i) for i in range(1, participants + 1))
    start = time.perf_counter()
    onset = (first_dose - timedelta(days=365)).strftime("%Y-%m")      # inside the 6–24 month window
    db = new_server_db(path, subjects=subjects, site=SITE, onset=onset, first_dose=first_dose.date().isoformat())
    add_staff(db, EMAIL, SITE, "investigator", PASSWORD, actor=Actor.cli(), must_change=False)
    records = 0
    for n, s in enumerate(subjects, start=1):
        device = pair_in_process(db, s)
        entries = _year_of_entries(s, first_dose, protocol)
        for i in range(0, len(entries), 500):
            results = ingest(db, device, entries[i:i + 500], protocol=protocol)
            if any(r["status"] != "accepted" for r in results):
                raise RuntimeError(f"generated entries of {s} were not accepted")
        records += len(entries)
        if n % 100 == 0:
            log(f"    {n:,} participants, {records:,} records, {time.perf_counter() - start:.0f} s")
    db.close()
    return {"records": records, "seconds": time.perf_counter() - start}


def _list_rows(path: Path) -> float:
    """Make the participants list's kept rows (``server.store.list_summaries``) as a deployment has
    them: the serve process remakes them after uploads, ``init`` after an upgrade. Seconds taken."""
    from server.db import open_db
    from server.store.list_summaries import rebuild
    from shared.protocol import load_protocol

    db = open_db(path)
    start = time.perf_counter()
    rebuild(db, load_protocol())
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _pages(path: Path, participants: int) -> dict[str, dict[str, float]]:
    from bench.staff_page import signed_in
    from server import create_app

    client = signed_in(create_app({"DB": str(path)}), EMAIL, PASSWORD)
    out = {}
    one = subject(participants // 2 + 1)
    for name, url, must in (("list", "/staff/participants", subject(1)),
                            ("participant", f"/staff/participants/{one}", one)):
        times, size = [], 0
        for _ in range(REPEAT + 1):
            t0 = time.perf_counter()
            resp = client.get(url, headers={"Accept": "text/html"})
            body = resp.get_data()
            times.append(time.perf_counter() - t0)
            if resp.status_code != 200 or must.encode() not in body:
                raise RuntimeError(f"{url} failed: {resp.status_code}")
            size = len(body)
        out[name] = {"first": times[0], "median": median(times[1:]), "bytes": size}
    return out


#: the command runs under this, so it reports its own peak memory: ``VmHWM`` of its process image
#: after exec (``ru_maxrss`` of a child forked from this big process would count this one's pages)
_REPORTING = ("import atexit, resource, runpy, sys\n"
              "resource.setrlimit(resource.RLIMIT_AS, (%d, %d))\n"
              "def hwm():\n"
              "    for line in open('/proc/self/status'):\n"
              "        if line.startswith('VmHWM:'):\n"
              "            print('bench-peak-kb', line.split()[1], file=sys.stderr, flush=True)\n"
              "atexit.register(hwm)\n"
              "sys.argv = ['als-epro-server', *sys.argv[1:]]\n"
              "runpy.run_module('server', run_name='__main__')\n") % (MEMORY_LIMIT, MEMORY_LIMIT)


def _run_measured(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``als-epro-server ARGS`` in its own process: seconds, its CPU seconds (steadier than wall
    time on a shared machine), its peak resident memory (MB), ok, and the last line of stderr on
    failure."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _REPORTING, *args], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)   # the child, reaped by run(): its CPU
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    peaks = [int(line.split()[1]) for line in lines if line.startswith("bench-peak-kb ")]
    errors = [line for line in lines if not line.startswith("bench-peak-kb ")] or ["?"]
    ok = proc.returncode == 0
    return {"seconds": seconds, "cpu_s": cpu, "peak_mb": peaks[-1] / 1024 if peaks else float("nan"), "ok": ok,
            "error": None if ok else errors[-1][:120]}


def measure(tmp: Path, participants: int, export_max: int | None = None) -> dict[str, Any]:
    path = tmp / f"scale-{participants}.sqlite"
    if KEEP and path.exists():   # generated by an earlier run into ALS_EPRO_BENCH_KEEP
        from server.db import open_db

        from server.migrations import migrate

        db = open_db(path)
        migrate(db)             # made by an older build: its indexes, as `init` would
        gen = {"records": db.execute("SELECT COUNT(*) FROM records").fetchone()[0], "seconds": float("nan")}
        db.close()
        log(f"  reusing {path} ({gen['records']:,} records)")
    else:
        log(f"  generating {participants:,} participants with a year of entries each (real ingest)…")
        gen = generate(path, participants)
    log(f"  {gen['records']:,} records in {gen['seconds']:.0f} s; the list's kept rows…")
    rows_s = _list_rows(path)
    log(f"  kept rows made in {rows_s:.1f} s; pages…")
    out: dict[str, Any] = {"participants": participants, "records": gen["records"], "generate": gen["seconds"],
                           "list_rows_s": rows_s, "db_mb": (path.stat().st_size + _wal(path)) / 1e6}
    out["pages"] = _pages(path, participants)
    env = {**os.environ, "ALS_EPRO_DB": str(path), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("ALS_EPRO_BACKUP_RECIPIENTS", None)
    ops = {}
    if export_max is not None and participants > export_max:
        ops["export"] = {"skipped": f"over --export-max {export_max} (the export screens and validates every"
                                    " record in every format: about 3 s per 1,000 records, so over an hour at this size)"}
    else:
        log("  export (every format)…")
        ops["export"] = _run_measured(["--db", str(path), "export", "--format", "all", "--out", str(tmp / f"export-{participants}"),
                                       "--site", SITE], env)
    shutil.rmtree(tmp / f"export-{participants}", ignore_errors=True)
    log("  backup…")
    backup = tmp / f"backup-{participants}.sqlite"
    ops["backup"] = _run_measured(["backup", str(backup), "--db", str(path), "--unencrypted"], env)
    log("  restore…")
    ops["restore"] = _run_measured(["restore", str(backup), "--db", str(tmp / f"restored-{participants}.sqlite")], env)
    log("  audit verify…")
    ops["audit verify"] = _run_measured(["--db", str(path), "audit", "verify"], env)
    out["ops"] = ops
    for p in tmp.glob(f"*-{participants}.sqlite*"):
        if KEEP is None or not p.name.startswith("scale-"):
            p.unlink(missing_ok=True)
    return out


def run(sizes: tuple[int, ...] = SIZES, export_max: int | None = None) -> dict[str, Any]:
    tmp = Path(KEEP) if KEEP else Path(tempfile.mkdtemp(prefix="als-epro-bench-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        log(f"bench scale: sizes {', '.join(f'{s:,}' for s in sizes)}")
        return {"sizes": [measure(tmp, n, export_max) for n in sizes]}
    finally:
        if KEEP is None:
            shutil.rmtree(tmp, ignore_errors=True)


def chart(result: dict[str, Any], path: Path) -> bool:
    """A PNG of seconds against participants (log-log), one line per operation; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("  (no matplotlib: pip install -e '.[bench]' for the chart)")
        return False
    sizes = result["sizes"]
    xs = [s["participants"] for s in sizes]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, get in (("participant list page", lambda s: s["pages"]["list"]["median"]),
                      ("participant page", lambda s: s["pages"]["participant"]["median"]),
                      *((op, (lambda s, op=op: s["ops"][op]["seconds"] if s["ops"][op].get("ok") else None))
                        for op in ("export", "backup", "restore", "audit verify"))):
        pts = [(x, get(s)) for x, s in zip(xs, sizes) if get(s) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("participants (a year of daily entries each)")
    ax.set_ylabel("seconds")
    ax.set_title("ALS ePRO server: time against study size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
