"""``python -m bench`` (``make bench``): the four benchmarks of issue 6, printed as one table.

    python -m bench                 # everything (a few minutes)
    python -m bench --only 1,3      # some of them
    python -m bench --records 2000  # a smaller sync backlog for a quick look
    python -m bench --scale 38,1000 # only the scale rows (issue 13 §4); 10000 is behind this flag too

Progress goes to stderr, the table (Markdown) to stdout. Nothing here asserts a time; never part of
``make test``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from bench.common import Row, log, machine, ms, table, verdict


def _sync_rows(r: dict) -> list[Row]:
    served, split, base = r["served"], r["split"], r["baseline"]
    total, validated, raw = served["total"], base["validated"], base["raw"]
    ratio = total / validated
    rows = [Row(f"1. Sync {r['n']:,} records: client engine → loopback HTTP → `serve` → stored",
                f"{total:.2f} s", f"validate + one `insert_all`: {validated:.2f} s", f"{ratio:.2f}×",
                "≤ 1.5×", verdict(ratio <= 1.5))]
    http = served["round trips"] - split["parse"] - split["ingest"]
    client_other = total - served["round trips"] - served.get("client receipts", 0.0)
    stages = [("parse (JSON body)", split["parse"]), ("validate (`shared.schemas`)", split.get("validate", 0.0)),
              ("hash (sha256)", split.get("hash", 0.0)), ("schedule labels", split.get("labels", 0.0)),
              ("store (SQL)", split["store"]), ("audit (hash chain)", split.get("audit", 0.0)),
              ("HTTP (waitress, Flask, auth)", http),
              ("client receipts", served.get("client receipts", 0.0)), ("client other", client_other)]
    if "client receipts overlapped" in served:
        stages.append(("client receipts, during a round trip (off the critical path)",
                       served["client receipts overlapped"]))
    for name, seconds in stages:
        rows.append(Row(f"  stage: {name}", f"{seconds:.2f} s", f"raw `insert_all`: {raw:.2f} s",
                        f"{seconds / raw:.1f}× raw" if raw else ""))
    return rows


def _throughput_rows(r: dict) -> list[Row]:
    sync, bare = r["sync"], r["bare"]
    share = sync["rate"] / bare["rate"]
    return [
        Row(f"2. Submits/s, {r['clients']} concurrent clients, waitress ({r['threads']} threads), "
            f"{r['requests']:,} per endpoint",
            f"{sync['rate']:,.0f}/s", f"bare parse-only endpoint: {bare['rate']:,.0f}/s", f"{share:.0%}",
            "≥ 60%", verdict(share >= 0.6)),
        Row("  latency p50 / p95", f"{ms(sync['p50'])} / {ms(sync['p95'])}",
            f"bare: {ms(bare['p50'])} / {ms(bare['p95'])}"),
        Row("  server CPU per request", ms(sync["server_cpu"]), f"bare: {ms(bare['server_cpu'])}",
            f"{sync['server_cpu'] / bare['server_cpu']:.1f}×"),
    ]


def _staff_rows(r: dict) -> list[Row]:
    target = "≤ 300 KB, < 100 ms"
    if "pending" in r:
        return [Row("3. Staff page of a participant with a year of daily entries", "pending", r["pending"],
                    "", target, verdict(None))]
    pages = r.get("pages", {"summary": r})

    def ok(p: dict) -> bool:
        return p["median"] < 0.1 and p["bytes"] <= 300_000

    targeted = [p for name, p in pages.items() if name != "print"]
    rows = [Row(f"3. Staff page of a participant with a year of daily entries ({r['records']} records):"
                " summary + safety flags", f"{ms(r['median'])} median", f"first request {ms(r['first'])}, max {ms(r['max'])}",
                f"{r['bytes'] / 1e3:,.0f} KB of HTML", target + " (every section)", verdict(all(ok(p) for p in targeted)))]
    for name, p in pages.items():
        if name == "summary":
            continue
        label = "print view (everything, for paper; no target)" if name == "print" else f"section: {name}"
        rows.append(Row(f"  {label}", f"{ms(p['median'])} median", f"first request {ms(p['first'])}, max {ms(p['max'])}",
                        f"{p['bytes'] / 1e3:,.0f} KB of HTML", "", ""))
    return rows


def _desktop_rows(r: dict) -> list[Row]:
    if "pending" in r:
        return [Row("4. Desktop cold start to Today (offscreen)", "pending", r["pending"], "",
                    "< 2 s, < 250 MB", verdict(None))]
    ok = r["first"] < 2 and r["median"] < 2 and r["peak_mb"] < 250
    return [Row("4. Desktop cold start to Today (offscreen, a year of history)",
                f"{r['first']:.2f} s first, {r['median']:.2f} s median", f"screen reached: {r['screen']}",
                f"peak {r['peak_mb']:.0f} MB", "< 2 s, < 250 MB", verdict(ok))]


def _switch_rows(r: dict) -> list[Row]:
    one, two, kb = r["one"], r["two"], r["keyboard"]
    ok = all(x["stored_ok"] for x in (one, two, kb))
    return [
        Row("5. Full ALSFRS-R by one switch (auto-scan), form's first page to Submit",
            f"{one['presses']} presses", f"{one['steps']} highlight stops waited",
            f"{one['seconds'] / 60:.1f} min at {r['interval_ms'] / 1000:g} s a step", "", ""),
        Row("  by two switches (step-scan)", f"{two['presses']} presses",
            f"{two['steps']} move + {two['selections']} choose", "", "", ""),
        Row("  by keyboard (a digit answers an item and goes on; review, then Submit)", f"{kb['keys']} keys", "stored records equal the answers"
            if ok else "STORED RECORDS DIFFER", "", "≤ 26", verdict(kb["keys"] <= 26)),
    ]


def _scale_rows(r: dict) -> list[Row]:
    rows = []
    for s in r["sizes"]:
        n, pages, ops = s["participants"], s["pages"], s["ops"]
        made = (f"generated by the real ingest in {s['generate']:.0f} s" if s["generate"] == s["generate"]
                else "generated by an earlier run")
        rows.append(Row(f"S. {n:,} participants, a year each ({s['records']:,} records, {made})",
                        f"database {s['db_mb']:,.0f} MB", "", "", "", ""))
        if s.get("list_rows_s") is not None:
            rows.append(Row("  list rows made (what `init` / the serve job do after an upgrade or uploads)",
                            f"{s['list_rows_s']:,.1f} s", "", "", "", ""))
        for name, label in (("list", "participant list page"), ("participant", "one participant page")):
            p = pages[name]
            rows.append(Row(f"  {label}", f"{ms(p['median'])} median", f"first {ms(p['first'])}",
                            f"{p['bytes'] / 1e3:,.0f} KB", "< 200 ms", verdict(p["median"] < 0.2)))
        for name in ("export", "backup", "restore", "audit verify"):
            o = ops.get(name)
            if o is None:
                continue
            if o.get("skipped"):
                rows.append(Row(f"  {name}", "not run", o["skipped"], "", "", verdict(None)))
                continue
            label = "site export (every format)" if name == "export" else f"`{name}`"
            cpu = f", CPU {o['cpu_s']:,.1f} s" if o.get("cpu_s") is not None else ""
            rows.append(Row(f"  {label}", f"{o['seconds']:,.1f} s{cpu}" if o["ok"] else f"FAILED: {o['error']}",
                            f"{s['records'] / o['seconds']:,.0f} records/s" if o["ok"] else "",
                            f"peak {o['peak_mb']:,.0f} MB", "", ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--only", default="1,2,3,4,5", help="comma-separated benchmark numbers")
    p.add_argument("--records", type=int, default=10_000, help="sync backlog size for benchmark 1")
    p.add_argument("--scale", default=None, help="comma-separated study sizes (participants), e.g. 38,1000;"
                                                 " runs only the scale rows")
    p.add_argument("--export-max", type=int, default=1000,
                   help="with --scale: run the site export only up to this many participants")
    p.add_argument("--chart", default=None, help="with --scale: write a PNG chart of time against size here")
    args = p.parse_args(argv)
    if args.scale:
        from pathlib import Path

        from bench import scale
        sizes = tuple(int(x) for x in args.scale.split(",") if x.strip())
        m = machine()
        result = scale.run(sizes, export_max=args.export_max)
        rows = [Row("Machine", f"{m['cpus']} CPUs, {m['cpu']}, {m['ram']} RAM",
                    f"{m['os']}, Python {m['python']}, SQLite {m['sqlite']}", f"run {date.today().isoformat()}")]
        rows += _scale_rows(result)
        import json
        log(json.dumps(result, default=str))
        if args.chart:
            scale.chart(result, Path(args.chart))
        print(table(rows), flush=True)
        return 0
    wanted = {int(x) for x in args.only.split(",") if x.strip()}
    m = machine()
    rows = [Row("Machine", f"{m['cpus']} CPUs, {m['cpu']}, {m['ram']} RAM",
                f"{m['os']}, Python {m['python']}, SQLite {m['sqlite']}", f"run {date.today().isoformat()}")]
    if 1 in wanted:
        from bench import sync
        rows += _sync_rows(sync.run(args.records))
    if 2 in wanted:
        from bench import throughput
        rows += _throughput_rows(throughput.run())
    if 3 in wanted:
        from bench import staff_page
        rows += _staff_rows(staff_page.run())
    if 4 in wanted:
        from bench import desktop_start
        rows += _desktop_rows(desktop_start.run())
    if 5 in wanted:
        from bench import switch_access
        rows += _switch_rows(switch_access.run())
    log("")
    print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
