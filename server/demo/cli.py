"""``als-epro-server demo``: build a demo database (contract §3).

Refuses (exit 2) unless the target is new or already a demo database.
"""

from __future__ import annotations

import json
import sys


def register(sub, cmd) -> None:
    sp = cmd(sub, "demo", cmd_demo, "build a demo database with synthetic participants (DEMO — synthetic data)")
    sp.add_argument("--password", default=None, help="password for the demo staff logins (default: random, printed)")


def cmd_demo(args):
    from server.demo import DemoRefused, build_demo

    try:
        result = build_demo(args.db, password=args.password)
    except DemoRefused as err:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "status": 2, "code": "demo.refused", "error": str(err), "errors": []},
                             ensure_ascii=False), file=sys.stderr)
        else:
            print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2)
    out = {"db": result.db_path, "site": result.site, "staff": result.staff, "password": result.password,
           "participants": result.participants, "records": result.records, "replaced": result.replaced,
           "demo": True}
    lines = [f"DEMO — synthetic data: {result.db_path} ({'rebuilt' if result.replaced else 'new'})",
             f"site {result.site}; {len(result.participants)} participants; {result.records} records"]
    lines += [f"  staff login {s['email']} ({s['role']}, {s['name']})" for s in result.staff]
    lines.append(f"  password for every demo login: {result.password}")
    lines += [f"  {p['subject']}: {p['story']}" for p in result.participants]
    return out, "\n".join(lines)
