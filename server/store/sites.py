"""Sites (study centres). Staff and participants belong to exactly one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from server.clock import iso, utc_now
from server.db import query, query_one, write_tx
from server.store.audit import Actor, write_audit
from shared.errors import EproError, FieldError
from shared.ids import check_site_code


def add_site(db: Database, code: str, name: str, *, actor: Actor,
             now: datetime | None = None) -> dict[str, Any]:
    code, name = check_site_code(code), name.strip()
    if not name:
        raise EproError("validation.invalid", 400, errors=[
            FieldError("name", "required", "A site needs a code and a name.")])
    if len(name) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise EproError("validation.invalid", 400, errors=[
            FieldError("name", "format.text", "At most 200 characters, no control characters.")])
    with write_tx(db):
        if query_one(db, "SELECT id FROM sites WHERE code = ?", [code]):
            raise EproError("site.exists", 409, detail=code)
        cur = db.execute("INSERT INTO sites (code, name, created_at) VALUES (?, ?, ?)",
                         [code, name, iso(now or utc_now())])
        site_id = cur.lastrowid
        write_audit(db, actor, "site.create", entity="site", entity_id=site_id, site_id=site_id,
                    detail={"code": code, "name": name}, now=now)
    return get_site(db, code)


def get_site(db: Database, code: str) -> dict[str, Any]:
    row = query_one(db, "SELECT * FROM sites WHERE code = ?", [code])
    if row is None:
        raise EproError("site.not_found", 404, detail=code)
    return row


def site_by_id(db: Database, site_id: int) -> dict[str, Any] | None:
    return query_one(db, "SELECT * FROM sites WHERE id = ?", [site_id])


def list_sites(db: Database) -> list[dict[str, Any]]:
    return query(db, "SELECT * FROM sites ORDER BY code")
