"""Sync with the site's server (contract §2): plain Python, never imports Qt.

``SyncEngine(store, transport, clock).run()`` pushes the outbox in batches, records receipts, pulls
changes and returns a :class:`SyncResult`. ``HttpTransport`` speaks HTTP; tests pass a fake.
"""

from desktop.sync.engine import SyncEngine, SyncResult, backoff_delay, split_batches
from desktop.sync.transport import (
    AuthError, CertificateError, HttpTransport, NetworkError, RequestError, ServerError, Transport,
    TransportError, UrlRefused, check_server_url,
)

__all__ = ["SyncEngine", "SyncResult", "backoff_delay", "split_batches", "Transport", "HttpTransport",
           "TransportError", "NetworkError", "CertificateError", "ServerError", "AuthError",
           "RequestError", "UrlRefused", "check_server_url"]
