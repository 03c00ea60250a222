"""``POST /api/v1/sync/records`` (idempotent upload) and ``GET /api/v1/sync/changes`` (contract §2)."""

from __future__ import annotations

import threading

from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import ValidationError

from server.api.body import json_object, protocol, server_time
from server.api.schemas import SyncRequestSchema
from server.auth import device_required
from server.db import get_db, write_tx
from server.store.changes import changes_since, decode_cursor, encode_cursor
from server.store.devices import count_upload, touch
from server.store.records import ingest
from shared.errors import EproError, FieldError
from shared.schemas import flatten_errors

bp = Blueprint("sync", __name__)

CHANGES_PAGE = 500

_wrappers = threading.local()


def _wrapper_schema() -> SyncRequestSchema:
    """The request wrapper's schema (``client_time`` only), one per thread: building a marshmallow
    schema deep-copies its fields, which cost more than loading the field (every submit)."""
    schema = getattr(_wrappers, "schema", None)
    if schema is None:
        schema = _wrappers.schema = SyncRequestSchema(only=("client_time",))
    return schema


@bp.post("/sync/records")
@device_required
def upload():
    body = json_object()
    records = body.get("records")
    if not isinstance(records, list):
        rule = "required" if records is None else "type.array"
        raise EproError("validation.invalid", 400, errors=[
            FieldError("records", rule, "records must be a list of envelopes.")])
    if len(records) > current_app.config["MAX_RECORDS"]:
        raise EproError("sync.too_many_records", 413, errors=[
            FieldError("records", "max_records",
                       f"At most {current_app.config['MAX_RECORDS']} records per request.")])
    # the envelopes are judged one by one in ingest(); here only the wrapper's own fields
    try:
        client_time = _wrapper_schema().load({k: v for k, v in body.items() if k == "client_time"})["client_time"]
    except ValidationError as exc:
        raise EproError("validation.invalid", 400, errors=flatten_errors(exc.messages)) from None
    db = get_db()
    device = g.device
    every = current_app.config["TOKEN_ROTATE_EVERY_SYNCS"]
    token: list[str | None] = [None]

    def count(tx_db) -> None:
        # in the ingest's transaction (one commit a request, shared with other uploads: group
        # commit), maybe on another request's thread: only what it is given, never ``g``
        token[0] = count_upload(tx_db, device, every)

    results = ingest(db, device, records, protocol=protocol(), client_time=client_time, then=count)
    answer = {"results": results, "server_time": server_time()}
    rotated = token[0]
    if rotated:
        answer["device_token"] = rotated      # optional: a client may ignore it and keep its token
    resp = jsonify(answer)
    if rotated:
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/sync/changes")
@device_required
def changes():
    raw = request.args.get("since")
    since = decode_cursor(raw)
    db = get_db()
    items, last = changes_since(db, g.device["participant_id"], since, limit=CHANGES_PAGE)
    more = len(items) == CHANGES_PAGE
    if raw in (None, "", "0"):
        items.insert(0, {"seq": 0, "kind": "protocol", "at": None,
                         "data": protocol().participant_projection()})
    with write_tx(db):
        touch(db, g.device["id"])
    return jsonify({"changes": items, "cursor": encode_cursor(last), "more": more,
                    "server_time": server_time()})
