"""Changes pulled from the server (protocol, schedule, staff decisions), kept as received."""

from __future__ import annotations

import json
from typing import Any

from desktop.store.db import Part


class Changes(Part):
    def add(self, device_id: str, kind: str, record_id: str | None, body: dict[str, Any], now: str) -> None:
        with self.tx() as db:
            db["changes"].insert({"device_id": device_id, "kind": kind, "record_id": record_id,
                                  "body": json.dumps(body, ensure_ascii=False), "applied_at": now})

    def for_record(self, record_id: str) -> list[dict[str, Any]]:
        rows = self.rows("SELECT * FROM changes WHERE record_id = ? ORDER BY id", [record_id])
        return [{**r, "body": json.loads(r["body"])} for r in rows]
