"""A loopback HTTP fault proxy for end-to-end tests: delay, drop, cut a response halfway, duplicate.

    with FaultProxy(srv.port, seed=7, rates={"drop": .1, "cut": .1, "duplicate": .1, "delay": .2},
                    max_faults=40, match=sync_records) as proxy:
        transport = HttpTransport(proxy.url, token)     # the client talks to the proxy
        ...
        proxy.counts()            # Counter of faults applied, e.g. {"pass": 31, "cut": 4, ...}
        proxy.replay_all()        # send every recorded request again, straight to the server

Each client request is read whole (request line, headers, ``Content-Length`` body), sent upstream on a
fresh connection with ``Connection: close``, and the whole response read back before the fault decides
what the client gets:

- ``pass``: the response, unchanged;
- ``delay``: the same after a pause of up to ``max_delay_s`` (before forwarding);
- ``drop``: nothing reaches the server; the client's connection is reset;
- ``cut``: the server handles the request; the client gets the first half of the response bytes, then
  a reset (the server stored, the client never learns it);
- ``duplicate``: the request reaches the server twice at once; the client gets the first answer.

Bounded and seeded: faults come from ``random.Random(seed)`` (or from :meth:`script`, consumed first),
only for requests ``match`` accepts, and at most ``max_faults`` of them; after that everything passes.
With concurrent clients the *sequence* of faults is fixed by the seed, which request gets which
depends on arrival order. ``on_forwarded`` (one-shot, see :meth:`once_forwarded`) runs right after a
matching request was written to the server, before its answer is read: the place to SIGKILL the
server in the middle of a batch. Chunked request bodies are not supported (the client never sends
them); such a request is answered by a reset.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

FAULTS = ("pass", "delay", "drop", "cut", "duplicate")
UPSTREAM_TIMEOUT_S = 60.0
CLIENT_TIMEOUT_S = 30.0
MAX_HEADER_BYTES = 64 * 1024


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def raw(self) -> bytes:
        """The request as sent upstream: hop-by-hop headers replaced by ``Connection: close``."""
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers
                  if k.lower() not in ("connection", "keep-alive", "proxy-connection", "content-length")]
        lines += [f"Content-Length: {len(self.body)}", "Connection: close"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Event:
    """What happened to one client request."""

    seq: int
    method: str
    path: str
    fault: str
    status: int | None = None          # the server's status (first copy), None if it never answered
    delivered: int = 0                 # response bytes the client received
    response_len: int = 0
    upstream_copies: int = 0
    delay: float = 0.0
    done: threading.Event = field(default_factory=threading.Event, repr=False)


class ProxyError(RuntimeError):
    pass


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_HEADER_BYTES:
            raise ProxyError("request headers too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    req = Request(method, path, headers, b"")
    if (req.header("Transfer-Encoding") or "").lower() == "chunked":
        raise ProxyError("chunked request bodies are not supported")
    length = int(req.header("Content-Length") or 0)
    body = rest
    while len(body) < length:
        chunk = conn.recv(min(65536, length - len(body)))
        if not chunk:
            return None
        body += chunk
    req.body = body[:length]
    return req


def _reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped network path or a crashed peer looks."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


def _status_of(response: bytes) -> int | None:
    try:
        return int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


class FaultProxy:
    def __init__(self, upstream_port: int, *, seed: int = 0, rates: dict[str, float] | None = None,
                 max_faults: int | None = None, max_delay_s: float = 0.2,
                 match: Callable[[str, str], bool] | None = None, upstream_host: str = "127.0.0.1",
                 record: bool = True) -> None:
        unknown = set(rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        if sum((rates or {}).values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.upstream = (upstream_host, upstream_port)
        self.rng = random.Random(seed)
        self.rates = dict(rates or {})
        self.max_faults = max_faults
        self.max_delay_s = max_delay_s
        self.match = match or (lambda method, path: True)
        self.record = record
        self.events: list[Event] = []
        self.recorded: list[Request] = []
        self._script: list[str] = []
        self._faults_applied = 0
        self._hook: Callable[[Event], None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self.port: int | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise ProxyError("not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.settimeout(0.1)       # so stop() is noticed
        self._listener, self.port = sock, sock.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + timeout
        for worker in list(self._workers):
            worker.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control --------------------------------------------------------------------------------
    def script(self, *faults: str) -> None:
        """Apply these faults, in order, to the next matching requests (before any random ones)."""
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(fault)
        with self._lock:
            self._script.extend(faults)

    def once_forwarded(self, hook: Callable[[Event], None]) -> None:
        """Run ``hook`` once, right after the next matching request was written to the server."""
        with self._lock:
            self._hook = hook

    def set_rates(self, rates: dict[str, float]) -> None:
        with self._lock:
            self.rates = dict(rates)

    def counts(self) -> Counter:
        with self._lock:
            return Counter(e.fault for e in self.events)

    def matched_events(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    # --- the loop ---------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()

    def _decide(self, req: Request) -> tuple[str, Event | None, Callable[[Event], None] | None]:
        with self._lock:
            if not self.match(req.method, req.path.split("?")[0]):
                return "pass", None, None
            if self._script:
                fault = self._script.pop(0)
            elif self.max_faults is not None and self._faults_applied >= self.max_faults:
                fault = "pass"
            else:
                roll, fault = self.rng.random(), "pass"
                for name in FAULTS[1:]:
                    roll -= self.rates.get(name, 0.0)
                    if roll < 0:
                        fault = name
                        break
            if fault != "pass":
                self._faults_applied += 1
            delay = self.rng.uniform(0, self.max_delay_s) if fault == "delay" else 0.0
            event = Event(len(self.events) + 1, req.method, req.path, fault, delay=delay)
            self.events.append(event)
            if self.record:
                self.recorded.append(req)
            hook = None
            if fault != "drop":   # the hook waits for a request that reaches the server
                hook, self._hook = self._hook, None
            return fault, event, hook

    def _upstream(self, req: Request, event: Event | None,
                  hook: Callable[[Event], None] | None = None) -> bytes:
        """Send the request on a fresh connection and read the whole answer (b"" if none came)."""
        try:
            up = socket.create_connection(self.upstream, timeout=UPSTREAM_TIMEOUT_S)
        except OSError:
            return b""
        try:
            up.sendall(req.raw())
            if event is not None:
                with self._lock:
                    event.upstream_copies += 1
            if hook is not None and event is not None:
                hook(event)
            chunks = []
            while True:
                try:
                    chunk = up.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError:
            return b""
        finally:
            up.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(CLIENT_TIMEOUT_S)
        event = None
        try:
            try:
                req = _read_request(conn)
            except (OSError, ProxyError, ValueError):
                _reset(conn)
                return
            if req is None:
                conn.close()
                return
            fault, event, hook = self._decide(req)
            if fault == "drop":
                _reset(conn)
                return
            if fault == "delay":
                time.sleep(event.delay if event is not None else 0.0)
            if fault == "duplicate":
                answers: list[bytes] = [b"", b""]
                twin = threading.Thread(target=lambda: answers.__setitem__(1, self._upstream(req, event)),
                                        daemon=True)
                twin.start()
                answers[0] = self._upstream(req, event, hook)
                twin.join(UPSTREAM_TIMEOUT_S)
                response = answers[0]
            else:
                response = self._upstream(req, event, hook)
            if event is not None:
                event.status, event.response_len = _status_of(response), len(response)
            if not response:
                _reset(conn)
                return
            if fault == "cut":
                part = response[: len(response) // 2]
                conn.sendall(part)
                if event is not None:
                    event.delivered = len(part)
                _reset(conn)
                return
            conn.sendall(response)
            if event is not None:
                event.delivered = len(response)
            conn.close()
        except OSError:
            _reset(conn)
        finally:
            if event is not None:
                event.done.set()

    # --- replay -----------------------------------------------------------------------------------
    def replay(self, req: Request, timeout: float = 60.0) -> tuple[int, bytes]:
        """Send a recorded request again, straight to the server; (status, body)."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=timeout)
        try:
            headers = {k: v for k, v in req.headers
                       if k.lower() not in ("connection", "keep-alive", "content-length", "host")}
            conn.request(req.method, req.path, body=req.body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()
