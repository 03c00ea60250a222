"""``als-epro-server backup PATH`` and ``als-epro-server restore PATH`` (contract §3), and
``als-epro-server reconcile PATH`` (EX-07: after a migration or a move, does the database still hold
the backup's records unchanged and continue its audit chain?).

``--db`` names the live database for ``backup`` and ``reconcile`` and the target for ``restore``; it
may be given before the command (as for every command) or after it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from server.backup import (
    MANIFEST_SUFFIX, backup, iter_problems_text, parse_recipients, read_manifest, reconcile, restore,
)
from server.config import load_config
from shared.errors import EproError


def _db_option(parser: argparse.ArgumentParser, what: str) -> None:
    # SUPPRESS: without it, the sub-command's default would undo a --db given before the command
    parser.add_argument("--db", default=argparse.SUPPRESS, help=what)


def cmd_backup(args) -> tuple[dict, str]:
    cfg = load_config()
    result = backup(args.db, args.path, busy_timeout_ms=cfg["SQLITE_BUSY_TIMEOUT_MS"],
                    recipients=parse_recipients(cfg.get("BACKUP_RECIPIENTS")), unencrypted=args.unencrypted)
    out = result.summary()
    if not out["chain_ok"]:
        audit = result.manifest["audit"]
        raise EproError("backup.chain_broken", 500, detail=(
            f"backup {result.path} written, but the live audit chain is broken at row "
            f"{audit['first_bad_seq']}: {audit['problem']}; it will not restore until that is resolved"))
    how = (f"encrypted to {out['recipients']} recipient(s)" if out["encrypted"]
           else "NOT ENCRYPTED (--unencrypted; recorded in the audit trail)")
    return out, (f"backup written: {out['backup']} ({out['bytes']} bytes, {out['records']} records, "
                 f"{out['audit_rows']} audit rows, chain ok, {how})\nmanifest: {out['manifest']}")


def cmd_restore(args) -> tuple[dict, str]:
    try:
        out = restore(args.path, args.db, force=args.force, dry_run=args.dry_run, identity=args.identity)
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


def cmd_reconcile(args) -> tuple[dict, str]:
    from server.cli import _VerifyFailed, _ready_db

    path = Path(args.path)
    manifest = read_manifest(path.with_name(path.name[:-len(MANIFEST_SUFFIX)])
                             if path.name.endswith(MANIFEST_SUFFIX) else path)
    with _ready_db(args) as db:
        problems = reconcile(db, manifest)
    out = {"ok": not problems, "backup": manifest["file"]["name"], "records": manifest["records"]["count"],
           "audit_head_seq": manifest["audit"]["head_seq"], "problems": [p.as_dict() for p in problems]}
    if problems:
        raise _VerifyFailed(out, f"{args.db} does not continue backup {manifest['file']['name']}: "
                                 + iter_problems_text(problems[:5]))
    return out, (f"{args.db} continues backup {manifest['file']['name']}: its {out['records']} records are "
                 f"unchanged and the audit chain passes through row {out['audit_head_seq']}")


def register(subparsers, command) -> None:
    sp = command(subparsers, "backup", cmd_backup,
                 "copy the live database (SQLite online backup) to PATH with a verifiable manifest")
    sp.add_argument("path", help="backup file to create, or an existing folder (als-epro-<UTC>.sqlite.age)")
    _db_option(sp, "database to back up")
    sp.add_argument("--unencrypted", action="store_true",
                    help="write a plain backup (no ALS_EPRO_BACKUP_RECIPIENTS); logged and audited")
    sp = command(subparsers, "restore", cmd_restore,
                 "restore a backup into --db after checking counts, per-record hashes and the audit chain")
    sp.add_argument("path", help="backup file (its PATH.manifest.json must be beside it)")
    _db_option(sp, "database file to create (must be absent or empty unless --force)")
    sp.add_argument("--identity", help="age identity file (private key) of an encrypted backup; keep it off the server")
    sp.add_argument("--force", action="store_true",
                    help="replace a database that holds data (kept as <db>.pre-restore-<UTC>); stop the server first")
    sp.add_argument("--dry-run", action="store_true", help="verify by restoring into a temporary copy only")
    sp = command(subparsers, "reconcile", cmd_reconcile,
                 "check that --db still holds every record of a backup unchanged and continues its audit chain"
                 " (after a migration or a move)")
    sp.add_argument("path", help="backup file or its .manifest.json")
    _db_option(sp, "database to check")
