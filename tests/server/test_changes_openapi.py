"""GET /api/v1/sync/changes (protocol, timeline, staff decisions, cursor) and the OpenAPI document."""

from __future__ import annotations

from server.api.openapi import build_spec
from server.db import write_tx
from server.store.changes import add_change, encode_cursor
from server.store.participants import get_participant, set_first_dose
from server.store.versions import correct_record
from tests.server.helpers import ADMIN, assert_error, pair, upload
from tests.support.records import make_alsfrs

BANNED = ("arm", "cohort", "randomi", "placebo", "concentration", "dose_level")


def _changes(client, token, since="0"):
    return client.get(f"/api/v1/sync/changes?since={since}", headers={"Authorization": f"Bearer {token}"})


def test_first_call_gives_the_participant_safe_protocol_and_the_timeline(client, db):
    dev = pair(client, db)
    body = _changes(client, dev["token"]).get_json()
    kinds = [c["kind"] for c in body["changes"]]
    assert kinds[0] == "protocol" and "timeline" in kinds
    text = str(body["changes"][0]["data"]).lower()
    assert not [w for w in BANNED if w in text]
    timeline = [c for c in body["changes"] if c["kind"] == "timeline"][-1]["data"]
    assert timeline["first_dose_date"] == "2025-03-01" and timeline["tz"] == "Asia/Shanghai"
    assert body["server_time"].endswith("Z") and body["more"] is False


def test_cursor_returns_only_what_is_new_in_server_order(client, db):
    dev = pair(client, db)
    cursor = _changes(client, dev["token"]).get_json()["cursor"]
    assert _changes(client, dev["token"], cursor).get_json()["changes"] == []
    set_first_dose(db, "S-001", "2025-03-05", reason="site visit moved", actor=ADMIN)
    env = make_alsfrs("S-001", score=3)
    upload(client, dev["token"], [env])
    correct_record(db, env["id"], {"items.7": 2}, reason="participant misread item 7",
                   requested_by="participant by phone", actor=ADMIN)
    body = _changes(client, dev["token"], cursor).get_json()
    assert [c["kind"] for c in body["changes"]] == ["timeline", "correction"]
    seqs = [c["seq"] for c in body["changes"]]
    assert seqs == sorted(seqs)
    assert body["changes"][0]["data"]["first_dose_date"] == "2025-03-05"
    corr = body["changes"][1]["data"]
    assert corr["record_id"] == env["id"] and corr["changes"] == [{"field": "payload.items.7", "old": 3, "new": 2}]
    assert _changes(client, dev["token"], body["cursor"]).get_json()["changes"] == []


def test_a_device_never_sees_another_participants_changes(client, db):
    mine = pair(client, db, "S-001")
    other = get_participant(db, "S-002")
    with write_tx(db):
        add_change(db, other["id"], "flag_acknowledged", {"flag": "x"})
    kinds = [c["kind"] for c in _changes(client, mine["token"]).get_json()["changes"]]
    assert "flag_acknowledged" not in kinds


def test_bad_cursor_is_400_with_the_error_body(client, db):
    dev = pair(client, db)
    assert_error(_changes(client, dev["token"], "%%%"), 400, "sync.cursor_invalid")
    assert_error(_changes(client, dev["token"], "Yjox"), 400, "sync.cursor_invalid")  # "b:1"
    assert _changes(client, dev["token"], encode_cursor(10**6)).status_code == 200


def test_openapi_is_generated_and_covers_every_api_route(app, client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.") and doc == build_spec()
    routes = {(rule.rule.removeprefix("/api/v1"), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    envelope = doc["components"]["schemas"]["Envelope"]
    assert envelope["additionalProperties"] is False
    assert envelope["properties"]["id"] == {"type": "string", "format": "uuid"}
    assert set(envelope["required"]) >= {"id", "type", "participant", "device_seq", "payload"}
    nasal = doc["components"]["schemas"]["NasalSymptomsPayload"]["properties"]
    assert nasal["notes"]["maxLength"] == 2000


def _as_json_schema(node):
    """OpenAPI 3.0 ``nullable`` → JSON Schema ``type: [T, "null"]`` (enums gain null too)."""
    if isinstance(node, dict):
        out = {k: _as_json_schema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_as_json_schema(v) for v in node]
    return node


def test_openapi_schemas_validate_real_bodies(client, db):
    """The documented schemas accept what the server really sends."""
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    doc = _as_json_schema(client.get("/api/v1/openapi.json").get_json())
    registry = Registry().with_resource("urn:doc", Resource(doc, DRAFT7))

    def validate(name, body):
        Draft7Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry).validate(body)

    dev = pair(client, db)
    validate("PairResponse", dev)
    env = make_alsfrs("S-001")
    validate("Envelope", env)
    bad = make_alsfrs("S-001", respondent="robot")
    validate("SyncResponse", upload(client, dev["token"], [env, bad, env]).get_json())
    validate("ChangesResponse", _changes(client, dev["token"]).get_json())
    validate("Error", _changes(client, "nope").get_json())
