from __future__ import annotations

import pytest

from server import create_app
from server.db import open_db
from server.demo.mailcatcher import MailCatcher
from server.migrations import migrate
from tests.alerts.receiver import HookReceiver
from tests.server.helpers import seed


@pytest.fixture
def mail():
    with MailCatcher(reject=("invalid.example",)) as catcher:
        yield catcher


@pytest.fixture
def hook():
    with HookReceiver() as receiver:
        yield receiver


@pytest.fixture
def world(tmp_path):
    """A seeded database (two sites, one account per role) and an app on it."""
    path = tmp_path / "server.sqlite"
    db = open_db(path)
    migrate(db)
    seed(db)
    app = create_app({"DB": str(path), "TESTING": True})
    yield app, db
    db.close()


def alert_config(app, mail=None, **over):
    cfg = dict(app.config)
    cfg.update({"SMTP_HOST": "127.0.0.1" if mail else None, "SMTP_PORT": mail.port if mail else 25,
                "SMTP_SECURITY": "none", "SMTP_FROM": "alerts@site.example", "PUBLIC_URL": "https://epro.example.org",
                "SMTP_TIMEOUT_SECONDS": 5, "WEBHOOK_TIMEOUT_SECONDS": 5})
    cfg.update(over)
    return cfg
