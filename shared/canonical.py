"""Canonical form and sha256 of a record envelope (contract §1).

The hash is taken over the envelope without the server-only fields, serialised with sorted keys,
compact separators and UTF-8, with every value exactly as received.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

SERVER_ONLY_FIELDS = ("received_at", "server_seq", "receipt")

#: the canonical serialisation of any JSON value (sorted keys, compact separators, characters as
#: they are): one encoder for every call, which ``json.dumps`` with these options would build anew
#: each time (the ingest serialises several values a record); its output is ``json.dumps``'s
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def strip_server_fields(envelope: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in envelope.items() if k not in SERVER_ONLY_FIELDS}


def canonical_text(envelope: Mapping[str, Any]) -> str:
    """The canonical form as text: what the server stores as the record's ``envelope`` (the same
    string it hashes, so one serialisation serves both)."""
    return canonical_json(strip_server_fields(envelope))


def canonical_bytes(envelope: Mapping[str, Any]) -> bytes:
    return canonical_text(envelope).encode("utf-8")


def text_sha256(text: str) -> str:
    """The sha256 of a canonical text made by :func:`canonical_text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_sha256(envelope: Mapping[str, Any]) -> str:
    return text_sha256(canonical_text(envelope))
