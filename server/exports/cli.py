"""``als-epro-server export`` (contract §3), loaded by :mod:`server.cli` as a plugin.

    als-epro-server export --format csv|odm|sdtm|fhir|all --out DIR [--site CODE]
    als-epro-server export verify DIR

The first writes the site's data and a manifest into DIR (new or empty) and audits the export
(actor ``cli:<OS user>``). ``--site`` may be left out when the database holds one site. The second
recomputes every hash in DIR's manifest and exits 1 naming each file that is missing, changed or
not listed.
"""

from __future__ import annotations

import argparse

from shared.errors import EproError, FieldError

FORMAT_CHOICES = ("csv", "odm", "sdtm", "fhir", "all")


def register(sub, cmd) -> None:
    sp = cmd(sub, "export", cmd_export, "export a site's data (CSV, CDISC ODM, SDTM-style, FHIR) with a "
                                        "manifest; or 'export verify DIR' to check an export")
    sp.add_argument("verify", nargs="*", metavar="verify DIR", help="check DIR against its manifest")
    sp.add_argument("--format", choices=FORMAT_CHOICES, default=None, help="which format (all: every one)")
    sp.add_argument("--out", default=None, help="new or empty folder to write into")
    sp.add_argument("--site", default=None, help="site code (default: the only site)")



def cmd_export(args: argparse.Namespace):
    if args.verify:
        return _verify(args)
    missing = [FieldError(name, "required", f"--{name} is required")
               for name in ("format", "out") if getattr(args, name) is None]
    if missing:
        raise EproError("validation.invalid", 400, errors=missing)
    from server.cli import _actor, _ready_db
    from server.config import load_config
    from server.exports.build import ALL, run_site_export
    from server.store.sites import list_sites
    from shared.protocol import load_protocol

    actor = _actor()
    formats = ALL if args.format == "all" else (args.format,)
    with _ready_db(args) as db:
        site = args.site
        if site is None:
            sites = [s["code"] for s in list_sites(db)]
            if len(sites) != 1:
                raise EproError("validation.invalid", 400, errors=[FieldError(
                    "site", "required", f"name the site with --site (one of: {', '.join(sites) or 'none'})")])
            site = sites[0]
        try:
            manifest = run_site_export(db, site, args.out, formats=formats, generated_by=str(actor), actor=actor,
                                       protocol=load_protocol(load_config()["PROTOCOL"]))
        except FileExistsError as err:
            raise EproError("export.out_not_empty", 400, errors=[FieldError("out", "empty", str(err))]) from None
    counts = manifest["counts"]
    text = (f"{'DEMO — synthetic data: ' if manifest.get('demo') else ''}exported site {site} "
            f"({', '.join(formats)}) to {args.out}: {counts['participants']} participants, "
            f"{counts['records_total']} records, {counts['versions']} versions, {counts['audit_entries']} audit "
            f"entries, {counts['files']} files; check with: als-epro-server export verify {args.out}")
    held = manifest.get("held_back") or {"count": 0, "items": []}
    if held["count"]:
        text += (f"\nHELD BACK: {held['count']} stored value(s) could not be written as they are and are listed in "
                 f"{args.out}/problems.json (the rest is exported and verifies):\n"
                 + "\n".join(f"  {p}" for p in held["items"][:20]))
    return {"out": args.out, "site": site, "formats": list(formats), "demo": manifest.get("demo", False),
            "generated_at": manifest["generated_at"], "counts": counts, "held_back": held}, text


def _verify(args: argparse.Namespace):
    from server.cli import _VerifyFailed
    from server.exports.manifest import verify_manifest

    if len(args.verify) != 2 or args.verify[0] != "verify":
        raise EproError("validation.invalid", 400, errors=[
            FieldError("verify", "usage", "use: export verify DIR")])
    folder = args.verify[1]
    problems = verify_manifest(folder)
    if problems:
        raise _VerifyFailed({"ok": False, "dir": folder, "problems": [str(p) for p in problems]},
                            "export does not verify:\n" + "\n".join(f"  {p}" for p in problems))
    return {"ok": True, "dir": folder}, f"OK: every file in {folder} matches its manifest"
