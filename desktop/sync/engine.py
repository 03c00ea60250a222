"""The sync engine: push the outbox, record receipts, pull changes (contract §2, anchors.md §3–5).

Rules it keeps:
- an entry leaves "waiting" only on ``accepted``/``duplicate`` whose receipt has the entry's sha256;
- ``conflict``/``rejected`` entries go to "needs the site's attention" with the server's words and
  are never sent again;
- network failures and 5xx keep everything and retry later with exponential backoff and jitter,
  with no cap on the number of retries;
- ``401 auth.device_revoked`` stops syncing for good (until a new pairing) and keeps everything.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from desktop.clock import Clock, clock_offset_s, local_iso, utc_iso
from desktop.store import DEFAULT_LIMITS, Entry, Outcome, Store
from desktop.sync.changes import apply_change
from desktop.sync.transport import (
    AuthError, NetworkError, RequestError, ServerError, Transport, TransportError, encode_body,
)

BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 3600.0      # the delay stops growing at an hour; the retries never stop
CHANGE_PAGES_PER_RUN = 50


def backoff_delay(failures: int, rng: Callable[[], float] = random.random,
                  base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """Seconds to wait after ``failures`` consecutive failures: exponential, ±50 % jitter."""
    if failures <= 0:
        return 0.0
    delay = min(cap, base * 2 ** min(failures - 1, 30))
    return delay * (0.5 + rng())


def split_batches(envelopes: list[dict[str, Any]], max_records: int, max_bytes: int,
                  client_time: str = "2000-01-01T00:00:00+00:00") -> list[list[dict[str, Any]]]:
    """Split into requests of at most ``max_records`` records and ``max_bytes`` encoded bytes.

    A single record larger than ``max_bytes`` travels alone (the server then says 413 for it).
    """
    overhead = len(encode_body({"records": [], "client_time": client_time}))
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = overhead
    for env in envelopes:
        n = len(encode_body(env)) + (1 if current else 0)
        if current and (len(current) >= max_records or size + n > max_bytes):
            batches.append(current)
            current, size = [], overhead
            n -= 1
        current.append(env)
        size += n
    if current:
        batches.append(current)
    return batches


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
    def _push(self, device_id: str, limits: dict[str, int], result: SyncResult) -> None:
        waiting = self.store.outbox.waiting(device_id)
        if not waiting:
            return
        by_id = {e.id: e for e in waiting}
        batches = split_batches([e.envelope for e in waiting],
                                int(limits.get("max_records", DEFAULT_LIMITS["max_records"])),
                                int(limits.get("max_bytes", DEFAULT_LIMITS["max_bytes"])))
        queue = [[by_id[env["id"]] for env in batch] for batch in batches]
        while queue:
            batch = queue.pop(0)
            try:
                self._send(batch, result)
            except RequestError as exc:
                if exc.status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    queue[:0] = [batch[:half], batch[half:]]
                    continue
                raise _Stop("error", exc.code or str(exc)) from None

    def _send(self, batch: list[Entry], result: SyncResult) -> None:
        ids = [e.id for e in batch]
        now = self.clock.now()
        self.store.outbox.mark_sending(ids, utc_iso(now))
        if self.on_progress:
            self.on_progress("sending")
        before = self.clock.now()
        try:
            body = self.transport.push([e.envelope for e in batch], local_iso(before))
        except TransportError as exc:
            self.store.outbox.mark_unsent(ids, utc_iso(self.clock.now()))
            self._raise_stop(exc)
            raise
        after = self.clock.now()
        self._adopt_token(body.get("device_token"))
        result.sent += len(batch)
        outcomes = self._outcomes(batch, body.get("results"))
        answered = {o.id for o in outcomes}
        # what the answer taught (the clock offset, each entry's outcome, entries it did not answer)
        # is stored in one transaction: one commit a request instead of three (issue 13)
        with self.store.outbox.tx():
            self._learn_clock(body.get("server_time"), before, after)
            self.store.outbox.record(outcomes, utc_iso(after))
            self.store.outbox.mark_unsent([i for i in ids if i not in answered], utc_iso(after))
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
    def _outcomes(batch: list[Entry], results: Any) -> list[Outcome]:
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
