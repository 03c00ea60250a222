"""Server fixtures: a real SQLite WAL file per test (migrated and seeded), the app and its client."""

from __future__ import annotations

import pytest

from server import create_app
from server.db import open_db
from server.migrations import migrate
from tests.server.helpers import seed


@pytest.fixture(scope="session")
def _seeded_template(tmp_path_factory):
    # seeding hashes five argon2id passwords; do it once and copy the file per test
    path = tmp_path_factory.mktemp("template") / "server.sqlite"
    db = open_db(path)
    migrate(db)
    seed(db)
    with db.ensure_autocommit_on():
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture
def db_path(tmp_path, _seeded_template):
    path = tmp_path / "server.sqlite"
    path.write_bytes(_seeded_template.read_bytes())
    return path


@pytest.fixture
def db(db_path):
    database = open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def app(db_path):
    return create_app({"DB": str(db_path), "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()
