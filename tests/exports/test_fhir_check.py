"""The compiled FHIR validity check (built once per resource type) agrees with jsonschema.

:func:`server.exports.validate.validate_fhir` trusts the compiled check for a valid resource and asks
jsonschema for the messages of an invalid one, so the two must agree on "valid or not" — for every
exported resource and for resources broken in many ways.
"""

from __future__ import annotations

import copy
import json
import random

import pytest
from jsonschema import Draft6Validator

from server.exports.validate import _Compiler, _fhir_check, fhir_schema, validate_fhir


@pytest.fixture(scope="module")
def resources(exported):
    _, out, _ = exported
    found = []
    for path in sorted((out / "fhir").iterdir()):
        res = json.loads(path.read_text(encoding="utf-8"))
        if res["resourceType"] == "Bundle":
            found += [e["resource"] for e in res["entry"]]
            res = dict(res, entry=[{k: v for k, v in e.items() if k != "resource"} for e in res["entry"]])
        found.append(res)
    return found


def _jsonschema_valid(resource) -> bool:
    schema = fhir_schema()
    ref = {"$ref": f"#/definitions/{resource['resourceType']}", "definitions": schema["definitions"]}
    return not list(Draft6Validator(ref).iter_errors(resource))


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _mutate(resource, rng: random.Random):
    out = copy.deepcopy(resource)
    path = rng.choice([p for p in _paths(out) if p and p[0] != "resourceType"])
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    value = rng.choice([True, 1, 1.5, 3.0, "", " x", "zzz", None, [], {}, [1], {"url": 5}, "2026-13-45",
                        "amended", "urn:uuid:x"])
    how = rng.choice(["set", "set", "add", "drop"])
    if how == "drop":
        del parent[key]
    elif how == "add" and isinstance(parent, dict):
        parent[f"x{rng.randrange(99)}"] = value
    else:
        parent[key] = value
    return out


def test_the_check_agrees_with_jsonschema_on_every_exported_resource(resources):
    assert resources
    for res in resources:
        assert _fhir_check(res["resourceType"])(res) is True
        assert _jsonschema_valid(res)


def test_the_check_agrees_with_jsonschema_on_broken_resources(resources):
    rng = random.Random(13)
    pool = resources[:40] + [r for r in resources if r["resourceType"] != "QuestionnaireResponse"]
    disagree, invalid = [], 0
    for _ in range(1500):
        broken = _mutate(rng.choice(pool), rng)
        fast, slow = _fhir_check(broken["resourceType"])(broken), _jsonschema_valid(broken)
        invalid += not slow
        if fast != slow:
            disagree.append(broken)
    assert not disagree, json.dumps(disagree[0], ensure_ascii=False)[:2000]
    assert invalid > 300, "the mutations must break resources, or the test shows nothing"


def test_an_invalid_resource_is_still_reported_with_its_field(resources):
    qr = copy.deepcopy(next(r for r in resources if r["resourceType"] == "QuestionnaireResponse"))
    qr["item"][0]["answer"][0] = {"valueBoolean": "yes"}
    problems = validate_fhir(qr)
    assert problems and problems[0].startswith("item/0/answer/0/valueBoolean:"), problems


def test_one_compilation_per_resource_type(resources):
    _fhir_check.cache_clear()
    for res in resources * 3:
        validate_fhir(res)
    info = _fhir_check.cache_info()
    assert info.misses == len({r["resourceType"] for r in resources})
    assert info.hits >= 2 * len(resources)


def test_an_unknown_keyword_is_refused_not_ignored():
    with pytest.raises(ValueError, match="minLength"):
        _Compiler({}).compile({"type": "string", "minLength": 1})
