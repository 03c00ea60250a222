"""How the client talks to the server: a small protocol, and ``HttpTransport`` over requests.

Errors are sorted by what the engine should do with them (anchors.md §3):
``NetworkError`` and ``ServerError`` (5xx) → keep everything and retry later; ``AuthError`` (401) →
stop syncing; ``RequestError`` (other 4xx) → the server's coded answer, e.g. 410 or 429 at pairing.
Certificates are always verified; there is no switch to turn that off.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Protocol, Sequence
from urllib.parse import urlsplit

import requests

API = "/api/v1"
TIMEOUT = (10.0, 60.0)   # connect, read (seconds)


class UrlRefused(ValueError):
    """A server address the client will not use; ``key`` names the message in the catalogue."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_url(url: str) -> str:
    """Return the normalised base address, or raise :class:`UrlRefused`.

    ``https://`` anywhere; ``http://`` only for a loopback host (127.0.0.0/8, ::1, localhost).
    """
    text = (url or "").strip()
    if not text:
        raise UrlRefused("pairing.url.empty")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise UrlRefused("pairing.url.invalid")
    if parts.scheme == "http" and not _is_loopback(host):
        raise UrlRefused("pairing.url.http_not_local")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UrlRefused("pairing.url.invalid")
    path = parts.path.rstrip("/")
    if path.endswith(API):
        path = path[: -len(API)]
    netloc = parts.netloc.lower()
    return f"{parts.scheme}://{netloc}{path}"


def encode_body(body: dict[str, Any]) -> bytes:
    """The exact bytes sent for a JSON body (the engine sizes batches with the same function)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_raw_body(record_texts: Sequence[bytes], client_time: str) -> bytes:
    """A push body built from records already held as JSON text (UTF-8), without parsing them.

    It parses to the same value as ``encode_body({"records": [...], "client_time": client_time})``
    of the parsed records; its length is the stored texts' lengths, one comma between two, and
    the same envelope as an empty body (the engine sizes batches with exactly that sum).
    """
    return (b'{"records":[' + b",".join(record_texts) + b'],"client_time":'
            + json.dumps(client_time, ensure_ascii=False).encode("utf-8") + b"}")


class TransportError(Exception):
    def __init__(self, message: str = "", status: int | None = None, code: str | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message or code or self.__class__.__name__)
        self.status = status
        self.code = code
        self.body = body or {}


class NetworkError(TransportError):
    """No answer: offline, refused, reset, timed out. Retry later."""


class CertificateError(NetworkError):
    """The server's certificate is not trusted. Never skipped; the person is told to call the site."""


class ServerError(TransportError):
    """5xx: the server is having trouble. Retry later."""


class AuthError(TransportError):
    """401: ``auth.device_revoked`` or ``auth.token_invalid``. Stop syncing."""


class RequestError(TransportError):
    """Another 4xx with the contract's error body (``code``, ``errors``)."""


class Transport(Protocol):
    """What the engine needs. A transport may also have ``push_raw(record_texts, client_time)``
    (records as their stored JSON text, UTF-8 bytes; see :class:`HttpTransport`), which the engine
    then uses instead of ``push``."""

    def pair(self, code: str, device_name: str) -> dict[str, Any]: ...

    def push(self, records: list[dict[str, Any]], client_time: str) -> dict[str, Any]: ...

    def changes(self, since: Any) -> dict[str, Any]: ...


class HttpTransport:
    def __init__(self, base_url: str, token: str | None = None,
                 session: requests.Session | None = None, timeout: tuple[float, float] = TIMEOUT) -> None:
        self.base_url = check_server_url(base_url)
        self.token = token
        self.session = session or requests.Session()
        self.session.verify = True
        self.timeout = timeout

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None, data: bytes | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            data = encode_body(body)
        if data is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.request(method, self.base_url + API + path, data=data, params=params,
                                        headers=headers, timeout=self.timeout, verify=True,
                                        allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            raise CertificateError(str(exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise NetworkError(str(exc)) from None
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if resp.status_code >= 500 or resp.ok:
                # a 2xx without a JSON object means the answer was cut or mangled: retry later
                raise ServerError(f"unreadable answer ({resp.status_code})", resp.status_code)
            raise RequestError(f"HTTP {resp.status_code}", resp.status_code)
        if resp.ok:
            return payload
        code = payload.get("code")
        message = payload.get("error") or f"HTTP {resp.status_code}"
        if resp.status_code >= 500:
            raise ServerError(message, resp.status_code, code, payload)
        if resp.status_code == 401:
            raise AuthError(message, 401, code or "auth.token_invalid", payload)
        raise RequestError(message, resp.status_code, code, payload)

    def close(self) -> None:
        self.session.close()

    def pair(self, code: str, device_name: str) -> dict[str, Any]:
        return self._request("POST", "/devices/pair", {"code": code, "device_name": device_name})

    def push(self, records: list[dict[str, Any]], client_time: str) -> dict[str, Any]:
        return self._request("POST", "/sync/records", {"records": records, "client_time": client_time})

    def push_raw(self, record_texts: Sequence[bytes], client_time: str) -> dict[str, Any]:
        """``push`` of records held as their stored JSON text (UTF-8 bytes), sent as they are."""
        return self._request("POST", "/sync/records", data=encode_raw_body(record_texts, client_time))

    def changes(self, since: Any) -> dict[str, Any]:
        return self._request("GET", "/sync/changes", params={"since": since})
