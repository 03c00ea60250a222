"""Behind nginx (ALS_EPRO_TRUSTED_PROXY) rate limits and audit rows see the client's real address."""

import json
import sqlite3
import urllib.error
import urllib.request

import pytest

from tests.support.live_server import LiveServer


def bad_pairing(url, forwarded_for):
    req = urllib.request.Request(url + "/api/v1/devices/pair", method="POST",
                                 data=json.dumps({"code": "ZZZZ-ZZZZ-ZZ", "device_name": "x"}).encode(),
                                 headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    with err.value:
        return err.value.code


def attempt_addresses(db_path):
    con = sqlite3.connect(db_path)
    try:
        return [r[0] for r in con.execute("SELECT client_addr FROM pairing_attempts ORDER BY rowid")]
    finally:
        con.close()


@pytest.mark.e2e
@pytest.mark.parametrize("trusted,expected", [("127.0.0.1", "203.0.113.9"), (None, "127.0.0.1")])
def test_forwarded_address_is_used_only_from_a_trusted_proxy(tmp_path, trusted, expected):
    env = {"ALS_EPRO_TRUSTED_PROXY": trusted} if trusted else {}
    with LiveServer(tmp_path, env=env) as srv:
        assert bad_pairing(srv.url, "203.0.113.9") == 400
        assert attempt_addresses(srv.db_path) == [expected]
