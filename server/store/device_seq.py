"""A ``device_seq`` used twice by one device (SY-07): labelled on the later record and audited.

``device_seq`` is gap-free per device and assigned once at Submit (contract §1), so a second record
with a number the device already used means a restored or copied client folder, a cloned computer or
a client bug: never a rejection (the record is the participant's data), but the record carries the
label ``device_seq_reused`` and an audit row ``sync.device_seq_reused`` names both records, so staff
see it on the record and in the audit-trail review.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

LABEL = "device_seq_reused"


def reused(db: Database, device_id: str | None, candidates: list[tuple[int, Any]], *,
           above: int | None = None) -> dict[str, str]:
    """For records about to be stored (``(index, ValidRecord)``): record id → the id of the earlier
    record (stored, or earlier in this batch) that has the same ``device_seq`` from this device.

    ``above``: the device's ``last_device_seq`` read in this write transaction. Every stored record
    of the device has a seq at most that (the ingest raises it in the transaction that stores
    them), so seqs all above it need no look-up: the usual case, a new entry from its device."""
    if device_id is None or not candidates:
        return {}
    seqs = sorted({r["device_seq"] for _, r in candidates})
    first: dict[int, str] = {}
    if above is not None and seqs[0] > above:
        seqs = []
    for start in range(0, len(seqs), 500):
        part = seqs[start:start + 500]
        for seq, rid in db.execute(
                f"SELECT device_seq, id FROM records WHERE device_id = ? AND device_seq IN ({','.join('?' * len(part))})"
                " ORDER BY server_seq", [device_id, *part]).fetchall():
            first.setdefault(seq, rid)
    out: dict[str, str] = {}
    for _, record in candidates:
        key = record.parsed["id"]
        seq = record["device_seq"]
        if seq in first and first[seq] != key:
            out[key] = first[seq]
        else:
            first.setdefault(seq, key)
    return out
