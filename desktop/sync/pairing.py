"""Pair this computer with a one-time code, unpair it, and export unsent entries for the site."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from desktop.clock import Clock, clock_offset_s, utc_iso
from desktop.store import DEFAULT_LIMITS, Pairing, Store
from desktop.store.db import secure_file
from desktop.sync.credentials import TokenStore
from desktop.sync.transport import HttpTransport, Transport, TransportError, check_server_url

EXPORT_FORMAT = "als-epro-unsent/1"
_CODE_NOISE = re.compile(r"[\s\-\u2010-\u2015\u2212_]+")


class StillWaiting(Exception):
    """Unpair refused: entries have not been received by the site yet."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} entries waiting")
        self.waiting = waiting


def normalize_code(code: str) -> str:
    """The code as typed or pasted, without spaces and dashes (any kind)."""
    return _CODE_NOISE.sub("", code or "")


def _limits(raw: Any) -> dict[str, int]:
    out = dict(DEFAULT_LIMITS)
    if isinstance(raw, dict):
        for key in out:
            if isinstance(raw.get(key), int) and raw[key] > 0:
                out[key] = raw[key]
    return out


def pair_device(store: Store, tokens: TokenStore, clock: Clock, server_url: str, code: str,
                device_name: str,
                transport_factory: Callable[[str], Transport] = HttpTransport) -> Pairing:
    """Exchange a one-time code for a device identity and token; store both.

    Raises ``UrlRefused`` (bad address), ``TransportError`` (network, certificate, 410, 429…).
    """
    url = check_server_url(server_url)
    before = clock.now()
    transport = transport_factory(url)
    try:
        body = transport.pair(normalize_code(code), device_name.strip())
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()
    after = clock.now()
    try:
        pairing = Pairing(server_url=url, device_id=str(body["device_id"]),
                          participant=str(body["participant"]), role=str(body["role"]),
                          originator=str(body.get("originator") or ""), device_name=device_name.strip(),
                          protocol=dict(body.get("protocol") or {}), limits=_limits(body.get("limits")),
                          paired_at=utc_iso(after))
        token = str(body["token"])
    except (KeyError, TypeError, ValueError):
        raise TransportError("the pairing answer is incomplete", code="pairing.bad_answer") from None
    pairing.token_storage = tokens.save(pairing.device_id, token)
    store.settings.save_pairing(pairing)
    for key in ("schedule", "participant_schedule", "timeline"):
        if isinstance(body.get(key), dict):
            store.settings.set("timeline", body[key])
    _learn_offset(store, body.get("server_time"), before, after)
    return pairing


def _learn_offset(store: Store, server_time: Any, before: datetime, after: datetime) -> None:
    offset = clock_offset_s(server_time, before, after)
    if offset is not None:
        store.settings.update({"clock_offset_s": offset, "last_server_time": server_time})


def unpair(store: Store, tokens: TokenStore) -> None:
    """Forget the pairing and its token; refused while anything is waiting to be received."""
    pairing = store.settings.pairing()
    if pairing is None:
        return
    waiting = len(store.outbox.waiting(pairing.device_id))
    if waiting:
        raise StillWaiting(waiting)
    for draft in store.drafts.all(pairing.device_id):
        store.drafts.discard(draft.id)
    tokens.delete(pairing.device_id)
    store.settings.clear_pairing()


def export_unsent(store: Store, path: Path | str, exported_at: str | None = None) -> int:
    """Write every waiting entry to ``path`` for ``als-epro-server import FILE``; returns the count.

    Format: ``{"format": "als-epro-unsent/1", "device_id", "participant", "records": [envelopes]}``
    plus ``exported_at`` when given.
    The entries stay in the outbox: the export copies, it never removes.
    """
    pairing = store.settings.pairing()
    if pairing is None:
        raise ValueError("not paired")
    waiting = store.outbox.waiting(pairing.device_id)
    doc = {"format": EXPORT_FORMAT, "device_id": pairing.device_id, "participant": pairing.participant,
           "records": [e.envelope for e in waiting]}
    if exported_at:
        doc["exported_at"] = exported_at
    target = Path(path)
    tmp = secure_file(target.with_name(target.name + ".part"))
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return len(waiting)
