"""``GET /api/v1/openapi.json``: the OpenAPI 3 document, generated from the marshmallow schemas.

Paths are described once here (method, summary, schemas); bodies come from ``shared.schemas`` and
``server.api.schemas`` through apispec's MarshmallowPlugin, never written by hand.
"""

from __future__ import annotations

from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify

import shared
from server.api import API_PREFIX
from server.api.schemas import (
    ChangesResponseSchema, ErrorSchema, PairRequestSchema, PairResponseSchema, SyncRequestSchema,
    SyncResponseSchema,
)
from server.auth import public
from shared.schemas.fields import (
    AwareDateTime, Choice, DateString, JSONObject, StrictBool, StrictInt, StrictNumber, Text,
    UniqueChoiceList, UUIDString,
)
from shared.schemas.records import AlsfrsPayload, DosePayload, EnvelopeSchema, NasalPayload

bp = Blueprint("openapi", __name__)


def _errors(*statuses: int) -> dict:
    return {str(s): {"description": "Error", "content": {"application/json": {"schema": "Error"}}}
            for s in statuses}


def _json(schema: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


PATHS = {
    "/devices/pair": {"post": {
        "summary": "Exchange a one-time pairing code for a device token",
        "requestBody": {"required": True, "content": {"application/json": {"schema": "PairRequest"}}},
        "responses": {"201": _json("PairResponse", "Paired"), **_errors(400, 410, 413, 429)},
    }},
    "/sync/records": {"post": {
        "summary": "Upload records idempotently; one result per record, in request order",
        "security": [{"device": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": "SyncRequest"}}},
        "responses": {"200": _json("SyncResponse", "Per-record outcomes"), **_errors(400, 401, 413)},
    }},
    "/sync/changes": {"get": {
        "summary": "Protocol, timeline and staff decisions for the device's participant, in server order",
        "security": [{"device": []}],
        "parameters": [{"name": "since", "in": "query", "required": False,
                        "schema": {"type": "string", "default": "0"},
                        "description": "0 on the first call, then the cursor returned last time"}],
        "responses": {"200": _json("ChangesResponse", "Changes"), **_errors(400, 401)},
    }},
    "/openapi.json": {"get": {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3 document"}},
    }},
}


#: the strict shared fields, as OpenAPI (type, format)
FIELD_TYPES = {
    StrictInt: ("integer", None), StrictNumber: ("number", None), StrictBool: ("boolean", None),
    Text: ("string", None), Choice: ("string", None), UUIDString: ("string", "uuid"),
    AwareDateTime: ("string", "date-time"), DateString: ("string", "date"), JSONObject: ("object", None),
    UniqueChoiceList: ("array", None),
}


def shared_field_attributes(self, field, **kwargs) -> dict:
    """Limits and choices that the strict shared fields keep as attributes."""
    out: dict = {}
    if isinstance(field, StrictInt):
        if field.lo is not None:
            out["minimum"] = field.lo
        if field.hi is not None:
            out["maximum"] = field.hi
    elif isinstance(field, Text):
        out["maxLength"] = field.max_length
        if not field.allow_empty:
            out["minLength"] = 1
    elif isinstance(field, Choice):
        out["enum"] = list(field.choices) + ([None] if field.allow_none else [])
    elif isinstance(field, UniqueChoiceList):
        out["items"] = {"type": "string", "enum": list(field.choices)}
        out["uniqueItems"] = True
    return out


@lru_cache(maxsize=1)
def build_spec() -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(title="ALS ePRO site server API", version=shared.__version__, openapi_version="3.0.3",
                   plugins=[plugin],
                   info={"description": "Contract §2: idempotent record upload with receipts, "
                                        "pairing, and the changes feed."},
                   servers=[{"url": API_PREFIX}])
    for field_cls, (kind, fmt) in FIELD_TYPES.items():
        plugin.map_to_openapi_type(field_cls, kind, fmt)
    plugin.converter.add_attribute_function(shared_field_attributes)
    spec.components.security_scheme("device", {"type": "http", "scheme": "bearer"})
    for name, schema in (("Error", ErrorSchema), ("Envelope", EnvelopeSchema),
                         ("AlsfrsPayload", AlsfrsPayload), ("NasalSymptomsPayload", NasalPayload),
                         ("DoseConfirmationPayload", DosePayload), ("PairRequest", PairRequestSchema),
                         ("PairResponse", PairResponseSchema), ("SyncRequest", SyncRequestSchema),
                         ("SyncResponse", SyncResponseSchema), ("ChangesResponse", ChangesResponseSchema)):
        spec.components.schema(name, schema=schema)
    for path, operations in PATHS.items():
        spec.path(path=path, operations=operations)
    doc = spec.to_dict()
    # the payload schema is chosen by the envelope's type
    doc["components"]["schemas"]["Envelope"]["properties"]["payload"] = {
        "description": "alsfrs_r → AlsfrsPayload, nasal_symptoms → NasalSymptomsPayload, "
                       "dose_confirmation → DoseConfirmationPayload",
        "oneOf": [{"$ref": f"#/components/schemas/{name}"}
                  for name in ("AlsfrsPayload", "NasalSymptomsPayload", "DoseConfirmationPayload")],
    }
    return doc


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(build_spec())
