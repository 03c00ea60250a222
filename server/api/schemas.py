"""Request and response schemas of the sync API, for validation and for the OpenAPI document.

Records themselves are validated by ``shared.schemas`` (contract §1); these describe the wrappers
around them (contract §2).
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields

from shared.schemas.fields import AwareDateTime, Text
from shared.schemas.records import EnvelopeSchema


class _Lenient(Schema):
    """Request wrappers ignore unknown keys (records inside them do not)."""

    class Meta:
        unknown = EXCLUDE


class FieldErrorSchema(Schema):
    field = fields.String(required=True, metadata={"example": "payload.items.5a"})
    rule = fields.String(required=True, metadata={"example": "range"})
    message = fields.String(required=True)


class ErrorSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"example": False})
    status = fields.Integer(required=True, metadata={"example": 400})
    code = fields.String(required=True, metadata={"example": "validation.invalid"})
    error = fields.String(required=True)
    errors = fields.List(fields.Nested(FieldErrorSchema), required=True)


class PairRequestSchema(_Lenient):
    code = Text(max_length=64, allow_empty=False, required=True,
                metadata={"description": "One-time code, e.g. ABCD-EFGH-JK (case, spaces, dashes ignored)"})
    device_name = Text(max_length=100, allow_empty=False, required=True)


class LimitsSchema(Schema):
    max_records = fields.Integer(required=True, metadata={"example": 500})
    max_bytes = fields.Integer(required=True, metadata={"example": 2097152})


class PairResponseSchema(Schema):
    device_id = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "Bearer token; shown once"})
    participant = fields.String(required=True)
    role = fields.String(required=True, metadata={"enum": ["participant", "caregiver"]})
    originator = fields.String(required=True, metadata={"example": "caregiver:3"})
    protocol = fields.Dict(required=True, metadata={"description": "Participant-safe protocol projection"})
    limits = fields.Nested(LimitsSchema, required=True)
    server_time = fields.String(required=True, metadata={"format": "date-time"})


class SyncRequestSchema(_Lenient):
    records = fields.List(fields.Nested(EnvelopeSchema), required=True,
                          metadata={"description": "At most 500 envelopes and 2 MiB per request"})
    client_time = AwareDateTime(allow_none=True, load_default=None,
                                metadata={"description": "Device wall clock when the request was sent"})


class ReceiptSchema(Schema):
    server_seq = fields.Integer(required=True)
    received_at = fields.String(required=True, metadata={"format": "date-time"})
    sha256 = fields.String(required=True)


class ResultSchema(Schema):
    id = fields.String(required=True, allow_none=True)
    status = fields.String(required=True,
                           metadata={"enum": ["accepted", "duplicate", "conflict", "rejected"]})
    receipt = fields.Nested(ReceiptSchema)
    errors = fields.List(fields.Nested(FieldErrorSchema))
    labels = fields.List(fields.String())


class SyncResponseSchema(Schema):
    results = fields.List(fields.Nested(ResultSchema), required=True)
    server_time = fields.String(required=True, metadata={"format": "date-time"})
    device_token = fields.String(metadata={"description": (
        "Optional: a new device token (rotation). The old token keeps working until the client first "
        "uses this one, then for a grace window. A client may ignore it.")})


class ChangeSchema(Schema):
    seq = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"enum": ["protocol", "timeline", "correction",
                                                            "flag_acknowledged"]})
    at = fields.String(allow_none=True, metadata={"format": "date-time"})
    data = fields.Dict(required=True)


class ChangesResponseSchema(Schema):
    changes = fields.List(fields.Nested(ChangeSchema), required=True)
    cursor = fields.String(required=True, metadata={"description": "Opaque; pass back as since"})
    more = fields.Boolean(required=True)
    server_time = fields.String(required=True, metadata={"format": "date-time"})
