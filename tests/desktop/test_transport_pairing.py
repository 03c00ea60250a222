"""Server addresses, certificate and HTTP error mapping, pairing, unpairing, the token's home."""

import http.server
import json
import threading

import keyring
import pytest

from desktop.sync.credentials import TokenStore
from tests.support.filekeyring import MemoryKeyring
from desktop.sync.pairing import StillWaiting, normalize_code, pair_device, unpair
from desktop.sync.transport import (
    AuthError, CertificateError, HttpTransport, NetworkError, RequestError, ServerError, UrlRefused,
    check_server_url,
)

from tests.desktop.helpers import fill_alsfrs


@pytest.mark.parametrize("url,expected", [
    ("https://epro.example.org/", "https://epro.example.org"),
    ("epro.example.org", "https://epro.example.org"),
    ("https://epro.example.org/api/v1", "https://epro.example.org"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.9.9.9", "http://127.9.9.9"),
    ("http://localhost:5000/", "http://localhost:5000"),
    ("http://[::1]:8000", "http://[::1]:8000"),
])
def test_accepted_addresses(url, expected):
    assert check_server_url(url) == expected


@pytest.mark.parametrize("url,key", [
    ("http://epro.example.org", "pairing.url.http_not_local"),
    ("http://192.168.1.5:8000", "pairing.url.http_not_local"),
    ("http://128.0.0.1", "pairing.url.http_not_local"),
    ("ftp://x.org", "pairing.url.invalid"),
    ("https://user:pw@x.org", "pairing.url.invalid"),
    ("  ", "pairing.url.empty"),
])
def test_refused_addresses(url, key):
    with pytest.raises(UrlRefused) as err:
        check_server_url(url)
    assert err.value.key == key


def test_code_ignores_spaces_and_dashes():
    assert normalize_code(" K7QX-9M2P 4ZT\u2013A ") == "K7QX9M2P4ZTA"


class Handler(http.server.BaseHTTPRequestHandler):
    answers: dict = {}

    def log_message(self, *a):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        Handler.seen.append((self.command, self.path, body, self.headers.get("Authorization")))
        status, payload = Handler.answers[self.path.split("?")[0]]
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def http_server():
    Handler.answers, Handler.seen = {}, []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def err(status, code):
    return status, {"ok": False, "status": status, "code": code, "error": "words", "errors": []}


@pytest.mark.parametrize("answer,exc,code", [
    (err(401, "auth.device_revoked"), AuthError, "auth.device_revoked"),
    (err(410, "pairing.code_used"), RequestError, "pairing.code_used"),
    (err(429, "pairing.rate_limited"), RequestError, "pairing.rate_limited"),
    (err(503, "maintenance"), ServerError, "maintenance"),
    ((502, b"<html>bad gateway</html>"), ServerError, None),
    ((200, b'{"results": [tru'), ServerError, None),
])
def test_http_errors_are_sorted_by_what_to_do(http_server, answer, exc, code):
    Handler.answers["/api/v1/sync/records"] = answer
    with pytest.raises(exc) as e:
        HttpTransport(http_server, token="t").push([], "now")
    assert e.value.code == code


def test_push_sends_bearer_token_and_json(http_server):
    Handler.answers["/api/v1/sync/records"] = (200, {"results": [], "server_time": "x"})
    HttpTransport(http_server, token="secret").push([{"id": "a"}], "T")
    method, path, body, auth = Handler.seen[0]
    assert (method, path, body, auth) == ("POST", "/api/v1/sync/records",
                                          {"records": [{"id": "a"}], "client_time": "T"}, "Bearer secret")


def test_push_raw_sends_the_stored_texts_as_the_same_json_as_push(http_server):
    """Issue 13: records held as their stored JSON text go out unparsed, and the server reads the
    same value as ``push`` of the parsed records; errors are sorted the same way."""
    Handler.answers["/api/v1/sync/records"] = (200, {"results": [], "server_time": "x"})
    records = [{"id": "a", "note": "呼吸 é \"q\"", "n": [1, 2.5, None]}, {"id": "b"}]
    texts = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    t = HttpTransport(http_server, token="secret")
    assert t.push_raw(texts, "T") == {"results": [], "server_time": "x"}
    t.push(records, "T")
    (m1, p1, raw_body, a1), (m2, p2, parsed_body, a2) = Handler.seen
    assert (m1, p1, a1) == (m2, p2, a2) == ("POST", "/api/v1/sync/records", "Bearer secret")
    assert raw_body == parsed_body == {"records": records, "client_time": "T"}
    Handler.answers["/api/v1/sync/records"] = err(413, "request.too_large")
    with pytest.raises(RequestError) as e:
        t.push_raw(texts, "T")
    assert (e.value.status, e.value.code) == (413, "request.too_large")


def test_nothing_listening_is_a_network_error():
    with pytest.raises(NetworkError):
        HttpTransport("http://127.0.0.1:9", token="t").changes(0)


def test_untrusted_certificate_is_a_certificate_error(tmp_path):
    import ssl
    import subprocess
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"], check=True,
                   capture_output=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        with pytest.raises(CertificateError):
            HttpTransport(f"https://localhost:{srv.server_address[1]}").pair("X", "pc")
    finally:
        srv.shutdown()
        srv.server_close()


def test_token_goes_to_the_keyring_when_there_is_one(tmp_path):
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        tokens = TokenStore(tmp_path)
        assert tokens.save("dev", "tok") == "keyring"
        assert tokens.load("dev") == "tok" and not tokens.fallback
        assert "tok" in ring.data.values()
        tokens.delete("dev")
        assert ring.data == {}
    finally:
        keyring.set_keyring(previous)


def test_without_a_keyring_the_token_file_is_readable_only_by_the_user(tmp_path):
    from keyring.backends.fail import Keyring as Fail
    previous = keyring.get_keyring()
    keyring.set_keyring(Fail())
    try:
        tokens = TokenStore(tmp_path)
        assert tokens.save("dev", "tok") == "file"
        assert tokens.fallback and tokens.load("dev") == "tok"
        assert (tokens.fallback_path.stat().st_mode & 0o777) == 0o600
    finally:
        keyring.set_keyring(previous)


def test_pair_stores_identity_token_limits_and_offset(http_server, store, clock, tmp_path):
    Handler.answers["/api/v1/devices/pair"] = (201, {
        "device_id": "d-9", "token": "tok-9", "participant": "001-017", "role": "caregiver",
        "originator": "caregiver:c-3", "protocol": {"site": {"phone": "010"}},
        "limits": {"max_records": 50, "max_bytes": 100000}, "server_time": "2026-03-10T01:29:00+00:00"})
    tokens = TokenStore(tmp_path / "tok")
    p = pair_device(store, tokens, clock, http_server + "/", "AB-CD EF", "Kitchen PC")
    assert Handler.seen[0][2] == {"code": "ABCDEF", "device_name": "Kitchen PC"}
    assert (p.participant, p.role, p.limits["max_records"]) == ("001-017", "caregiver", 50)
    assert store.settings.pairing().device_id == "d-9"
    assert tokens.load("d-9") == "tok-9"
    assert store.settings.get("clock_offset_s") == 60.0


def test_unpair_refused_while_entries_wait(entries, paired, tmp_path):
    tokens = TokenStore(tmp_path / "tok")
    entries.submit(fill_alsfrs(entries), "en")
    with pytest.raises(StillWaiting) as e:
        unpair(paired, tokens)
    assert e.value.waiting == 1 and paired.settings.pairing() is not None
    paired.db.execute("UPDATE entries SET state = 'received'")
    paired.db.conn.commit()
    unpair(paired, tokens)
    assert paired.settings.pairing() is None
    assert len(paired.outbox.entries()) == 1      # history stays on the computer
