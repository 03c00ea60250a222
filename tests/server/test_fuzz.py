"""Fuzz the API from its own OpenAPI document (schemathesis): bad input never gets a 5xx (PS-08)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from server import create_app
from server.db import open_db
from server.migrations import migrate
from tests.server.helpers import seed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "server.sqlite"
    db = open_db(path)
    migrate(db)
    seed(db)
    db.close()
    return create_app({"DB": str(path), "TESTING": True})


def test_no_generated_input_makes_the_server_fail(fuzz_app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/devices/pair", "/sync/records", "/sync/changes"}

    statuses: dict[str, set[int]] = {}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            response = case.call()
            statuses.setdefault(case.path, set()).add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert body["ok"] is False and body["status"] == response.status_code and body["code"]

        run()
    # the generated requests reached the handlers (not only 404s from a wrong base path)
    assert all(codes - {404} for codes in statuses.values()), statuses
