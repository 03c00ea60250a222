"""API fuzzing beyond ``tests/server/test_fuzz.py`` (PS-08): coverage of the document, and fuzzing
*behind* authentication.

The server-area fuzz test sends generated requests without credentials, so on ``/sync/records`` and
``/sync/changes`` it mostly meets the 401 of the auth layer. Here the same OpenAPI-driven generation
(schemathesis strategies run by hypothesis; bounded, no example database) carries a valid device
token, records are pointed at the device's own participant so they get past device binding into
validation and storage, both generation modes run (valid-looking and schema-violating data), and every
answer is checked against the document: no 5xx, a documented status, the documented content type and
body schema, and the contract's error body for every 4xx.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from server import create_app
from server.api import API_PREFIX
from server.store.audit import Actor
from server.store.pairing import issue_pairing_code
from tests.evidence.devices import new_server_db

pytestmark = pytest.mark.slow
SUBJECT = "S-001"


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-auth") / "server.sqlite"
    db = new_server_db(path, (SUBJECT,))
    code = issue_pairing_code(db, SUBJECT, "participant", actor=Actor.cli())["code"]
    db.close()
    app = create_app({"DB": str(path), "TESTING": True,
                      "PAIRING_MAX_FAILURES_PER_ADDRESS": 10**9, "PAIRING_MAX_FAILURES_PER_CODE": 10**9})
    resp = app.test_client().post(f"{API_PREFIX}/devices/pair", json={"code": code, "device_name": "fuzz"})
    assert resp.status_code == 201
    return app, resp.get_json()["token"]


def _documented(app) -> set[tuple[str, str]]:
    doc = app.test_client().get(f"{API_PREFIX}/openapi.json").get_json()
    return {(method.upper(), API_PREFIX + path) for path, ops in doc["paths"].items() for method in ops}


def test_every_api_route_is_documented_so_the_fuzzers_reach_it(fuzz):
    app, _ = fuzz
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX + "/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes and routes == _documented(app)


def _own_participant(case):
    """Point generated envelopes at the device's participant so they reach validation and storage."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        for record in body["records"]:
            if isinstance(record, dict) and "participant" in record:
                record["participant"] = SUBJECT
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_fuzzing_with_a_valid_token_never_fails_and_answers_as_documented(fuzz, mode):
    app, token = fuzz
    schema = schemathesis.openapi.from_wsgi(f"{API_PREFIX}/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the document's own URL (it takes no input); everything else is fuzzed
    assert {(op.method.upper(), API_PREFIX + op.path) for op in operations} == \
        _documented(app) - {("GET", f"{API_PREFIX}/openapi.json")}
    for operation in operations:
        strategy = operation.as_strategy(mode, headers=headers).map(_own_participant)

        @given(case=strategy)
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers=headers)
            statuses.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                      response_schema_conformance])
            if response.status_code >= 400:
                body = response.json()
                assert body["ok"] is False and body["status"] == response.status_code and body["code"]
                assert all(set(e) == {"field", "rule", "message"} for e in body["errors"])

        run()
    # behind the token: the handlers answered, not only the auth layer
    assert 401 not in statuses["GET /sync/changes"] or 200 in statuses["GET /sync/changes"], statuses
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses["POST /sync/records"], statuses
    else:
        assert statuses["POST /sync/records"] - {401}, statuses


# --- what the authorized fuzzing found (each was a 500, or stored a non-JSON number) ---------------

def _body_with(field: str, literal: str) -> bytes:
    from tests.support.records import make_nasal

    env = make_nasal(SUBJECT)
    env[field] = "PLACEHOLDER"
    return json.dumps({"records": [env]}).replace('"PLACEHOLDER"', literal).encode()


@pytest.mark.parametrize("field,literal", [
    ("device_seq", "1" + "0" * 30),          # beyond SQLite's INTEGER: OverflowError in the quarantine insert
    ("clock_offset_s", "1" + "0" * 30),      # the same in the records insert
    ("clock_offset_s", "1e400"),             # read as infinity: was accepted and stored as "Infinity"
    ("clock_offset_s", "-1e400"),
])
def test_numbers_beyond_json_s_safe_range_are_rejected_per_record_not_500(fuzz, field, literal):
    app, token = fuzz
    resp = app.test_client().post(f"{API_PREFIX}/sync/records", data=_body_with(field, literal),
                                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    result = resp.get_json()["results"][0]
    assert result["status"] == "rejected"
    assert result["errors"] == [{"field": field, "rule": "range", "message": result["errors"][0]["message"]}]


def test_the_largest_safe_device_seq_is_still_accepted(fuzz):
    app, token = fuzz
    resp = app.test_client().post(f"{API_PREFIX}/sync/records", data=_body_with("device_seq", str(2**53 - 1)),
                                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert resp.get_json()["results"][0]["status"] == "accepted"


def test_a_cursor_beyond_sqlite_s_integers_is_400(fuzz):
    app, token = fuzz
    cursor = base64.urlsafe_b64encode(b"c:" + b"9" * 30).decode().rstrip("=")
    resp = app.test_client().get(f"{API_PREFIX}/sync/changes?since={cursor}",
                                 headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400 and resp.get_json()["code"] == "sync.cursor_invalid"


def test_a_rejected_record_whose_id_is_not_text_is_answered_with_id_null(fuzz):
    """Found by the negative-mode fuzz: the result echoed ``"id": -604163`` (the document says a
    string or null) — any JSON value a client sent came back as the result's id."""
    app, token = fuzz
    for bad in ("-604163", "{\"x\": [1, 2]}", "true"):
        resp = app.test_client().post(f"{API_PREFIX}/sync/records", data=_body_with("id", bad),
                                      headers={"Authorization": f"Bearer {token}",
                                               "Content-Type": "application/json"})
        result = resp.get_json()["results"][0]
        assert resp.status_code == 200 and result["status"] == "rejected" and result["id"] is None
        assert {"field": "id", "rule": "format.uuid"} in [{k: e[k] for k in ("field", "rule")}
                                                          for e in result["errors"]]
