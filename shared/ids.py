"""Identifiers: their one canonical form, and the patterns identifiers must match when created.

Record ids (contract §1) are UUIDs written ``8-4-4-4-12`` in hex; hex digits are case-insensitive
(RFC 9562 §4), so ``123E4567-…`` and ``123e4567-…`` are the same id. :func:`record_key` gives the
form the server stores and looks up (lower case) — applied once, where ingest reads an envelope — while
the envelope itself, its sha256 and the ``id`` echoed in a sync result stay exactly as the client sent
them (contract §1 "values exactly as received"; a client matches results by the id it sent).

Site codes, subject ids and staff emails are checked when they are created (:func:`check_site_code`,
:func:`check_subject`, :func:`check_email`): each later becomes part of a file path, a download
name, a CSV cell or an HTTP header, so only a short, printable, path-safe form is accepted, and paths
are built only from parts that pass :func:`path_part`.
"""

from __future__ import annotations

import re
from typing import Any

from shared.errors import EproError, FieldError

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

SITE_CODE_MAX = 16
SUBJECT_MAX = 64
EMAIL_MAX = 254
#: letters, digits, ``-`` and ``_``, starting with a letter or digit: no ``/``, ``\\``, ``..``,
#: spaces or control characters, so a code is a safe single path part and header value
SITE_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,%d}$" % (SITE_CODE_MAX - 1))
SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,%d}$" % (SUBJECT_MAX - 1))
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@" + _LABEL
                      + r"(?:\." + _LABEL + r")*$")


def record_key(value: Any) -> Any:
    """The stored form of a record id: a UUID string in lower case; anything else unchanged (it is
    rejected by validation, and quarantined under what was sent)."""
    if isinstance(value, str) and UUID_RE.fullmatch(value):
        # the pattern admits only the 8-4-4-4-12 hex form, whose ``str(uuid.UUID(value))`` is its
        # lower case: no need to build a UUID (the ingest keys every record this way)
        return value.lower()
    return value


def _invalid(field: str, rule: str, message: str) -> EproError:
    return EproError("validation.invalid", 400, errors=[FieldError(field, rule, message)])


def _checked(value: Any, pattern: re.Pattern, field: str, rule: str, message: str) -> str:
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _invalid(field, rule, message)
    return value


def check_site_code(code: Any, field: str = "code") -> str:
    return _checked(code, SITE_CODE_RE, field, "format.site_code",
                    f"A site code has 1 to {SITE_CODE_MAX} letters, digits, '-' or '_', "
                    "starting with a letter or digit.")


def check_subject(subject: Any, field: str = "subject") -> str:
    return _checked(subject, SUBJECT_RE, field, "format.subject",
                    f"A subject id has 1 to {SUBJECT_MAX} letters, digits, '-' or '_', "
                    "starting with a letter or digit.")


def check_email(email: Any, field: str = "email") -> str:
    email = email.strip() if isinstance(email, str) else email
    if not isinstance(email, str) or len(email) > EMAIL_MAX or not EMAIL_RE.fullmatch(email):
        raise _invalid(field, "format.email", "Not an email address.")
    return email


def path_part(value: Any) -> str:
    """``value`` if it is safe as one path component (a validated site code or subject id, or a
    generated name of the same alphabet plus ``.``), else ``ValueError``: paths are built only from
    parts that pass this, so a value stored before validation existed cannot leave its folder."""
    if (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,160}", value)
            or ".." in value):
        raise ValueError(f"not a safe path part: {value!r}")
    return value
