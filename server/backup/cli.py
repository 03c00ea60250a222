"""``als-epro-server backup PATH`` and ``als-epro-server restore PATH`` (contract §3).

``--db`` names the live database for ``backup`` and the target for ``restore``; it may be given
before the command (as for every command) or after it.
"""

from __future__ import annotations

import argparse

from server.backup import backup, iter_problems_text, restore
from server.config import load_config
from shared.errors import EproError


def _db_option(parser: argparse.ArgumentParser, what: str) -> None:
    # SUPPRESS: without it, the sub-command's default would undo a --db given before the command
    parser.add_argument("--db", default=argparse.SUPPRESS, help=what)


def cmd_backup(args) -> tuple[dict, str]:
    result = backup(args.db, args.path, busy_timeout_ms=load_config()["SQLITE_BUSY_TIMEOUT_MS"])
    out = result.summary()
    if not out["chain_ok"]:
        audit = result.manifest["audit"]
        raise EproError("backup.chain_broken", 500, detail=(
            f"backup {result.path} written, but the live audit chain is broken at row "
            f"{audit['first_bad_seq']}: {audit['problem']}; it will not restore until that is resolved"))
    return out, (f"backup written: {out['backup']} ({out['bytes']} bytes, {out['records']} records, "
                 f"{out['audit_rows']} audit rows, chain ok)\nmanifest: {out['manifest']}")


def cmd_restore(args) -> tuple[dict, str]:
    try:
        out = restore(args.path, args.db, force=args.force, dry_run=args.dry_run)
    except EproError as err:
        if err.errors and not err.detail:
            err.detail = iter_problems_text(err.errors)
        elif err.errors:
            err.detail = f"{err.detail}: {iter_problems_text(err.errors[:5])}"
        raise
    verb = "verified (dry run, nothing written)" if out["dry_run"] else f"restored into {out['target']}"
    text = (f"backup {out['backup']} {verb}: {out['records']} records, audit chain ok "
            f"({out['audit_rows']} rows)")
    if out["replaced"]:
        text += f"\nprevious database kept as {out['replaced']}"
    if out["pending_migrations"]:
        text += f"\nthis backup predates migrations {', '.join(out['pending_migrations'])}: run `init` next"
    return out, text


def register(subparsers, command) -> None:
    sp = command(subparsers, "backup", cmd_backup,
                 "copy the live database (SQLite online backup) to PATH with a verifiable manifest")
    sp.add_argument("path", help="backup file to create, or an existing folder (als-epro-<UTC>.sqlite)")
    _db_option(sp, "database to back up")
    sp = command(subparsers, "restore", cmd_restore,
                 "restore a backup into --db after checking counts, per-record hashes and the audit chain")
    sp.add_argument("path", help="backup file (its PATH.manifest.json must be beside it)")
    _db_option(sp, "database file to create (must be absent or empty unless --force)")
    sp.add_argument("--force", action="store_true",
                    help="replace a database that holds data (kept as <db>.pre-restore-<UTC>); stop the server first")
    sp.add_argument("--dry-run", action="store_true", help="verify by restoring into a temporary copy only")
