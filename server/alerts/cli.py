"""``als-epro-server alerts …``: run the dispatcher once, manage a site's on-call list, list deliveries."""

from __future__ import annotations

from server.config import load_config
from shared.errors import EproError


def _open(args):
    from server.cli import _ready_db

    return _ready_db(args)


def cmd_send_pending(args) -> tuple[dict, str]:
    from server.alerts import dispatch
    from shared.protocol import load_protocol

    cfg = load_config({"DB": args.db})
    db = _open(args)
    try:
        out = dispatch(db, load_protocol(cfg["PROTOCOL"]), cfg)
    finally:
        db.close()
    return out, (f"{out['new_flags']} new flag(s), {out['queued']} urgent and {out['digests_queued']} digest "
                 f"deliveries queued; sent {out['sent']}, retrying {out['retry']}, failed {out['failed']}")


def _site_and_staff(db, site_code: str, email: str | None = None):
    from server.db import query_one

    site = query_one(db, "SELECT id, code FROM sites WHERE code = ?", [site_code])
    if site is None:
        raise EproError("not_found", 404, detail=f"site {site_code}")
    staff = None
    if email is not None:
        staff = query_one(db, "SELECT id, email FROM staff WHERE email = ?", [email])
        if staff is None:
            raise EproError("not_found", 404, detail=f"staff {email}")
    return site, staff


def cmd_oncall_add(args) -> tuple[dict, str]:
    from server.alerts import add_oncall
    from server.store.audit import Actor

    db = _open(args)
    try:
        site, staff = _site_and_staff(db, args.site, args.email)
        add_oncall(db, site["id"], staff["id"], Actor.cli())
    finally:
        db.close()
    return {"site": site["code"], "email": staff["email"], "oncall": True}, f"{staff['email']} is on call for {site['code']}"


def cmd_oncall_remove(args) -> tuple[dict, str]:
    from server.alerts import remove_oncall
    from server.store.audit import Actor

    db = _open(args)
    try:
        site, staff = _site_and_staff(db, args.site, args.email)
        remove_oncall(db, site["id"], staff["id"], Actor.cli())
    finally:
        db.close()
    return {"site": site["code"], "email": staff["email"], "oncall": False}, f"{staff['email']} is off call for {site['code']}"


def cmd_status(args) -> tuple[dict, str]:
    from server.alerts import deliveries, oncall

    db = _open(args)
    try:
        site, _ = _site_and_staff(db, args.site)
        people = [p["email"] for p in oncall(db, site["id"])]
        rows = [{"key": r["idem_key"], "channel": r["channel"], "status": r["status"], "attempts": r["attempts"],
                 "last_error": r["last_error"], "sent_at": r["sent_at"]} for r in deliveries(db, site_id=site["id"])]
    finally:
        db.close()
    text = "\n".join([f"on call: {', '.join(people) or 'nobody'}"]
                     + [f"{r['status']:8} {r['channel']:8} {r['attempts']} {r['key']} {r['last_error'] or ''}" for r in rows])
    return {"site": site["code"], "oncall": people, "deliveries": rows}, text


def register(sub, command) -> None:
    alerts = sub.add_parser("alerts", help="site alerts for safety flags").add_subparsers(dest="alerts_cmd", required=True)
    command(alerts, "send-pending", cmd_send_pending, "detect new flags and send every due alert now")
    oc = alerts.add_parser("oncall", help="the site's on-call list").add_subparsers(dest="oncall_cmd", required=True)
    sp = command(oc, "add", cmd_oncall_add, "put a staff member on the site's on-call list")
    sp.add_argument("email")
    sp.add_argument("--site", required=True)
    sp = command(oc, "remove", cmd_oncall_remove, "take a staff member off the on-call list")
    sp.add_argument("email")
    sp.add_argument("--site", required=True)
    sp = command(alerts, "status", cmd_status, "the on-call list and the deliveries of a site")
    sp.add_argument("--site", required=True)
