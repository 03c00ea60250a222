"""ALS ePRO site server: Flask JSON API (contract §2), command line (contract §3), scheduled jobs.

:func:`create_app` builds the WSGI app. Configuration: :data:`server.config.DEFAULTS`, then
``ALS_EPRO_*`` environment variables, then the mapping passed in. Flask is imported lazily so that
the command line starts quickly.
"""

from __future__ import annotations

import importlib
import importlib.util
import secrets
from typing import Any, Mapping


def create_app(config: Mapping[str, Any] | None = None):
    from flask import Flask

    from server import db as dbmod
    from server.api import register_blueprints
    from server.config import DEFAULTS, ENV_PREFIX, configure_security
    from server.errors import register_error_handlers
    from shared.protocol import load_protocol

    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env(ENV_PREFIX)
    if config:
        app.config.from_mapping(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.session_interface = _staff_only_session()
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["als_epro.protocol"] = load_protocol(app.config["PROTOCOL"])
    configure_security(app.config)

    if app.config["CHECK_DB_ON_START"]:
        check_database(app.config["DB"], app.config["SQLITE_BUSY_TIMEOUT_MS"])
    dbmod.init_app(app)
    register_error_handlers(app)
    register_blueprints(app)
    # the staff pages arrive in their own package; the API works without them
    if importlib.util.find_spec("server.staff") is not None:
        staff = importlib.import_module("server.staff")
        if hasattr(staff, "init_app"):
            staff.init_app(app)
    return app


def _staff_only_session():
    from flask.sessions import SecureCookieSessionInterface

    class StaffOnlySession(SecureCookieSessionInterface):
        """Flask's cookie session (it carries the staff pages' flashed messages) only under
        ``/staff/``. Devices authenticate with bearer tokens and never use it; opening it cost every
        API request a signing serializer (issue 13). Elsewhere ``flask.session`` is Flask's null
        session: a write to it raises instead of silently signing a cookie."""

        def open_session(self, app, request):
            if not request.path.startswith("/staff/"):
                return None
            return super().open_session(app, request)

    return StaffOnlySession()


def check_database(path: str, busy_timeout_ms: int = 10000) -> None:
    """Refuse to start on a database that is not initialised, not migrated, or lacks audit guards."""
    import os

    from server.db import open_db
    from server.migrations import missing_guards, pending

    if not os.path.exists(path):
        raise RuntimeError(f"database {path} does not exist; run `als-epro-server init` first")
    db = open_db(path, busy_timeout_ms=busy_timeout_ms)
    try:
        todo = pending(db)
        if todo:
            raise RuntimeError(f"database {path} needs migrations {', '.join(todo)}; "
                               "run `als-epro-server init`")
        missing = missing_guards(db)
        if missing:
            raise RuntimeError(f"database {path} lacks audit guards {', '.join(missing)}; "
                               "refusing to start (AT-04)")
        from server.store.audit import ensure_epoch

        ensure_epoch(db)  # with an audit key configured, rows from now on are keyed (an epoch row)
    finally:
        db.close()

