"""Ordered, recorded schema migrations of the client database (``sqlite_utils.Migrations``)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("desktop")

#: entry states (contract §2, ux rule 21): waiting = saved or sent
STATES = ("saved", "sent", "received", "needs_attention")


@migrations()
def m001_initial(db: Database) -> None:
    db["settings"].create({"key": str, "value": str}, pk="key")
    db["drafts"].create({
        "id": str,            # becomes the record id on Submit (uuid4 made at creation)
        "type": str,
        "device_id": str,
        "answers": str,       # JSON: the in-progress answers
        "context": str,       # JSON: due item, dose number, diary date…
        "page": str,          # where the person was, to resume there
        "created_at": str,
        "updated_at": str,
    }, pk="id")
    db["entries"].create({
        "id": str,
        "type": str,
        "device_id": str,
        "participant": str,
        "device_seq": int,
        "envelope": str,      # JSON exactly as it is sent
        "sha256": str,
        "state": str,
        "receipt": str,       # JSON receipt {server_seq, received_at, sha256}
        "server_status": str,  # accepted / duplicate / conflict / rejected
        "server_message": str,
        "server_errors": str,  # JSON list of {field, rule, message}
        "labels": str,
        "attempts": int,
        "created_at": str,
        "updated_at": str,
        "sent_at": str,
        "received_at": str,
    }, pk="id", not_null={"type", "device_id", "device_seq", "envelope", "sha256", "state"})
    db["entries"].create_index(["device_id", "device_seq"], unique=True)
    db["entries"].create_index(["state"])
    db["sync_log"].create({
        "id": int, "started_at": str, "finished_at": str, "outcome": str, "sent": int,
        "received": int, "attention": int, "pulled": int, "message": str,
    }, pk="id")
    db["reminders"].create({"key": str, "name": str, "last_shown": str}, pk="key")
    db["changes"].create({
        "id": int, "device_id": str, "kind": str, "record_id": str, "body": str, "applied_at": str,
    }, pk="id")


def migrate(db: Database) -> None:
    migrations.apply(db)
