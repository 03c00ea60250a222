"""``als-epro-server`` (also ``python -m server``): the site's command line, exactly contract §3.

Every command prints a short human summary, or with ``--json`` one JSON object on stdout. Errors go
to stderr (as the contract's JSON error body with ``--json``) with a non-zero exit status. Commands
that change data write their audit rows with the OS user as actor (``cli:<user>``).

Other areas add their commands (``export``, ``backup``, ``restore``, ``demo``) without editing this
file: a module ``server/cli_<name>.py`` or ``server/<package>/cli.py`` defining
``register(subparsers, command)`` is loaded at start. ``command(parent, name, fn, help)`` returns an
argparse parser with ``--json`` already added; ``fn(args)`` returns ``(result_dict, human_text)``
(or None) and raises :class:`shared.errors.EproError` for failures.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from server.config import load_config
from shared.errors import EproError

EXIT_ERROR = 1
UNSENT_FORMAT = "als-epro-unsent/1"


def _json_flag(parser: argparse.ArgumentParser, top: bool = False) -> None:
    # accepted before or after the subcommand; a subparser default must not undo the top-level one
    parser.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="print one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    cfg = load_config()
    p = argparse.ArgumentParser(prog="als-epro-server", description="ALS ePRO site server")
    p.add_argument("--db", default=cfg["DB"], help="database file (default: $ALS_EPRO_DB or ./als-epro.sqlite)")
    _json_flag(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(parent, name: str, fn: Callable, help_text: str) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_text, description=help_text)
        _json_flag(sp)
        sp.set_defaults(fn=fn)
        return sp

    cmd(sub, "init", cmd_init, "create the database or apply pending migrations")

    site = sub.add_parser("site", help="manage sites").add_subparsers(dest="site_cmd", required=True)
    sp = cmd(site, "add", cmd_site_add, "add a site")
    sp.add_argument("code")
    sp.add_argument("name")

    staff = sub.add_parser("staff", help="manage staff accounts").add_subparsers(dest="staff_cmd", required=True)
    sp = cmd(staff, "add", cmd_staff_add, "add a staff account (password on stdin)")
    sp.add_argument("email")
    sp.add_argument("--site", required=True)
    sp.add_argument("--role", required=True, choices=("investigator", "coordinator", "monitor", "admin"))
    sp.add_argument("--name", default=None, help="display name, printed on sign-offs (optional)")
    sp.add_argument("--password-set-by-holder", action="store_true",
                    help="the account's holder typed this password; otherwise it must be changed at first sign-in")
    sp = cmd(staff, "role", cmd_staff_role, "change an account's role (never across admin and clinical roles)")
    sp.add_argument("email")
    sp.add_argument("role", choices=("investigator", "coordinator", "monitor", "admin"))
    sp.add_argument("--reason", required=True)
    sp = cmd(staff, "reset-password", cmd_staff_reset,
             "set a temporary password (on stdin) that must be changed at the next sign-in")
    sp.add_argument("email")
    sp.add_argument("--reason", required=True)

    part = sub.add_parser("participant", help="enrol and manage participants").add_subparsers(
        dest="participant_cmd", required=True)
    sp = cmd(part, "enroll", cmd_enroll, "enrol a participant")
    sp.add_argument("subject")
    sp.add_argument("--site", required=True)
    sp.add_argument("--onset", required=True, help="symptom onset YYYY-MM or YYYY-MM-DD")
    sp.add_argument("--first-dose", required=True, help="planned first dose YYYY-MM-DD")
    sp.add_argument("--tz", default="Asia/Shanghai")
    sp = cmd(part, "set-first-dose", cmd_set_first_dose, "change the planned first dose date")
    sp.add_argument("subject")
    sp.add_argument("date")
    sp.add_argument("--reason", required=True)
    sp = cmd(part, "withdraw", cmd_withdraw, "withdraw a participant (stops collection, deletes nothing)")
    sp.add_argument("subject")
    sp.add_argument("--reason", required=True)

    care = sub.add_parser("caregiver", help="manage caregivers").add_subparsers(dest="caregiver_cmd", required=True)
    sp = cmd(care, "add", cmd_caregiver_add, "add a caregiver for a participant")
    sp.add_argument("subject")
    sp.add_argument("--name", required=True)

    sp = cmd(sub, "pairing-code", cmd_pairing_code, "issue a one-time pairing code")
    sp.add_argument("subject")
    sp.add_argument("--role", required=True, choices=("participant", "caregiver"))
    sp.add_argument("--caregiver", type=int, default=None, help="existing caregiver id")
    sp.add_argument("--ttl-minutes", type=float, default=None,
                    help=f"minutes until the code expires (default {cfg['PAIRING_CODE_TTL_MINUTES']})")

    dev = sub.add_parser("device", help="manage devices").add_subparsers(dest="device_cmd", required=True)
    sp = cmd(dev, "revoke", cmd_device_revoke, "revoke a device at once")
    sp.add_argument("device_id")
    sp.add_argument("--reason", required=True)

    sp = cmd(sub, "import", cmd_import, f"ingest a revoked client's unsent entries ({UNSENT_FORMAT})")
    sp.add_argument("file")

    sp = cmd(sub, "serve", cmd_serve, "serve the API with waitress (a production WSGI server)")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    sp.add_argument("--threads", type=int, default=16,
                    help="request threads (default 16): uploads queue for the file's one write lock and are"
                         " committed in groups, so more threads make larger groups (bench 2 on 2 cores:"
                         " about 500 submits/s with 8, 600 with 16, no better with 32)")
    sp.add_argument("--no-jobs", action="store_true", help="do not run the scheduled jobs")

    audit = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit_cmd", required=True)
    sp = cmd(audit, "verify", cmd_audit_verify,
             "check the audit chain, its checkpoints, triggers, records, versions and accounts; "
             "exit 1 naming the first bad row")
    sp.add_argument("--anchor", action="append", default=[],
                    help="another folder of signed checkpoints (besides AUDIT_ANCHOR_DIR and BACKUP_DIR)")
    sp = cmd(audit, "checkpoint", cmd_audit_checkpoint,
             "write a signed checkpoint of the chain head to AUDIT_ANCHOR_DIR (and --to DIR)")
    sp.add_argument("--to", action="append", default=[])

    for module_name in plugin_modules():
        try:
            importlib.import_module(module_name).register(sub, cmd)
        except Exception as err:  # another area's half-built module must not break the core commands
            print(f"warning: commands from {module_name} not loaded: {err}", file=sys.stderr)
    return p


def plugin_modules() -> list[str]:
    """``server.cli_<name>`` modules and ``server.<package>.cli`` modules, by file name."""
    here = Path(__file__).parent
    found = [f"server.{p.stem}" for p in sorted(here.glob("cli_*.py"))]
    found += [f"server.{p.parent.name}.cli" for p in sorted(here.glob("*/cli.py"))]
    return found


# --- helpers -------------------------------------------------------------------------------------

def _db(args):
    from server.db import open_db

    cfg = load_config()
    return open_db(args.db, busy_timeout_ms=cfg["SQLITE_BUSY_TIMEOUT_MS"])


def _ready_db(args):
    """An initialised database, or a clear error (commands other than init never create one)."""
    from server.migrations import pending

    if not Path(args.db).exists():
        raise EproError("db.not_initialised", 400, detail=f"{args.db} does not exist; run init first")
    db = _db(args)
    todo = pending(db)
    if todo:
        db.close()
        raise EproError("db.not_initialised", 400, detail=f"pending migrations {', '.join(todo)}; run init")
    return db


def _actor():
    from server.store.audit import Actor

    return Actor.cli()


def _read_password() -> str:
    if sys.stdin is None:
        return ""
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


# --- commands (each returns the result object and an optional human text) -----------------------

def cmd_init(args) -> tuple[dict, str]:
    from server.migrations import migrate, migrations

    db = _db(args)
    try:
        applied = migrate(db)
        latest = [m.name for m in migrations.applied(db)][-1]
        from server.store.audit import ensure_epoch

        ensure_epoch(db)  # with an audit key configured, the keyed epoch starts here
        from server.store.list_summaries import rebuild
        from shared.protocol import load_protocol

        # the participants list's kept rows (derived): made here after an upgrade, not by its first request
        made = rebuild(db, load_protocol(load_config()["PROTOCOL"]))
    finally:
        db.close()
    return ({"db": str(args.db), "applied": applied, "schema": latest, "list_rows_made": made},
            f"database {args.db} ready (schema {latest}; applied {len(applied)} migration(s);"
            f" participants list rows made: {made})")


def cmd_site_add(args) -> tuple[dict, str]:
    from server.store.sites import add_site

    with _ready_db(args) as db:
        site = add_site(db, args.code, args.name, actor=_actor())
    return {"site_id": site["id"], "code": site["code"], "name": site["name"]}, f"site {site['code']} added"


def cmd_staff_add(args) -> tuple[dict, str]:
    from server.store.staff import add_staff

    password = _read_password()
    with _ready_db(args) as db:
        row = add_staff(db, args.email, args.site, args.role, password, actor=_actor(), name=args.name,
                        must_change=not args.password_set_by_holder)
    out = {"staff_id": row["id"], "email": row["email"], "site": args.site, "role": row["role"]}
    if row["name"]:
        out["name"] = row["name"]  # only with --name: the contract's output stays as it was without
    return out, f"staff {row['email']} added as {row['role']} at {args.site}"


def _participant_out(db, p: dict) -> dict:
    from server.store.sites import site_by_id

    return {"subject": p["subject"], "site": site_by_id(db, p["site_id"])["code"], "onset": p["onset"],
            "first_dose_date": p["first_dose_date"], "tz": p["tz"], "status": p["status"],
            "withdrawn_at": p["withdrawn_at"]}


def cmd_enroll(args) -> tuple[dict, str]:
    from server.store.participants import enroll

    with _ready_db(args) as db:
        p = enroll(db, args.subject, args.site, args.onset, args.first_dose, tz=args.tz, actor=_actor())
        out = _participant_out(db, p)
    return out, f"participant {p['subject']} enrolled (first dose {p['first_dose_date']}, {p['tz']})"


def cmd_set_first_dose(args) -> tuple[dict, str]:
    from server.store.participants import set_first_dose

    with _ready_db(args) as db:
        p = set_first_dose(db, args.subject, args.date, reason=args.reason, actor=_actor())
        out = _participant_out(db, p)
    return out, f"participant {p['subject']}: first dose now {p['first_dose_date']}"


def cmd_withdraw(args) -> tuple[dict, str]:
    from server.store.participants import withdraw

    with _ready_db(args) as db:
        p = withdraw(db, args.subject, reason=args.reason, actor=_actor())
        out = _participant_out(db, p)
    return out, f"participant {p['subject']} withdrawn at {p['withdrawn_at']}"


def cmd_caregiver_add(args) -> tuple[dict, str]:
    from server.store.participants import add_caregiver

    with _ready_db(args) as db:
        out = add_caregiver(db, args.subject, args.name, actor=_actor())
    return out, f"caregiver {out['caregiver_id']} added for {out['subject']}"


def cmd_pairing_code(args) -> tuple[dict, str]:
    from server.store.pairing import issue_pairing_code

    ttl = args.ttl_minutes if args.ttl_minutes is not None else load_config()["PAIRING_CODE_TTL_MINUTES"]
    with _ready_db(args) as db:
        out = issue_pairing_code(db, args.subject, args.role, args.caregiver, actor=_actor(),
                                 ttl_minutes=float(ttl))
    who = f"caregiver {out['caregiver_id']} of {out['subject']}" if out["role"] == "caregiver" else out["subject"]
    return out, f"pairing code for {who}: {out['code']} (single use, expires {out['expires_at']})"


def cmd_device_revoke(args) -> tuple[dict, str]:
    from server.store.devices import revoke_device

    with _ready_db(args) as db:
        d = revoke_device(db, args.device_id, reason=args.reason, actor=_actor())
    return ({"device_id": d["id"], "subject": d["subject"], "revoked_at": d["revoked_at"],
             "reason": d["revoked_reason"]}, f"device {d['id']} revoked at {d['revoked_at']}")


def read_unsent_file(path: str | Path) -> tuple[dict, str]:
    """Parse an ``als-epro-unsent/1`` file; return it and the sha256 of its bytes."""
    data = Path(path).read_bytes()
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise EproError("import.invalid_file", 400, detail="not JSON") from None
    if (not isinstance(doc, dict) or doc.get("format") != UNSENT_FORMAT
            or not isinstance(doc.get("device_id"), str) or not isinstance(doc.get("participant"), str)
            or not isinstance(doc.get("records"), list)):
        raise EproError("import.invalid_file", 400,
                        detail=f'expected {{"format": "{UNSENT_FORMAT}", "device_id", "participant", "records"}}')
    return doc, hashlib.sha256(data).hexdigest()


def cmd_import(args) -> tuple[dict, str]:
    from server.db import write_tx
    from server.store.audit import write_audit
    from server.store.devices import get_device
    from server.store.records import ingest
    from shared.protocol import load_protocol

    doc, file_sha = read_unsent_file(args.file)
    exported_at = doc.get("exported_at") if isinstance(doc.get("exported_at"), str) else None
    actor = _actor()
    with _ready_db(args) as db:
        device = get_device(db, doc["device_id"])
        if device["subject"] != doc["participant"]:
            raise EproError("import.invalid_file", 400,
                            detail=f"device {device['id']} belongs to {device['subject']}, not {doc['participant']}")
        with write_tx(db):
            results = ingest(db, device, doc["records"], protocol=load_protocol(load_config()["PROTOCOL"]),
                             client_time=None, channel="import", actor=actor)
            counts = {s: sum(r["status"] == s for r in results)
                      for s in ("accepted", "duplicate", "conflict", "rejected")}
            write_audit(db, actor, "import.file", entity="device", entity_id=device["id"],
                        site_id=device["site_id"],
                        detail={"file": os.path.basename(str(args.file)), "file_sha256": file_sha,
                                "records": len(results), **counts,
                                "exported_at": exported_at[:40] if exported_at else None})
    out = {"device_id": device["id"], "participant": device["subject"], "file_sha256": file_sha,
           **counts, "results": results}
    return out, (f"imported {len(results)} record(s) for {device['subject']}: " +
                 ", ".join(f"{n} {s}" for s, n in counts.items()))


def cmd_audit_verify(args) -> tuple[dict, str]:
    from server.store.integrity import verify_database

    cfg = load_config()
    folders = [*([cfg["AUDIT_ANCHOR_DIR"]] if cfg.get("AUDIT_ANCHOR_DIR") else []),
               *([Path(cfg["BACKUP_DIR"]) / "audit-checkpoints"] if cfg.get("BACKUP_DIR") else []),
               *args.anchor]
    with _ready_db(args) as db:
        report = verify_database(db, folders)
    if not report["ok"]:
        first = report["problems"][0]
        where = f"row {report['first_bad_seq']}" if report["first_bad_seq"] else f"{first['check']} {first.get('id', '')}"
        text = (f"audit chain broken at row {report['first_bad_seq']}: {first['problem']}" if first["check"] == "chain"
                else f"audit verify failed at {where.strip()}: {first['problem']}")
        extra = len(report["problems"]) - 1
        raise _VerifyFailed(report, text + (f" (and {extra} more problem(s))" if extra else ""))
    return report, (f"audit chain ok ({report['rows']} rows); {report['checkpoints']} checkpoint(s), triggers, "
                    "records, versions and accounts agree with it")


def cmd_audit_checkpoint(args) -> tuple[dict, str]:
    from server.store.anchor import write_checkpoint

    cfg = load_config()
    folders = [*([cfg["AUDIT_ANCHOR_DIR"]] if cfg.get("AUDIT_ANCHOR_DIR") else []), *args.to]
    if not folders:
        raise EproError("validation.invalid", 400, detail="set ALS_EPRO_AUDIT_ANCHOR_DIR or give --to DIR")
    with _ready_db(args) as db:
        out = write_checkpoint(db, folders, reason="command line")
    return out, f"checkpoint of row {out['seq']} written to {', '.join(out['files'])}"


def cmd_staff_role(args) -> tuple[dict, str]:
    from server.store.staff import set_staff_role, staff_by_email

    with _ready_db(args) as db:
        row = staff_by_email(db, args.email)
        if row is None:
            raise EproError("not_found", 404, detail=args.email)
        out = set_staff_role(db, row["id"], args.role, actor=_actor(), reason=args.reason)
    return {"staff_id": out["id"], "email": out["email"], "role": out["role"]}, f"{out['email']} is now {out['role']}"


def cmd_staff_reset(args) -> tuple[dict, str]:
    from server.store.staff import reset_password, staff_by_email

    password = _read_password()
    with _ready_db(args) as db:
        row = staff_by_email(db, args.email)
        if row is None:
            raise EproError("not_found", 404, detail=args.email)
        out = reset_password(db, row["id"], password, actor=_actor(), reason=args.reason)
    return ({"staff_id": out["id"], "email": out["email"], "must_change_password": True},
            f"temporary password set for {out['email']}; it must be changed at the next sign-in")


class _VerifyFailed(Exception):
    def __init__(self, result: dict, text: str) -> None:
        super().__init__(text)
        self.result, self.text = result, text


#: the garbage collector's thresholds in a serving process (CPython's default: 700, 10, 10)
SERVE_GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Garbage-collector settings for a serving process, called once the app is built: what exists
    by then (modules, the app, the protocol, the schemas) lives as long as the process, so it is
    moved out of the collector's view (``gc.freeze``), and the young generation is collected every
    20,000 allocations instead of every 700 — an upload of 500 records allocates hundreds of
    thousands of short-lived objects, nearly none of them in reference cycles. Bench 2 on 2 cores:
    59–61 % → 63–65 % of the bare endpoint, three alternating pairs; bench 1's served sync about
    6 % faster."""
    import gc

    gc.freeze()
    gc.set_threshold(*SERVE_GC_THRESHOLDS)


def cmd_serve(args) -> tuple[dict, str] | None:
    import signal

    from waitress import create_server

    from server import create_app
    from server.jobs import start_jobs

    app = create_app({"DB": args.db})
    tune_gc()
    proxy = {}
    if app.config.get("TRUSTED_PROXY"):
        # behind nginx every client would look like 127.0.0.1: rate limits and audit rows need the real address
        proxy = {"trusted_proxy": app.config["TRUSTED_PROXY"], "trusted_proxy_count": 1,
                 "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}}
    server = create_server(app, host=args.host, port=args.port, threads=args.threads,
                           clear_untrusted_proxy_headers=True, **proxy)
    port = server.effective_port

    def _stop(_signum, _frame):
        raise SystemExit(0)

    # the handler is in place before anyone is told the server listens (a SIGTERM right after is clean)
    signal.signal(signal.SIGTERM, _stop)
    print(f"serving on http://{args.host}:{port}", flush=True)
    scheduler = None if args.no_jobs else start_jobs(app.config)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        server.close()
    return None


# --- entry point ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        from server.config import configure_security

        configure_security(load_config())
    except ValueError as err:
        print(f"error: configuration: {err}", file=sys.stderr)
        return EXIT_ERROR
    try:
        outcome = args.fn(args)
    except _VerifyFailed as failed:
        if as_json:
            print(json.dumps(failed.result, ensure_ascii=False), flush=True)
        print(f"error: {failed.text}", file=sys.stderr)
        return EXIT_ERROR
    except EproError as err:
        if as_json:
            print(json.dumps(err.body(), ensure_ascii=False), file=sys.stderr)
        else:
            detail = "; ".join(f"{e.field}: {e.message}" for e in err.errors)
            print(f"error: {err.code}: {err.message()}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return EXIT_ERROR
    except (OSError, RuntimeError) as err:
        if as_json:
            print(json.dumps({"ok": False, "code": "cli.error", "error": str(err)}), file=sys.stderr)
        else:
            print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    if outcome is None:
        return 0
    result, text = outcome
    print(json.dumps(result, ensure_ascii=False) if as_json else text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
