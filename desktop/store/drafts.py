"""In-progress answers, written on every selection so that nothing is lost on a break (ux rule 15)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from desktop.store.db import Part


@dataclass
class Draft:
    id: str
    type: str
    device_id: str
    answers: dict[str, Any]
    context: dict[str, Any]
    page: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Draft":
        return cls(row["id"], row["type"], row["device_id"] or "", json.loads(row["answers"] or "{}"),
                   json.loads(row["context"] or "{}"), row["page"] or "", row["created_at"],
                   row["updated_at"])


class Drafts(Part):
    def create(self, rtype: str, device_id: str, context: dict[str, Any], now: str) -> Draft:
        """Start a draft; its id is the uuid4 the entry keeps for ever (contract §1)."""
        draft = Draft(str(uuid.uuid4()), rtype, device_id, {}, dict(context), "", now, now)
        with self.tx() as db:
            db["drafts"].insert({"id": draft.id, "type": rtype, "device_id": device_id,
                                 "answers": "{}", "context": json.dumps(context, ensure_ascii=False),
                                 "page": "", "created_at": now, "updated_at": now})
        return draft

    def save(self, draft: Draft, now: str) -> None:
        draft.updated_at = now
        with self.tx() as db:
            cur = db.execute(
                "UPDATE drafts SET answers = ?, context = ?, page = ?, updated_at = ? WHERE id = ?",
                [json.dumps(draft.answers, ensure_ascii=False),
                 json.dumps(draft.context, ensure_ascii=False), draft.page, now, draft.id])
            if cur.rowcount != 1:
                raise KeyError(f"draft {draft.id} no longer exists (already submitted?)")

    def get(self, draft_id: str) -> Draft | None:
        rows = self.rows("SELECT * FROM drafts WHERE id = ?", [draft_id])
        return Draft.from_row(rows[0]) if rows else None

    def all(self, device_id: str | None = None) -> list[Draft]:
        if device_id is None:
            rows = self.rows("SELECT * FROM drafts ORDER BY created_at")
        else:
            rows = self.rows("SELECT * FROM drafts WHERE device_id = ? ORDER BY created_at", [device_id])
        return [Draft.from_row(r) for r in rows]

    def discard(self, draft_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM drafts WHERE id = ?", [draft_id])
