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
    # pairing guesses: a few free failures per address / per code, then delays doubling from
    # PAIRING_BASE_DELAY_SECONDS up to PAIRING_RATE_WINDOW_SECONDS; failures are forgotten after a day
    "PAIRING_RATE_WINDOW_SECONDS": 900,
    "PAIRING_MAX_FAILURES_PER_ADDRESS": 5,
    "PAIRING_MAX_FAILURES_PER_CODE": 3,
    "PAIRING_BASE_DELAY_SECONDS": 2,
    "PAIRING_FAILURE_MEMORY_SECONDS": 86400,
    # device tokens: a new one every N-th upload (0: never); the old one works for the grace
    # window after the client first used the new one
    "TOKEN_ROTATE_EVERY_SYNCS": 50,
    "TOKEN_GRACE_SECONDS": 7 * 86400,
    "SQLITE_BUSY_TIMEOUT_MS": 10000,
    "CHECK_DB_ON_START": True,
    "JOBS_INTERVAL_MINUTES": 15,
    "BACKUP_DIR": None,  # folder for the daily scheduled backup (server.tasks.backup); None: off
    "BACKUP_KEEP": 14,  # daily backups kept in BACKUP_DIR
    # age public keys (age1…, space or comma separated) every backup is encrypted to; the private
    # keys never live on the server. Without any, backups need --unencrypted / the flag below.
    "BACKUP_RECIPIENTS": None,
    "BACKUP_ALLOW_UNENCRYPTED": False,  # scheduled backups without recipients (logged and audited)
    # address of a reverse proxy (nginx) whose X-Forwarded-For/-Proto/-Host are trusted; None: trust none
    "TRUSTED_PROXY": None,
    # --- site alerts (server.alerts) ---
    "PUBLIC_URL": "http://127.0.0.1:8000",  # how staff reach the staff pages; links in alert messages
    "SMTP_HOST": None,  # None: e-mail alerts wait (retried, shown as failing) until it is set
    "SMTP_PORT": 587,
    "SMTP_SECURITY": "starttls",  # "starttls" (port 587), "tls" (implicit TLS, port 465); "none" loopback only
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    "SMTP_FROM": "als-epro@localhost",
    "SMTP_CA_FILE": None,  # extra CA bundle for a site's own mail relay; the system's CAs otherwise
    "SMTP_TIMEOUT_SECONDS": 10,
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    "ALERTS_INTERVAL_SECONDS": 15,  # the dispatcher's period in the serve process (<= 30 keeps 1 minute)
    "ALERTS_RETRY_HOURS": 24,  # a delivery is retried with backoff at least this long, then failed
    "ALERTS_BACKOFF_FIRST_SECONDS": 30,
    "ALERTS_BACKOFF_MAX_SECONDS": 1800,
    "ALERTS_LEASE_SECONDS": 120,  # a send claimed longer ago than this was interrupted (crash): resent
    "ALERTS_FULL_SWEEP_MINUTES": 15,  # re-evaluate every participant (corrections, missed doses)
    "ALERTS_DIGEST_TIME": "08:00",  # local time (protocol time zone) of the daily digest of other flags
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
