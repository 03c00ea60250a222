"""Pairing (contract §2, IA-11, IA-12): ≥40-bit single-use expiring codes, hashed, rate-limited, audited."""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

import pytest

from server.clock import utc_now
from server.store.audit import audit_rows
from server.store.pairing import (
    ALPHABET, CODE_LENGTH, format_code, hash_code, issue_pairing_code, new_code, normalize_code,
)
from server.store.participants import withdraw
from shared.errors import EproError
from shared.protocol import load_protocol
from tests.server.helpers import ADMIN, assert_error

PAIR = "/api/v1/devices/pair"


def _redeem(client, code, addr="10.0.0.1", name="home pc"):
    return client.post(PAIR, json={"code": code, "device_name": name}, environ_base={"REMOTE_ADDR": addr})


def test_codes_carry_at_least_40_bits_from_an_unambiguous_alphabet():
    assert len(set(ALPHABET)) == 32 and not set("ILOU") & set(ALPHABET)
    assert CODE_LENGTH * math.log2(len(ALPHABET)) >= 40
    codes = [new_code() for _ in range(2000)]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == CODE_LENGTH and set(c) <= set(ALPHABET) for c in codes)
    # every symbol turns up: the generator uses the whole alphabet
    assert set("".join(codes)) == set(ALPHABET)


def test_code_input_is_forgiving_about_case_spaces_dashes_and_look_alikes():
    assert format_code("ABCDEFGH12") == "ABCD-EFGH-12"
    assert normalize_code(" abcd-efgh 12 ") == "ABCDEFGH12"
    assert normalize_code("O0Il") == "0011"
    assert hash_code("abcd efgh-12") == hash_code("ABCD-EFGH-12")


def test_pair_response_is_exactly_the_contract(client, db):
    issued = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)
    assert issued["expires_at"].endswith("Z")
    resp = _redeem(client, issued["code"].lower().replace("-", " "))
    assert resp.status_code == 201
    body = resp.get_json()
    assert set(body) == {"device_id", "token", "participant", "role", "originator", "protocol", "limits",
                         "server_time"}
    assert body["participant"] == "S-001" and body["role"] == "participant"
    assert body["originator"] == "participant:S-001"
    assert body["protocol"] == load_protocol().participant_projection()
    assert body["limits"] == {"max_records": 500, "max_bytes": 2097152}
    assert len(body["token"]) >= 43  # 256 bits, url-safe base64
    stored = db.execute("SELECT token_hash FROM devices WHERE id = ?", [body["device_id"]]).fetchone()[0]
    assert stored == hashlib.sha256(body["token"].encode()).hexdigest()
    dump = "\n".join(db.iterdump())
    assert body["token"] not in dump and issued["code"].replace("-", "") not in dump


def test_caregiver_code_without_caregiver_creates_one_and_the_device_speaks_for_them(client, db):
    issued = issue_pairing_code(db, "S-001", "caregiver", actor=ADMIN, caregiver_name="Wang Li")
    body = _redeem(client, issued["code"]).get_json()
    assert body["role"] == "caregiver" and body["originator"] == f"caregiver:{issued['caregiver_id']}"
    again = issue_pairing_code(db, "S-001", "caregiver", issued["caregiver_id"], actor=ADMIN)
    assert again["caregiver_id"] == issued["caregiver_id"]
    assert db.execute("SELECT COUNT(*) FROM caregivers").fetchone()[0] == 1


def test_codes_only_for_active_participants_and_their_own_caregivers(db):
    other = issue_pairing_code(db, "S-002", "caregiver", actor=ADMIN)["caregiver_id"]
    with pytest.raises(EproError) as err:
        issue_pairing_code(db, "S-001", "caregiver", other, actor=ADMIN)
    assert err.value.code == "caregiver.not_found"
    with pytest.raises(EproError):
        issue_pairing_code(db, "S-001", "participant", other, actor=ADMIN)
    withdraw(db, "S-001", reason="moved away", actor=ADMIN)
    with pytest.raises(EproError) as err:
        issue_pairing_code(db, "S-001", "participant", actor=ADMIN)
    assert err.value.code == "participant.withdrawn"


def test_a_code_works_once_and_not_after_it_expires(client, db):
    code = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    assert _redeem(client, code).status_code == 201
    assert_error(_redeem(client, code), 410, "pairing.code_used")
    late = issue_pairing_code(db, "S-001", "participant", actor=ADMIN, ttl_minutes=10,
                              now=utc_now() - timedelta(minutes=11))["code"]
    assert_error(_redeem(client, late), 410, "pairing.code_expired")
    assert db.execute("SELECT COUNT(*) FROM devices").fetchone()[0] == 1


def test_failures_are_rate_limited_per_address_and_audited(app, client, db):
    app.config["PAIRING_MAX_FAILURES_PER_ADDRESS"] = 3
    good = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    for _ in range(3):
        assert_error(_redeem(client, "AAAA-BBBB-CC", addr="10.0.0.66"), 400, "pairing.code_invalid")
    # past the limit even the right code is refused, before it is looked at
    assert_error(_redeem(client, good, addr="10.0.0.66"), 429, "pairing.rate_limited")
    # another address is unaffected
    assert _redeem(client, good, addr="10.0.0.7").status_code == 201
    # logged to the bounded security log (issue 16), counted into the audit trail per interval
    from server.store.security_log import events

    failed = events(db, "pairing.failed")
    limited = events(db, "pairing.rate_limited")
    assert len(failed) == 3 and len(limited) == 1
    assert all(r["client_addr"] == "10.0.0.66" for r in failed + limited)


def test_there_is_no_global_lock_out(app, client, db):
    """Failures from many addresses slow only those addresses; the site's own pairing still works."""
    app.config["PAIRING_MAX_FAILURES_PER_ADDRESS"] = 2
    for i in range(40):
        for _ in range(3):
            _redeem(client, f"AAAA-BBBB-{i:02d}", addr=f"10.0.1.{i}")
    good = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    assert _redeem(client, good, addr="10.0.2.1").status_code == 201


def test_delays_grow_per_address_and_tell_the_client_how_long(db):
    from server.store.pairing import RateLimits, redeem_pairing_code

    limits = RateLimits(per_address=2, per_code=100, base_delay_seconds=2, max_delay_seconds=60)
    t = utc_now()
    waits = []
    for i in range(8):
        with pytest.raises(EproError) as err:     # a guess right after the previous failure
            redeem_pairing_code(db, f"WRONG{i}", "pc", client_addr="10.3.3.3", limits=limits, now=t)
        if err.value.status == 429:
            waits.append(err.value.extra["retry_after_s"])
            with pytest.raises(EproError) as err:       # waiting that long lets the next guess through
                t += timedelta(seconds=waits[-1])
                redeem_pairing_code(db, f"WRONG{i}", "pc", client_addr="10.3.3.3", limits=limits, now=t)
            assert err.value.code == "pairing.code_invalid"
    assert waits == [2, 4, 8, 16, 32, 60]            # doubling, capped
    # IPv6: the whole /64 counts as one address
    for i in range(2):
        with pytest.raises(EproError):
            redeem_pairing_code(db, f"V6{i}", "pc", client_addr=f"2001:db8::{i + 1}", limits=limits, now=t)
    with pytest.raises(EproError) as err:
        redeem_pairing_code(db, "V6X", "pc", client_addr="2001:db8::ffff", limits=limits, now=t)
    assert err.value.code == "pairing.rate_limited"


def test_one_code_tried_from_many_addresses_slows_down_on_its_own(app, client, db):
    app.config["PAIRING_MAX_FAILURES_PER_CODE"] = 3
    for i in range(3):
        assert_error(_redeem(client, "ZZZZ-YYYY-XX", addr=f"10.0.4.{i}"), 400, "pairing.code_invalid")
    assert_error(_redeem(client, "ZZZZ-YYYY-XX", addr="10.0.4.99"), 429, "pairing.rate_limited")
    good = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    assert _redeem(client, good, addr="10.0.4.99").status_code == 201


def test_failures_age_out_of_the_window(app, client, db):
    from server.store.pairing import RateLimits, redeem_pairing_code

    limits = RateLimits(max_delay_seconds=60, per_address=1, memory_seconds=60)
    past = utc_now() - timedelta(minutes=5)
    with pytest.raises(EproError):
        redeem_pairing_code(db, "AAAA-BBBB-CC", "pc", client_addr="10.9.9.9", limits=limits, now=past)
    code = issue_pairing_code(db, "S-001", "participant", actor=ADMIN)["code"]
    assert redeem_pairing_code(db, code, "pc", client_addr="10.9.9.9", limits=limits).device["subject"] == "S-001"
