"""Staff-page fixtures: the server fixtures (a database file per test, the app, its client) over a
template that also holds recent history (:mod:`tests.staff.seed`), and helpers that sign in and post
forms through the real pages (CSRF included)."""

from __future__ import annotations

import re

import pytest

from server.db import open_db
from server.migrations import migrate
from tests.server.conftest import app, client, db, db_path  # noqa: F401  (copies of _seeded_template below)
from tests.server.helpers import PASSWORD, seed
from tests.staff.seed import seed_recent

HTML = {"Accept": "text/html"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def _staff_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("staff-template") / "server.sqlite"
    db = open_db(path)
    migrate(db)
    seed(db)  # BJ01: S-001, S-002 and one staff member per role; SH02: S-101, inv@sh02
    info = seed_recent(db, "S-003", days_in=10)
    seed_recent(db, "S-102", "SH02", days_in=6)
    with db.ensure_autocommit_on():
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path, info


@pytest.fixture(scope="session")
def _seeded_template(_staff_template):
    """The file the server fixtures (``db_path``, ``db``, ``app``, ``client``) copy for each test."""
    return _staff_template[0]


@pytest.fixture
def seeded(_staff_template):
    return _staff_template[1]


def csrf_of(resp) -> str:
    match = CSRF.search(resp.get_data(as_text=True))
    assert match, "the page has a form with a CSRF token"
    return match.group(1)


def login(client, email: str = "inv@bj01.example", password: str = PASSWORD, *,
          environ_base: dict | None = None, **headers):
    """Sign in through the form; returns the POST response (303 on success)."""
    kw = {"headers": {**HTML, **headers}, "environ_base": environ_base or {}}
    page = client.get("/staff/login", **kw)
    return client.post("/staff/login", data={"csrf_token": csrf_of(page), "email": email, "password": password,
                                             "next": "/staff/participants"}, **kw)


def post_form(client, page_url: str, action_url: str, data: dict, **headers):
    """GET a page for its CSRF token, then POST a form to ``action_url`` as a browser would."""
    page = client.get(page_url, headers={**HTML, **headers})
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return client.post(action_url, data={"csrf_token": csrf_of(page), **data}, headers={**HTML, **headers})


@pytest.fixture
def as_role(client):
    """``as_role("coordinator")`` signs the client in as that BJ01 staff member."""
    emails = {"investigator": "inv@bj01.example", "coordinator": "coord@bj01.example",
              "monitor": "mon@bj01.example", "admin": "admin@bj01.example", "other_site": "inv@sh02.example"}

    def sign_in(role: str):
        resp = login(client, emails[role])
        assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
        return client

    return sign_in
