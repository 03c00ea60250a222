"""``POST /api/v1/devices/pair``: exchange a one-time code for a device token (contract §2)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from server.api.body import json_object, protocol, server_time
from server.api.schemas import PairRequestSchema
from server.auth import public
from server.db import get_db
from server.store.pairing import RateLimits, redeem_pairing_code
from shared.errors import EproError
from shared.schemas import flatten_errors

bp = Blueprint("devices", __name__)


def limits() -> dict[str, int]:
    return {"max_records": current_app.config["MAX_RECORDS"],
            "max_bytes": current_app.config["MAX_CONTENT_LENGTH"]}


def pairing_limits(cfg) -> RateLimits:
    return RateLimits(max_delay_seconds=cfg["PAIRING_RATE_WINDOW_SECONDS"],
                      per_address=cfg["PAIRING_MAX_FAILURES_PER_ADDRESS"],
                      per_code=cfg["PAIRING_MAX_FAILURES_PER_CODE"],
                      base_delay_seconds=cfg["PAIRING_BASE_DELAY_SECONDS"],
                      memory_seconds=cfg["PAIRING_FAILURE_MEMORY_SECONDS"])


@bp.post("/devices/pair")
@public
def pair():
    body = json_object()
    problems = PairRequestSchema().validate(body)
    if problems:
        raise EproError("validation.invalid", 400, errors=flatten_errors(problems))
    cfg = current_app.config
    paired = redeem_pairing_code(
        get_db(), body["code"], body["device_name"], client_addr=request.remote_addr,
        limits=pairing_limits(cfg))
    resp = jsonify({
        "device_id": paired.device["id"],
        "token": paired.token,
        "participant": paired.device["subject"],
        "role": paired.device["role"],
        "originator": paired.originator,
        "protocol": protocol().participant_projection(),
        "limits": limits(),
        "server_time": server_time(),
    })
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"
    return resp
