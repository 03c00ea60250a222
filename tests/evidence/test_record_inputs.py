"""Record inputs as classes, against a real server process (issue 16, items 1, 2 and 9):

- every date and date-time of a record outside the protocol's ``[record_times]`` range (or with a UTC
  offset outside -12:00..+14:00) is rejected per record, naming the field and the rule, while the
  rest of its batch is stored;
- every id form the contract allows (a UUID in any mix of case) syncs, is stored once under its
  lower-case form, and its result and receipt echo what the client sent; malformed ids are rejected
  per record; no batch mixing them produces a 5xx;
- a body with a duplicate JSON key is a 400 with the contract's error body.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from shared.canonical import record_sha256
from shared.protocol import default_time_range
from tests.shared import factories
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.e2e

SYNC = "/api/v1/sync/records"
RANGE = default_time_range()
SUBJECT = "S-001"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("record-inputs"), subjects=(SUBJECT,)) as server:
        yield server


@pytest.fixture(scope="module")
def token(srv):
    return srv.pair(SUBJECT, "participant")["token"]


_seq = iter(range(1, 10**9))


def _record(kind: str, day: date, offset: str = "+08:00", **over) -> dict:
    """A valid envelope of ``kind`` whose every date lies on ``day`` (at ``offset``)."""
    entered = f"{day.isoformat()}T09:30:00{offset}"
    common = {"participant": SUBJECT, "entered_at": entered, "device_seq": next(_seq), **over}
    if kind == "alsfrs_r":
        return factories.alsfrs(3, **common)
    if kind == "nasal_symptoms":
        return factories.nasal(day.isoformat(), **common)
    return factories.dose(2, day.isoformat(), administered_at=f"{day.isoformat()}T09:00:00{offset}", **common)


#: the record fields holding a date or date-time, by type
TIME_FIELDS = {
    "alsfrs_r": {"event_time", "entered_at"},
    "nasal_symptoms": {"event_time", "entered_at", "payload.date"},
    "dose_confirmation": {"event_time", "entered_at", "payload.administered_at", "payload.planned_date"},
}


def _sync(srv, token, records):
    status, body = srv.request("POST", SYNC, {"records": records, "client_time": None}, token=token)
    assert status == 200, (status, body)
    assert [r["id"] for r in body["results"]] == [r.get("id") if isinstance(r, dict) else None
                                                   for r in records]
    return body["results"]


outside_days = st.one_of(
    st.dates(min_value=date(1, 1, 1), max_value=RANGE.earliest - timedelta(days=1)),
    st.dates(min_value=RANGE.latest + timedelta(days=1), max_value=date(9999, 12, 30)),
)
inside_days = st.dates(min_value=RANGE.earliest + timedelta(days=1), max_value=RANGE.latest - timedelta(days=1))
kinds = st.sampled_from(sorted(TIME_FIELDS))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=kinds, bad_day=outside_days, good_day=inside_days, good_kind=kinds)
def test_a_date_outside_the_range_rejects_that_record_only(srv, token, kind, bad_day, good_day, good_kind):
    bad, good = _record(kind, bad_day), _record(good_kind, good_day)
    results = _sync(srv, token, [bad, good])
    assert results[0]["status"] == "rejected"
    named = {e["field"] for e in results[0]["errors"] if e["rule"] == "range.datetime"}
    assert named == TIME_FIELDS[kind], results[0]["errors"]
    assert {e["rule"] for e in results[0]["errors"]} == {"range.datetime"}
    assert results[1]["status"] == "accepted", results[1]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=kinds, day=inside_days, minutes=st.one_of(st.integers(-1439, RANGE.min_offset_minutes - 1),
                                                       st.integers(RANGE.max_offset_minutes + 1, 1439)))
def test_a_utc_offset_outside_civil_use_is_rejected_with_its_field(srv, token, kind, day, minutes):
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    results = _sync(srv, token, [_record(kind, day, offset)])
    assert results[0]["status"] == "rejected"
    named = {e["field"] for e in results[0]["errors"] if e["rule"] == "range.utc_offset"}
    assert named == TIME_FIELDS[kind] - {"payload.date", "payload.planned_date"}


def test_the_first_and_last_day_of_the_range_are_accepted(srv, token):
    records = [_record(k, d) for k in sorted(TIME_FIELDS) for d in (RANGE.earliest, RANGE.latest)]
    # 09:30 at +08:00 on the first day is still that day as written; -12:00 and +14:00 are allowed
    records.append(_record("alsfrs_r", RANGE.earliest, "+14:00"))
    records.append(_record("alsfrs_r", RANGE.latest, "-12:00"))
    assert [r["status"] for r in _sync(srv, token, records)] == ["accepted"] * len(records)


def _case_variant(rid: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in rid)


malformed_ids = st.sampled_from([
    "{%s}", "urn:uuid:%s", " %s", "%s ", "%s\n",
]).map(lambda pattern: pattern % uuid.uuid4()) | st.builds(lambda: uuid.uuid4().hex) | st.text(max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.sampled_from(["lower", "upper", "mixed", "replay", "variant", "malformed"]),
                               st.integers(0, 10**6)), min_size=1, max_size=8),
       malformed=st.lists(malformed_ids, min_size=8, max_size=8), day=inside_days)
def test_every_id_form_syncs_once_and_echoes_what_was_sent(srv, token, plan, malformed, day):
    """Mixed batches of every id form: 200 with one result per record naming the id sent; each UUID
    is stored once (lower case) with the sha256 of the envelope exactly as sent."""
    sent: list[dict] = []
    for i, (form, seed) in enumerate(plan):
        rng = random.Random(seed)
        if form in ("replay", "variant") and sent:
            earlier = sent[rng.randrange(len(sent))]
            if form == "replay":
                sent.append(json.loads(json.dumps(earlier)))
                continue
            if isinstance(earlier.get("id"), str):
                sent.append({**earlier, "id": _case_variant(earlier["id"], rng)})
                continue
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rid = {"upper": rid.upper(), "mixed": _case_variant(rid, rng), "malformed": malformed[i]}.get(form, rid)
        sent.append(_record(rng.choice(sorted(TIME_FIELDS)), day, id=rid))
    results = _sync(srv, token, sent)
    again = _sync(srv, token, sent)   # a replay of the whole batch gets the same outcomes
    con = sqlite3.connect(srv.db_path)
    try:
        for env, res, res2 in zip(sent, results, again):
            assert res["status"] in ("accepted", "duplicate", "conflict", "rejected")
            key = str(uuid.UUID(env["id"])) if _is_uuid_form(env["id"]) else None
            if key is None:   # malformed: rejected naming the id (or, when that id came before, conflict)
                assert res["status"] in ("rejected", "conflict") and res2["status"] == res["status"]
                assert res["status"] == "conflict" or {e["field"] for e in res["errors"]} >= {"id"}
                continue
            rows = con.execute("SELECT id, sha256 FROM records WHERE lower(id) = ?", [key]).fetchall()
            assert rows == [(key, rows[0][1])], rows   # stored once, under the lower-case form
            if res["status"] in ("accepted", "duplicate"):
                assert res["receipt"]["sha256"] == record_sha256(env) == rows[0][1]
                assert res2["status"] == "duplicate" and res2["receipt"] == res["receipt"]
            else:
                assert res["status"] == "conflict" and rows[0][1] != record_sha256(env)
                assert res2["status"] == "conflict"
    finally:
        con.close()


def _is_uuid_form(value) -> bool:
    from shared.ids import UUID_RE

    return isinstance(value, str) and bool(UUID_RE.fullmatch(value))


def test_an_upper_case_client_syncs_with_the_real_sync_engine(srv, tmp_path):
    """A client that writes upper-case UUIDs (the desktop's own engine, ids rewritten) gets every
    entry received: the receipt's sha256 matches what it computed over its own envelope."""
    from tests.evidence.devices import Device

    device = Device(tmp_path, "upper", srv.url, srv.pairing_code(SUBJECT, "participant")["code"])
    try:
        ids = []
        for i in range(5):
            env = device.envelope("alsfrs_r", id=str(uuid.uuid4()).upper())
            ids.append(device.submit(env).id)
        device.sync_until_settled(deadline=__import__("time").monotonic() + 30)
        states = device.states()
        assert [states[i] for i in ids] == ["received"] * 5
    finally:
        device.close()


def test_duplicate_json_keys_are_a_400_with_the_contract_body(srv, token):
    env = _record("alsfrs_r", RANGE.earliest + timedelta(days=400))
    text = json.dumps({"records": [env], "client_time": None})
    bodies = [
        text.replace('"records"', '"client_time": null, "records"', 1),                 # wrapper key twice
        text.replace('"participant"', f'"participant": "{SUBJECT}", "participant"', 1),  # envelope key
        text.replace('"gastrostomy"', '"gastrostomy": true, "gastrostomy"', 1),          # payload key
    ]
    import http.client

    for raw in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        try:
            conn.request("POST", SYNC, body=raw.encode(), headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            status, body = resp.status, json.loads(resp.read())
        finally:
            conn.close()
        assert status == 400, (status, body)
        assert body["ok"] is False and body["code"] == "request.duplicate_key"
        assert body["errors"] and body["errors"][0]["rule"] == "duplicate_key"
    # nothing of those bodies was stored
    con = sqlite3.connect(srv.db_path)
    try:
        assert con.execute("SELECT COUNT(*) FROM records WHERE id = ?", [env["id"]]).fetchone()[0] == 0
    finally:
        con.close()
