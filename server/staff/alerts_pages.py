"""Site alerts on the staff pages (issue 12): the admin page (on-call list of each site, every delivery
with its attempts and failures) and each staff member's own alert settings (account page)."""

from __future__ import annotations

from flask import redirect, request, url_for

from server import alerts
from server.alerts.send import rule_title, webhook_host
from server.auth import staff_required
from server.clock import utc_now
from server.staff import bp, web
from server.staff.site_work import _actor
from server.store.sites import list_sites
from server.store.staff import list_staff
from shared.errors import EproError

web.register_nav("staff.admin_alerts", "alerts.nav", "admin_alerts", order=63)
STATUSES = ("pending", "sending", "sent", "failed")


@bp.get("/admin/alerts")
@staff_required("admin_alerts")
def admin_alerts():
    db = web.get_db()
    sites = list_sites(db)
    code = request.args.get("site") or (sites[0]["code"] if sites else "")
    site = next((s for s in sites if s["code"] == code), sites[0] if sites else None)
    status = request.args.get("status", "")
    people, candidates, rows = [], [], []
    if site is not None:
        people = alerts.oncall(db, site["id"])
        on = {p["id"] for p in people}
        candidates = [s for s in list_staff(db) if s["site_id"] == site["id"] and s["role"] != "admin"
                      and s["active"] and s["id"] not in on]
        rows = alerts.deliveries(db, site_id=site["id"], status=status if status in STATUSES else None)
    failed = sum(r["status"] == "failed" for r in rows)
    return web.render("staff/alerts/admin.html", sites=sites, site=site, people=people, candidates=candidates,
                      rows=rows, status_filter=status, statuses=STATUSES, failed=failed, webhook_host=webhook_host,
                      rule_title=rule_title)


@bp.post("/admin/alerts/oncall")
@staff_required("admin_alerts")
def admin_alerts_oncall():
    web.check_csrf()
    db = web.get_db()
    try:
        site_id, staff_id = int(request.form.get("site_id", "")), int(request.form.get("staff_id", ""))
    except ValueError:
        raise EproError("validation.invalid", 400, detail="site_id, staff_id") from None
    site = next((s for s in list_sites(db) if s["id"] == site_id), None)
    person = next((s for s in list_staff(db) if s["id"] == staff_id), None)
    if site is None or person is None:
        raise EproError("not_found", 404)
    if request.form.get("op") == "remove":
        alerts.remove_oncall(db, site_id, staff_id, _actor(), now=utc_now())
        web.notify("alerts.oncall_removed", email=person["email"])
    else:
        alerts.add_oncall(db, site_id, staff_id, _actor(), now=utc_now())
        web.notify("alerts.oncall_added", email=person["email"])
    return redirect(url_for("staff.admin_alerts", site=site["code"]), 303)


@bp.get("/account/alerts")
@web.signed_in_required
def my_alerts():
    staff = web.signed_in()
    db = web.get_db()
    on = any(p["id"] == staff["id"] for p in alerts.oncall(db, staff["site_id"]))
    return web.render("staff/alerts/account.html", s=alerts.settings(db, staff["id"]), on_call=on)


@bp.post("/account/alerts")
@web.signed_in_required
def my_alerts_save():
    web.check_csrf()
    staff = web.signed_in()
    try:
        alerts.save_settings(web.get_db(), staff["id"], email_enabled=bool(request.form.get("email_enabled")),
                             digest_enabled=bool(request.form.get("digest_enabled")),
                             lang=request.form.get("lang", "en"), webhook_url=request.form.get("webhook_url"),
                             actor=_actor(), now=utc_now())
    except EproError as err:
        if err.status != 400:
            raise
        web.notify("queries.error", "error", detail="; ".join(e.message for e in err.errors))
        return redirect(url_for("staff.my_alerts"), 303)
    web.notify("alerts.account.saved")
    return redirect(url_for("staff.my_alerts"), 303)
