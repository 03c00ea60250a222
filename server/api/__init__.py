"""The JSON API under ``/api/v1``: one blueprint per resource, handlers load → call one store
function → dump."""

from __future__ import annotations

from flask import Flask

API_PREFIX = "/api/v1"


def register_blueprints(app: Flask) -> None:
    from server.api import devices, openapi, sync

    for module in (devices, sync, openapi):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
