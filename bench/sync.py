"""Benchmark 1: a 10,000-entry backlog pushed by the real client into a served instance, against
what one process needs to validate the same records and store them with one ``insert_all``.

- **served**: ``SyncEngine.run()`` of a real client store (entries saved through ``Outbox.submit``
  beforehand, not timed) over loopback HTTP into ``als-epro-server serve`` (waitress), until nothing
  waits: 20 requests of 500, receipts checked and recorded;
- **baseline**: ``shared.schemas.load_record`` of each envelope, then one sqlite-utils ``insert_all``
  of the rows (WAL, ``synchronous=FULL``, as the server opens its file);
- **raw**: the same ``insert_all`` of the already-built rows, nothing else.

The served push runs three times on fresh servers and the median run is reported; the baselines are
medians of three as well.

The per-stage split replays the exact request bodies through ``server.store.records.ingest`` in this
process on a fresh server database, with timers around its stages (exclusive time); "HTTP" is what
the served round trips took beyond that; "client" is the engine's own bookkeeping while no request
is in flight (what it does while one travels is reported apart, off the critical path).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import Stages, log, median, timer

RECORDS = 10_000
KINDS = ("nasal_symptoms", "alsfrs_r", "nasal_symptoms", "dose_confirmation")


def _client_entries(dev, n: int) -> None:
    start = datetime.now(timezone.utc) - timedelta(hours=n + 1)
    for i in range(n):
        entered = (start + timedelta(hours=i)).astimezone(dev.clock.tz).replace(microsecond=0)
        dev.submit(dev.envelope(KINDS[i % len(KINDS)], entered_at=entered))


def served(tmp: Path, n: int) -> dict[str, Any]:
    from tests.evidence.devices import Device
    from tests.support.live_server import LiveServer

    out: dict[str, Any] = {}
    with LiveServer(tmp / "server", subjects=("S-001",)) as srv:
        dev = Device(tmp, "backlog", srv.url, srv.pairing_code("S-001")["code"], timeout=(10.0, 600.0))
        log(f"  saving {n:,} entries in the client outbox (not timed)…")
        _client_entries(dev, n)
        sent: list[tuple[list, str]] = []        # (records as dicts, or as their JSON texts; client_time)
        pushes: list[tuple[float, float]] = []     # when each round trip ran (in the engine's worker)
        receipts: list[tuple[float, float]] = []   # when each answer's receipts were recorded
        transport, outbox = dev.engine.transport, dev.store.outbox
        record = outbox.record

        def timed(push):
            def timed_push(records, client_time):
                sent.append((list(records), client_time))
                start = time.perf_counter()
                try:
                    return push(records, client_time)
                finally:
                    pushes.append((start, time.perf_counter()))
            return timed_push

        def timed_record(outcomes, now):
            start = time.perf_counter()
            try:
                return record(outcomes, now)
            finally:
                receipts.append((start, time.perf_counter()))

        transport.push = timed(transport.push)
        if hasattr(transport, "push_raw"):     # records sent as their stored text (issue 13)
            transport.push_raw = timed(transport.push_raw)
        outbox.record = timed_record
        log("  pushing over loopback HTTP…")
        start = time.perf_counter()
        result = dev.engine.run()
        out["total"] = time.perf_counter() - start
        if not (result.ok and result.received == n and result.waiting == 0):
            raise RuntimeError(f"the push did not complete: {result}")
        # round trips run one at a time; receipts recorded while one is in flight are off the
        # critical path: only their part outside every round trip counts as "client receipts"
        out["round trips"] = sum(b - a for a, b in pushes)
        overlapped = sum(_overlap(span, pushes) for span in receipts)
        out["client receipts"] = sum(b - a for a, b in receipts) - overlapped
        out["client receipts overlapped"] = overlapped
        out["requests"] = len(sent)
        out["batches"] = [([r if isinstance(r, dict) else json.loads(r) for r in records], ct)
                          for records, ct in sent]
        out["first_dose"], out["onset"], out["site"] = srv.first_dose, srv.onset, srv.site
        dev.close()
    return out


def _overlap(span: tuple[float, float], spans: list[tuple[float, float]]) -> float:
    """Seconds of ``span`` covered by ``spans`` (which do not overlap each other)."""
    return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b in spans)


def in_process(tmp: Path, batches: list[tuple[list[dict], str]], first_dose: str, onset: str,
               site: str) -> dict[str, float]:
    """The same request bodies through the server's ingest, in this process, stage by stage."""
    import server.store.records as records_mod
    import shared.schemas as schemas_mod
    from desktop.sync.transport import encode_body
    from server.api.schemas import SyncRequestSchema
    from shared.protocol import load_protocol
    from tests.evidence.devices import new_server_db, pair_in_process

    db = new_server_db(tmp / "inprocess.sqlite", site=site, onset=onset, first_dose=first_dose)
    device = pair_in_process(db)
    protocol = load_protocol()
    bodies = [encode_body({"records": recs, "client_time": ct}) for recs, ct in batches]
    stages = Stages()
    stages.wrap(records_mod, "record_errors", "validate")
    stages.wrap(records_mod, "body_sha256", "hash")
    if hasattr(records_mod, "hashed_body"):   # hash and the stored text from one serialisation (issue 13)
        stages.wrap(records_mod, "hashed_body", "hash")
    stages.wrap(schemas_mod, "record_sha256", "hash")
    for name in ("timing_labels_after", "timing_labels_many"):   # the latter in builds before d32475e
        if hasattr(records_mod, name):
            stages.wrap(records_mod, name, "labels")
    stages.wrap(records_mod.Entry, "from_envelope", "labels")
    stages.wrap(records_mod, "batch_labels", "labels")     # dose labels: counted in "store" before
    for name in ("write_audit", "write_audit_many"):     # the latter: batched, issue 13
        if hasattr(records_mod, name):
            stages.wrap(records_mod, name, "audit")
    times: dict[str, float] = {}
    try:
        for raw in bodies:
            with timer(times, "parse"):
                body = json.loads(raw.decode("utf-8"))
                client_time = SyncRequestSchema(only=("client_time",)).load(
                    {"client_time": body.get("client_time")})["client_time"]
            with timer(times, "ingest"):
                results = records_mod.ingest(db, device, body["records"], protocol=protocol,
                                             client_time=client_time)
            if any(r["status"] != "accepted" for r in results):
                raise RuntimeError("in-process replay did not accept every record")
    finally:
        stages.restore()
        db.close()
    split = dict(stages.totals)
    split["parse"] = times["parse"]
    split["ingest"] = times["ingest"]
    split["store"] = times["ingest"] - sum(split.get(k, 0.0) for k in ("validate", "hash", "labels", "audit"))
    return split


def _rows(envelopes: list[dict], records: list | None = None) -> list[dict[str, Any]]:
    from shared.canonical import record_sha256

    rows = []
    for i, env in enumerate(envelopes):
        rows.append({
            "id": env["id"], "type": env["type"], "participant": env["participant"],
            "respondent": env["respondent"], "schema_version": env["schema_version"],
            "instrument_version": env["instrument_version"], "event_time": env["event_time"],
            "entered_at": env["entered_at"], "device_seq": env["device_seq"],
            "sha256": records[i].sha256 if records else record_sha256(env),
            "envelope": json.dumps(env, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        })
    return rows


def baseline(tmp: Path, envelopes: list[dict], repeat: int = 3) -> dict[str, float]:
    """Validate with shared.schemas and store with one insert_all; and the raw insert_all alone."""
    from server.db import open_db
    from shared.schemas import load_record

    validated, raw = [], []
    rows = _rows(envelopes)
    for i in range(repeat):
        path = tmp / f"baseline-{i}.sqlite"
        start = time.perf_counter()
        records = [load_record(env) for env in envelopes]
        db = open_db(path)
        db["records"].insert_all(_rows(envelopes, records), pk="id")
        db.close()
        validated.append(time.perf_counter() - start)
        path = tmp / f"raw-{i}.sqlite"
        db = open_db(path)
        start = time.perf_counter()
        db["records"].insert_all(rows, pk="id")
        raw.append(time.perf_counter() - start)
        db.close()
    return {"validated": median(validated), "raw": median(raw)}


def run(n: int = RECORDS, repeat: int = 3) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="als-epro-bench-sync-"))
    try:
        log(f"bench 1: sync of {n:,} records, {repeat} served runs (the median one is reported)")
        runs = [served(tmp / f"run-{i}", n) for i in range(repeat)]
        srv = sorted(runs, key=lambda r: r["total"])[len(runs) // 2]
        envelopes = [env for recs, _ in srv["batches"] for env in recs]
        log("  replaying the same bodies through ingest in-process (stage split)…")
        split = in_process(tmp, srv["batches"], srv["first_dose"], srv["onset"], srv["site"])
        log("  baseline: validate + one insert_all, and raw insert_all…")
        base = baseline(tmp, envelopes)
        return {"n": n, "served": {k: v for k, v in srv.items() if k != "batches"}, "split": split,
                "baseline": base}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
