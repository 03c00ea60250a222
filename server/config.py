"""Configuration defaults for the server (a mapping only; no I/O at import).

Order of precedence, lowest first: these defaults, then ``ALS_EPRO_*`` environment variables
(values parsed as JSON where they parse, as Flask's ``from_prefixed_env`` does), then the mapping
passed to :func:`server.create_app` or :func:`load_config`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

ENV_PREFIX = "ALS_EPRO"

DEFAULTS: dict[str, Any] = {
    "DB": "als-epro.sqlite",
    "PROTOCOL": "nct06598202",
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "MAX_RECORDS": 500,
    "SECRET_KEY": None,  # generated per process when unset; staff sessions then end on restart
    "PAIRING_CODE_TTL_MINUTES": 10,
    "PAIRING_RATE_WINDOW_SECONDS": 900,
    "PAIRING_MAX_FAILURES_PER_ADDRESS": 5,
    "PAIRING_MAX_FAILURES_GLOBAL": 50,
    "SQLITE_BUSY_TIMEOUT_MS": 10000,
    "CHECK_DB_ON_START": True,
    "JOBS_INTERVAL_MINUTES": 15,
    "BACKUP_DIR": None,  # folder for the daily scheduled backup (server.tasks.backup); None: off
    "BACKUP_KEEP": 14,  # daily backups kept in BACKUP_DIR
    # address of a reverse proxy (nginx) whose X-Forwarded-For/-Proto/-Host are trusted; None: trust none
    "TRUSTED_PROXY": None,
    # HMAC key of the audit chain (server.store.audit), kept here, never in the database; None: un-keyed
    "AUDIT_KEY": None,
    "AUDIT_KEY_PREVIOUS": None,  # comma-separated keys of earlier epochs, so they still verify
    # second location for signed audit-chain checkpoints (server.store.anchor); None: none written
    "AUDIT_ANCHOR_DIR": None,
    "AUDIT_CHECKPOINT_MINUTES": 60,
    # the bounded security log (server.store.security_log): rows kept, minutes per audited summary
    "SECURITY_LOG_MAX_ROWS": 100000,
    "SECURITY_SUMMARY_MINUTES": 15,
}


def raw_secret(name: str, config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Any:
    """A secret setting as text: from the environment verbatim (JSON parsing would turn a key of
    digits into a number), else the configured value."""
    value = config.get(name)
    if value is None or isinstance(value, str):
        return value
    environ = os.environ if environ is None else environ
    return environ.get(f"{ENV_PREFIX}_{name}", str(value))


def configure_security(config: Mapping[str, Any]) -> None:
    """Hand the audit key and the security-log bounds to the store (process-wide), from the server's
    configuration; :func:`server.create_app` and the command line call this at start."""
    from server.store import audit, security_log

    audit.configure_keys(raw_secret("AUDIT_KEY", config), raw_secret("AUDIT_KEY_PREVIOUS", config))
    security_log.configure(config.get("SECURITY_LOG_MAX_ROWS"), config.get("SECURITY_SUMMARY_MINUTES"))


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``ALS_EPRO_X=value`` → ``{"X": value}``, with JSON values parsed (as Flask does)."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    prefix = f"{ENV_PREFIX}_"
    for key, value in environ.items():
        if not key.startswith(prefix):
            continue
        try:
            out[key[len(prefix):]] = json.loads(value)
        except ValueError:
            out[key[len(prefix):]] = value
    return out


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration outside Flask (CLI, jobs): defaults, then env, then overrides."""
    cfg = dict(DEFAULTS)
    cfg.update(env_overrides(environ))
    cfg.update(overrides or {})
    return cfg
