"""SQL for the server: plain functions ``f(db, ...)``, no Flask.

Every mutating function runs in :func:`server.db.write_tx` and writes its audit row
(:func:`server.store.audit.write_audit`) in that same transaction, so a data change without its
audit row cannot be committed (AT-01).
"""

from __future__ import annotations


class NotFound(LookupError):
    "A named site, participant, caregiver, device or record does not exist"
