"""An in-process stand-in for the server's sync API, built to the contract (§2), with faults.

It keeps the first version of every id, answers accepted/duplicate/conflict/rejected in request
order, enforces the limits with 413, and can be told to fail before or after processing a request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from shared.canonical import record_sha256
from shared.schemas import record_errors

from desktop.sync.transport import AuthError, NetworkError, RequestError, ServerError, encode_body


class FakeServer:
    def __init__(self, participant: str = "001-001", max_records: int = 500, max_bytes: int = 2 * 1024 * 1024):
        self.participant = participant
        self.max_records, self.max_bytes = max_records, max_bytes
        self.stored: dict[str, dict[str, Any]] = {}      # id -> {"sha256", "receipt", "envelope"}
        self.quarantine: dict[str, dict[str, Any]] = {}  # id -> {"sha256", "errors"}
        self.seq = 0
        self.requests: list[list[str]] = []
        self.faults: list[str] = []      # consumed one per push: "down", "500", "lost_ack", "revoked"
        self.change_log: list[dict[str, Any]] = []
        self.server_time = "2026-03-10T01:30:00+00:00"

    # --- Transport protocol -----------------------------------------------------------------------
    def pair(self, code: str, device_name: str) -> dict[str, Any]:
        raise NotImplementedError

    def push(self, records: list[dict[str, Any]], client_time: str) -> dict[str, Any]:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "down":
            raise NetworkError("connection refused")
        if fault == "500":
            raise ServerError("boom", 500)
        if fault == "revoked":
            raise AuthError("revoked", 401, "auth.device_revoked")
        if len(records) > self.max_records:
            raise RequestError("too many", 413, "sync.too_many_records")
        if len(encode_body({"records": records, "client_time": client_time})) > self.max_bytes:
            raise RequestError("too large", 413, "request.too_large")
        self.requests.append([r["id"] for r in records])
        results = [self._one(r) for r in records]
        if fault == "lost_ack":
            raise NetworkError("connection reset after the server stored the batch")
        return {"results": results, "server_time": self.server_time}

    def changes(self, since: Any) -> dict[str, Any]:
        start = int(since or 0)
        return {"changes": self.change_log[start:], "cursor": len(self.change_log),
                "server_time": self.server_time}

    # --- the contract's idempotent ingest ---------------------------------------------------------
    def _one(self, env: dict[str, Any]) -> dict[str, Any]:
        sha = record_sha256(env)
        rid = env.get("id")
        if env.get("participant") != self.participant:
            return {"id": rid, "status": "rejected",
                    "errors": [{"field": "participant", "rule": "device_binding", "message": "not yours"}]}
        if rid in self.stored:
            first = self.stored[rid]
            if first["sha256"] == sha:
                return {"id": rid, "status": "duplicate", "receipt": first["receipt"]}
            return {"id": rid, "status": "conflict",
                    "errors": [{"field": "id", "rule": "conflict", "message": "different content"}]}
        if rid in self.quarantine:
            q = self.quarantine[rid]
            if q["sha256"] != sha:
                return {"id": rid, "status": "conflict", "errors": []}
            return {"id": rid, "status": "rejected", "errors": q["errors"]}
        record, errors = record_errors(env)
        if record is None:
            errs = [e.as_dict() for e in errors]
            self.quarantine[rid] = {"sha256": sha, "errors": errs}
            return {"id": rid, "status": "rejected", "errors": errs}
        self.seq += 1
        receipt = {"server_seq": self.seq, "received_at": datetime.now(timezone.utc).isoformat(),
                   "sha256": sha}
        self.stored[rid] = {"sha256": sha, "receipt": receipt, "envelope": env}
        return {"id": rid, "status": "accepted", "receipt": receipt}
