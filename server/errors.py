"""Every failure leaves the API as the contract's JSON error body (contract §2), never as HTML.

``{"ok": false, "status": 4xx, "code": "dotted.code", "error": "human text", "errors": [...]}``.
Coded :class:`shared.errors.EproError` is raised by handlers and store functions; werkzeug's HTTP
errors (404, 405 with its ``Allow`` header, 413, 400) and anything unexpected (500) are mapped here.
The human text follows ``Accept-Language`` (English or Simplified Chinese).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from shared.errors import EproError, error_body
from shared.messages import t
from shared.schemas import flatten_errors

log = logging.getLogger("server")

#: werkzeug status → contract code
HTTP_CODES = {
    400: "request.bad_request",
    401: "auth.token_invalid",
    403: "auth.forbidden",
    404: "not_found",
    405: "method_not_allowed",
    410: "gone",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    429: "rate_limited",
}


def request_language() -> str:
    try:
        return request.accept_languages.best_match(["en", "zh-CN", "zh"]) or "en"
    except RuntimeError:
        return "en"


def error_response(err: EproError, headers: dict[str, str] | None = None) -> Response:
    resp = jsonify(err.body(request_language()))
    resp.status_code = err.status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, f"http.{status}")
    text = t(f"error.{code}", request_language())
    if text == f"error.{code}":
        text = exc.description or exc.name
    resp = jsonify(error_body(status, code, text))
    resp.status_code = status
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(EproError)
    def _epro(err: EproError):
        return error_response(err)

    @app.errorhandler(ValidationError)
    def _validation(err: ValidationError):
        messages = err.messages
        if isinstance(messages, dict) and set(messages) == {"errors"}:
            errors = messages["errors"]
        else:
            errors = flatten_errors(messages)
        return error_response(EproError("validation.invalid", 400, errors=list(errors)))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code is not None and exc.code < 400:  # routing redirects stay redirects
            return exc
        return _http_error(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        resp = jsonify(error_body(500, "server.error", t("error.server.error", request_language())))
        resp.status_code = 500
        return resp
