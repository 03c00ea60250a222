"""The sync engine: push the outbox, record receipts, pull changes (contract §2, anchors.md §3–5).

Rules it keeps:
- an entry leaves "waiting" only on ``accepted``/``duplicate`` whose receipt has the entry's sha256;
- ``conflict``/``rejected`` entries go to "needs the site's attention" with the server's words and
  are never sent again;
- network failures and 5xx keep everything and retry later with exponential backoff and jitter,
  with no cap on the number of retries;
- ``401 auth.device_revoked`` stops syncing for good (until a new pairing) and keeps everything;
- one request in flight at a time, in order: the next leaves only after the previous answer came
  back; the engine's own bookkeeping (receipts, marking the next batch sent) is done while the
  next request travels, in a worker thread that ends with :meth:`SyncEngine.run`. Envelopes go out
  as the JSON text stored at Submit, never parsed and re-encoded (issue 13).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, TypeVar

from desktop.clock import Clock, clock_offset_s, local_iso, utc_iso
from desktop.store import DEFAULT_LIMITS, Outcome, Store, Waiting
from desktop.sync.changes import apply_change
from desktop.sync.transport import (
    AuthError, NetworkError, RequestError, ServerError, Transport, TransportError, encode_body,
    encode_raw_body,
)

BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 3600.0      # the delay stops growing at an hour; the retries never stop
CHANGE_PAGES_PER_RUN = 50
#: how long the engine lets the worker take the request before it goes on with its own bookkeeping
LEAVE_WAIT_S = 1.0

T = TypeVar("T")


def backoff_delay(failures: int, rng: Callable[[], float] = random.random,
                  base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """Seconds to wait after ``failures`` consecutive failures: exponential, ±50 % jitter."""
    if failures <= 0:
        return 0.0
    delay = min(cap, base * 2 ** min(failures - 1, 30))
    return delay * (0.5 + rng())


#: the client_time batches are sized with: as long as any ``local_iso`` of an aware time (an offset
#: with seconds included), so the time actually sent never makes a body longer than it was sized
SIZING_CLIENT_TIME = "2000-01-01T00:00:00+00:00:00"


def _split(items: list[T], sizes: Iterable[int], max_records: int, max_bytes: int,
           overhead: int) -> list[list[T]]:
    """Cut ``items`` (each ``size`` bytes in the body) into requests of at most ``max_records`` and
    ``max_bytes`` (``overhead`` plus the items, one comma between two). A single item larger than
    ``max_bytes`` travels alone (the server then says 413 for it)."""
    batches: list[list[T]] = []
    current: list[T] = []
    size = overhead
    for item, n in zip(items, sizes):
        n += 1 if current else 0
        if current and (len(current) >= max_records or size + n > max_bytes):
            batches.append(current)
            current, size = [], overhead
            n -= 1
        current.append(item)
        size += n
    if current:
        batches.append(current)
    return batches


def split_batches(envelopes: list[dict[str, Any]], max_records: int, max_bytes: int,
                  client_time: str = "2000-01-01T00:00:00+00:00") -> list[list[dict[str, Any]]]:
    """Split into requests of at most ``max_records`` records and ``max_bytes`` encoded bytes
    (``encode_body``). A single record larger than ``max_bytes`` travels alone."""
    overhead = len(encode_body({"records": [], "client_time": client_time}))
    return _split(envelopes, (len(encode_body(env)) for env in envelopes), max_records, max_bytes,
                  overhead)


def split_texts(entries: list[Waiting], max_records: int, max_bytes: int,
                client_time: str = SIZING_CLIENT_TIME) -> list[list[Waiting]]:
    """As :func:`split_batches`, for entries sent as their stored text (``encode_raw_body``): the
    sizes are the texts' own lengths, so the limit holds for the bytes actually sent."""
    overhead = len(encode_raw_body([], client_time))
    return _split(entries, (len(e.text) for e in entries), max_records, max_bytes, overhead)


@dataclass
class SyncResult:
    outcome: str                  # ok | offline | server_error | revoked | token_invalid | not_paired | error
    sent: int = 0
    received: int = 0
    attention: int = 0
    pulled: int = 0
    waiting: int = 0
    message: str = ""
    retry_in_s: float | None = None
    attention_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class _Stop(Exception):
    def __init__(self, outcome: str, message: str = "") -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.message = message


class SyncEngine:
    def __init__(self, store: Store, transport: Transport, clock: Clock,
                 rng: Callable[[], float] = random.random, tokens: Any = None) -> None:
        self.store = store
        self.transport = transport
        self.clock = clock
        self.rng = rng
        #: where a rotated token is kept (``TokenStore``); without one, rotation is ignored and the
        #: old token keeps working (the server keeps it current until the new one is used)
        self.tokens = tokens
        self._lock = threading.Lock()
        self.on_progress: Callable[[str], None] | None = None

    # --- scheduling -------------------------------------------------------------------------------
    def due(self) -> bool:
        """Is an automatic run due (the backoff after failures has passed)?"""
        if self.store.settings.get("revoked"):
            return False
        nxt = self.store.settings.get("next_sync_at")
        return nxt is None or utc_iso(self.clock.now()) >= nxt

    def run(self) -> SyncResult:
        """One full sync: push every waiting entry, then pull changes. Never raises for I/O."""
        with self._lock:
            started = self.clock.now()
            result = self._run()
            self._after(result, started)
            return result

    def _run(self) -> SyncResult:
        pairing = self.store.settings.pairing()
        if pairing is None:
            return SyncResult("not_paired")
        revoked = self.store.settings.get("revoked")
        if revoked:
            return SyncResult(revoked.get("outcome", "revoked"), message=revoked.get("message", ""))
        result = SyncResult("ok")
        try:
            self._push(pairing.device_id, pairing.limits or DEFAULT_LIMITS, result)
            result.pulled = self._pull(pairing.device_id)
        except _Stop as stop:
            result.outcome, result.message = stop.outcome, stop.message
        counts = self.store.outbox.counts(pairing.device_id)
        result.waiting = counts["saved"] + counts["sent"]
        return result

    def _after(self, result: SyncResult, started: datetime) -> None:
        now = self.clock.now()
        s = self.store.settings
        if result.outcome in ("offline", "server_error", "error"):
            failures = int(s.get("sync_failures", 0)) + 1
            delay = backoff_delay(failures, self.rng)
            result.retry_in_s = delay
            s.update({"sync_failures": failures, "next_sync_at": utc_iso(now + timedelta(seconds=delay))})
        elif result.outcome == "ok":
            s.update({"sync_failures": 0, "next_sync_at": None, "last_sync_ok_at": utc_iso(now)})
        if result.outcome != "not_paired":
            self.store.sync_log.add({
                "started_at": utc_iso(started), "finished_at": utc_iso(now), "outcome": result.outcome,
                "sent": result.sent, "received": result.received, "attention": result.attention,
                "pulled": result.pulled, "message": result.message[:500]})

    # --- push -------------------------------------------------------------------------------------
    # One request in flight, in strict order: request i+1 leaves only after answer i arrived (and a
    # rotated token was adopted), and while it travels this thread records answer i's receipts and
    # marks batch i+1 sent, in one transaction. Marking after the request left is safe: "saved" and
    # "sent" are both waiting and sent again after a crash; the server is idempotent.
    def _push(self, device_id: str, limits: dict[str, int], result: SyncResult) -> None:
        waiting = self.store.outbox.waiting_texts(device_id)
        if not waiting:
            return
        max_records = int(limits.get("max_records", DEFAULT_LIMITS["max_records"]))
        max_bytes = int(limits.get("max_bytes", DEFAULT_LIMITS["max_bytes"]))
        raw = callable(getattr(self.transport, "push_raw", None))
        if raw:
            queue = deque(split_texts(waiting, max_records, max_bytes))
        else:   # a transport that takes parsed records (tests' fakes): sized as it will encode them
            parsed = split_batches([e.envelope for e in waiting], max_records, max_bytes, SIZING_CLIENT_TIME)
            by_id = {e.id: e for e in waiting}
            queue = deque([by_id[env["id"]] for env in batch] for batch in parsed)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-push") as worker:
            # leaving this block waits for the request in flight: the worker never outlives run()
            batch = queue.popleft()
            flight = self._start_marked(worker, batch, raw)
            while True:
                try:
                    body, before, after = flight.result()
                except TransportError as exc:
                    self.store.outbox.mark_unsent([e.id for e in batch], utc_iso(self.clock.now()))
                    self._raise_stop(exc)
                    if isinstance(exc, RequestError) and exc.status == 413 and len(batch) > 1:
                        half = len(batch) // 2
                        queue.extendleft([batch[half:], batch[:half]])
                        batch = queue.popleft()
                        flight = self._start_marked(worker, batch, raw)
                        continue
                    raise _Stop("error", exc.code or str(exc)) from None
                self._adopt_token(body.get("device_token"))
                nxt = queue.popleft() if queue else None
                if nxt is not None:
                    flight = self._start(worker, nxt, raw)
                self._answered(batch, body, before, after, nxt, result)
                if nxt is None:
                    return
                batch = nxt

    def _start_marked(self, worker: ThreadPoolExecutor, batch: list[Waiting], raw: bool) -> Future:
        """Send a batch no answer precedes (the first, or half of a refused one) and mark it sent
        in its own transaction while it travels."""
        flight = self._start(worker, batch, raw)
        self.store.outbox.mark_sending([e.id for e in batch], utc_iso(self.clock.now()))
        return flight

    def _start(self, worker: ThreadPoolExecutor, batch: list[Waiting], raw: bool) -> Future:
        """Hand one request to the worker; the caller has had the previous answer (strict order)."""
        if self.on_progress:
            self.on_progress("sending")
        left = threading.Event()
        if raw:
            texts = [e.text for e in batch]
            flight = worker.submit(self._call, left, self.transport.push_raw, texts)  # type: ignore[attr-defined]
        else:
            flight = worker.submit(self._call, left, self.transport.push, [e.envelope for e in batch])
        # let the worker start first: were this thread to go straight on with its bookkeeping, the
        # worker would wait for the interpreter lock (a switch interval, 5 ms) before the request
        # even left — a pause on the critical path between every two requests (issue 13)
        left.wait(LEAVE_WAIT_S)
        return flight

    def _call(self, left: threading.Event, push: Callable[[Any, str], dict[str, Any]], records: Any
              ) -> tuple[dict[str, Any], datetime, datetime]:
        """In the worker thread: one request; ``client_time`` and the clock readings around it are
        taken when it actually leaves and when its answer is in."""
        left.set()
        before = self.clock.now()
        body = push(records, local_iso(before))
        return body, before, self.clock.now()

    def _answered(self, batch: list[Waiting], body: dict[str, Any], before: datetime, after: datetime,
                  nxt: list[Waiting] | None, result: SyncResult) -> None:
        """Store what answer i taught (clock offset, each entry's outcome, entries it did not answer)
        and mark batch i+1 sent, in one transaction: one commit a request (issue 13)."""
        result.sent += len(batch)
        outcomes = self._outcomes(batch, body.get("results"))
        answered = {o.id for o in outcomes}
        with self.store.outbox.tx():
            self._learn_clock(body.get("server_time"), before, after)
            self.store.outbox.record(outcomes, utc_iso(after))
            self.store.outbox.mark_unsent([e.id for e in batch if e.id not in answered], utc_iso(after))
            if nxt is not None:
                self.store.outbox.mark_sending([e.id for e in nxt], utc_iso(self.clock.now()))
        for o in outcomes:
            if o.state == "received":
                result.received += 1
            elif o.state == "needs_attention":
                result.attention += 1
                result.attention_ids.append(o.id)

    def _adopt_token(self, token: Any) -> None:
        """A rotated token: keep it (keyring) first, then use it. If it cannot be kept, ignore it —
        the old token stays current on the server until the new one is used."""
        if not isinstance(token, str) or not token or self.tokens is None \
                or not hasattr(self.transport, "token"):
            return
        pairing = self.store.settings.pairing()
        if pairing is None:
            return
        try:
            self.tokens.save(pairing.device_id, token)
            if self.tokens.load(pairing.device_id) != token:
                return
        except Exception:   # noqa: BLE001 (a keyring failure must never stop a sync)
            return
        self.transport.token = token

    def _raise_stop(self, exc: TransportError) -> None:
        if isinstance(exc, AuthError):
            outcome = "revoked" if exc.code == "auth.device_revoked" else "token_invalid"
            self.store.settings.set("revoked", {"outcome": outcome, "code": exc.code,
                                                "message": str(exc), "at": utc_iso(self.clock.now())})
            raise _Stop(outcome, str(exc)) from None
        if isinstance(exc, NetworkError):
            raise _Stop("offline", str(exc)) from None
        if isinstance(exc, ServerError):
            raise _Stop("server_error", str(exc)) from None

    @staticmethod
    def _outcomes(batch: list[Waiting], results: Any) -> list[Outcome]:
        by_id = {e.id: e for e in batch}
        out: list[Outcome] = []
        for res in results if isinstance(results, list) else []:
            if not isinstance(res, dict) or res.get("id") not in by_id:
                continue
            entry, status = by_id[res["id"]], res.get("status")
            errors = tuple(e for e in res.get("errors") or [] if isinstance(e, dict))
            labels = tuple(str(x) for x in res.get("labels") or [])
            if status in ("accepted", "duplicate"):
                receipt = res.get("receipt") if isinstance(res.get("receipt"), dict) else {}
                if receipt.get("sha256") == entry.sha256:
                    out.append(Outcome(entry.id, "received", status, receipt, labels=labels))
                else:
                    out.append(Outcome(entry.id, "needs_attention", status, receipt or None,
                                       "receipt_mismatch", labels=labels))
            elif status in ("conflict", "rejected"):
                message = res.get("message") or "; ".join(str(e.get("message", "")) for e in errors)
                out.append(Outcome(entry.id, "needs_attention", status, None, message or status,
                                   errors, labels))
        return out

    def _learn_clock(self, server_time: Any, before: datetime, after: datetime) -> None:
        """Device minus server clock, from the middle of the request. Never blocks anything."""
        offset = clock_offset_s(server_time, before, after)
        if offset is not None:
            self.store.settings.update({"clock_offset_s": offset, "last_server_time": server_time})

    # --- pull -------------------------------------------------------------------------------------
    def _pull(self, device_id: str) -> int:
        cursor = self.store.settings.get("cursor", 0)
        applied = 0
        for _ in range(CHANGE_PAGES_PER_RUN):
            before = self.clock.now()
            try:
                body = self.transport.changes(cursor)
            except TransportError as exc:
                self._raise_stop(exc)
                raise _Stop("error", exc.code or str(exc)) from None
            self._learn_clock(body.get("server_time"), before, self.clock.now())
            changes = body.get("changes") if isinstance(body.get("changes"), list) else []
            for change in changes:
                if isinstance(change, dict):
                    apply_change(self.store, device_id, change, utc_iso(self.clock.now()))
                    applied += 1
            new_cursor = body.get("cursor", cursor)
            self.store.settings.set("cursor", new_cursor)
            if not changes or new_cursor == cursor or not body.get("more", True):
                break
            cursor = new_cursor
        return applied
