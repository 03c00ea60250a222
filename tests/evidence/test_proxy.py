"""The fault proxy itself does what it says: each fault, the seed, the bound, the forwarding hook."""

from __future__ import annotations

import http.server
import threading

import pytest
import requests

from tests.support.proxy import FaultProxy


class Upstream(http.server.BaseHTTPRequestHandler):
    seen: list[bytes] = []
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Upstream.lock:
            Upstream.seen.append(body)
        data = b'{"echo": "' + body + b'", "pad": "' + b"x" * 4000 + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def upstream():
    Upstream.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def post(proxy, body=b"hello"):
    return requests.post(proxy.url + "/x", data=body, timeout=10)


def test_pass_and_delay_deliver_the_answer_unchanged(upstream):
    with FaultProxy(upstream) as proxy:
        proxy.script("pass", "delay")
        for _ in range(2):
            resp = post(proxy)
            assert resp.status_code == 200 and resp.json()["echo"] == "hello"
    assert [e.fault for e in proxy.events] == ["pass", "delay"]
    assert Upstream.seen == [b"hello", b"hello"]


def test_drop_never_reaches_the_server_and_resets_the_client(upstream):
    with FaultProxy(upstream) as proxy:
        proxy.script("drop")
        with pytest.raises(requests.exceptions.ConnectionError):
            post(proxy)
        assert Upstream.seen == []
        assert post(proxy).status_code == 200   # the next one passes


def test_cut_reaches_the_server_but_the_client_gets_half_an_answer(upstream):
    with FaultProxy(upstream) as proxy:
        proxy.script("cut")
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
            post(proxy, b"stored")
    assert Upstream.seen == [b"stored"]
    event = proxy.events[0]
    assert event.status == 200 and 0 < event.delivered < event.response_len


def test_duplicate_delivers_the_request_twice(upstream):
    with FaultProxy(upstream) as proxy:
        proxy.script("duplicate")
        assert post(proxy, b"twice").status_code == 200
    assert Upstream.seen == [b"twice", b"twice"] and proxy.events[0].upstream_copies == 2


def test_the_seed_fixes_the_fault_sequence_and_max_faults_bounds_it(upstream):
    rates = {"drop": 0.2, "cut": 0.2, "duplicate": 0.2, "delay": 0.2}
    runs = []
    for _ in range(2):
        with FaultProxy(upstream, seed=42, rates=rates, max_faults=5, max_delay_s=0.01) as proxy:
            for i in range(12):
                try:
                    post(proxy, str(i).encode())
                except requests.exceptions.RequestException:
                    pass
        runs.append([e.fault for e in proxy.events])
    assert runs[0] == runs[1]
    assert sum(f != "pass" for f in runs[0]) == 5 and runs[0][-1] == "pass"


def test_only_matching_requests_get_faults_and_the_hook_fires_once(upstream):
    fired = []
    with FaultProxy(upstream, rates={"drop": 1.0}, match=lambda m, p: p == "/hit") as proxy:
        proxy.once_forwarded(lambda event: fired.append(event.path))
        assert requests.post(proxy.url + "/other", data=b"a", timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(proxy.url + "/hit", data=b"b", timeout=10)
        proxy.set_rates({})
        assert requests.post(proxy.url + "/hit", data=b"c", timeout=10).status_code == 200
        assert requests.post(proxy.url + "/hit", data=b"d", timeout=10).status_code == 200
    # the dropped request never reached the server, so the hook fired on the next forwarded one
    assert fired == ["/hit"] and Upstream.seen == [b"a", b"c", b"d"]
    assert [e.fault for e in proxy.events] == ["drop", "pass", "pass"]


def test_replay_sends_a_recorded_request_straight_to_the_server(upstream):
    with FaultProxy(upstream) as proxy:
        post(proxy, b"again")
        status, body = proxy.replay(proxy.recorded[0])
    assert status == 200 and b'"echo": "again"' in body and Upstream.seen == [b"again", b"again"]
