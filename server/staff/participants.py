"""The participants list (own site, sorted by urgency) and the participant page."""

from __future__ import annotations

from flask import request

from server.auth import enforce, staff_required
from server.clock import utc_now
from server.staff import bp, flag_states, participant_or_403, protocol, web
from server.staff.detail import (
    DOMAINS, alsfrs_points, delta_fs_at_baseline, dose_rows, grade_words, heat_map, nostril_text, record_panels,
    symptom_names, timeline_days,
)
from server.staff.overview import SORTS, site_counts, sort_summaries, summarize
from server.staff.svg import Point, line_chart
from server.store.audit import audit_for_entity
from server.store.participants import caregivers_for, participants_for_site
from server.store.records import get_record
from shared.errors import EproError
from shared.flags import describe_flag, describe_note
from shared.messages import t

web.register_nav("staff.participants", "staff.nav.participants", "view", order=10)


def _summaries(site_id: int, now):
    db = web.get_db()
    return [summarize(db, protocol(), p, now, states=flag_states(db, p["id"]))
            for p in participants_for_site(db, site_id)]


@bp.get("/participants")
@staff_required("view")
def participants():
    staff = web.signed_in()
    now = utc_now()
    sort = request.args.get("sort", "risk")
    sort = sort if sort in SORTS else "risk"
    only = request.args.get("only", "")
    rows = sort_summaries(_summaries(staff["site_id"], now), sort)
    counts = site_counts(rows)
    if only == "flags":
        rows = [s for s in rows if s.open_flags]
    elif only == "dlt":
        rows = [s for s in rows if s.dlt.state == "open"]
    threshold = protocol().threshold("device_silent_hours")
    return web.render("staff/participants.html", rows=rows, counts=counts, sort=sort, only=only,
                      silent_hours=threshold, now=now)


ITEM_STATES = {"done": ("green", "✓"), "late": ("amber", "⚠"), "missed": ("red", "✗"), "open": ("blue", "○"),
               "upcoming": ("grey", "·")}


def _item_state(item, payloads: dict, lang: str) -> tuple[str, str, str]:
    """Colour, icon and word for a scheduled item; a dose confirmed as not given is not "done"."""
    if (item.status == "done" and item.kind == "dose_confirmation"
            and payloads.get(item.record_ids[0], {}).get("given") is False):
        return "red", "✗", t("staff.doses.not_given", lang)
    colour, icon = ITEM_STATES[item.status]
    return colour, icon, t(f"staff.status.{item.status}", lang)


def _y_floor(values) -> int:
    """Start the total's axis a little under the lowest value (in steps of 4), so change is visible."""
    low = min(values, default=48)
    return max(0, min(40, (low - 6) // 4 * 4))


def _charts(points, lang: str, subject: str):
    """The ALSFRS-R total chart and one small chart per domain, each with title and description."""
    def tick(x):
        return t("staff.chart.day_tick", lang, n=int(x) if x > 0 else f"−{abs(int(x))}")

    base = next((p for p in points if p["baseline"]), None)
    floor = _y_floor(p["total"] for p in points)
    x_label = t("staff.chart.x_label", lang)
    dose1 = (1, t("staff.chart.dose1", lang))
    total_desc = t("staff.chart.total_desc", lang, subject=subject, n=len(points),
                   values="; ".join(f"{tick(p['day'])}: {p['total']}" for p in points) or "—")
    caption = t("staff.chart.total_title", lang) + (t("staff.chart.axis_from", lang, value=floor) if floor else "")
    charts = [{"id": "chart-total", "css": "chart-total", "caption": caption,
               "svg": line_chart([Point(p["day"], p["total"], emphasis=p["baseline"]) for p in points],
                                 chart_id="chart-total", title=caption,
                                 desc=total_desc, y_min=floor, y_max=48, y_ticks=range(floor, 49, 4), x_tick=tick,
                                 x_label=x_label, marker_x=dose1,
                                 baseline=(base["total"], t("staff.chart.baseline_line", lang, total=base["total"]))
                                 if base else None, width=720, height=280)}]
    for d in DOMAINS:
        name = t(f"staff.alsfrs.{d}", lang)
        desc = t("staff.chart.domain_desc", lang, domain=name,
                 values="; ".join(f"{tick(p['day'])}: {p[d]}" for p in points) or "—")
        charts.append({"id": f"chart-{d}", "css": "chart-domain", "caption": name,
                       "svg": line_chart([Point(p["day"], p[d], emphasis=p["baseline"]) for p in points],
                                         chart_id=f"chart-{d}", title=t("staff.chart.domain_title", lang, domain=name),
                                         desc=desc, y_min=0, y_max=12, y_ticks=(0, 4, 8, 12), x_tick=tick,
                                         x_label=x_label, font=16,
                                         baseline=(base[d], t("staff.chart.baseline_short", lang, value=base[d]))
                                         if base else None, width=480, height=240)})
    return charts


@bp.get("/participants/<subject>")
@staff_required("view")
def participant(subject: str):
    p = participant_or_403(subject, "view")
    db, lang, now = web.get_db(), web.lang(), utc_now()
    summary = summarize(db, protocol(), p, now, states=flag_states(db, p["id"]))
    points = alsfrs_points(summary)
    payloads = {r["id"]: r["current"]["payload"] for r in summary.records}
    flags = [{"flag": f, "desc": describe_flag(f, lang), "state": summary.states.get(f.key)} for f in summary.flags]
    flags.sort(key=lambda x: (x["state"] is not None, x["flag"].severity != "high"))
    history = [a for a in audit_for_entity(db, "participant", subject)
               if a["action"] in ("participant.enroll", "participant.set_first_dose", "participant.withdraw")]
    return web.render(
        "staff/participant.html", p=p, summary=summary, flags=flags,
        notes=[describe_note(n, lang) for n in summary.flags.notes], points=points,
        charts=_charts(points, lang, subject), dfs=delta_fs_at_baseline(summary),
        heat=heat_map(summary, protocol()), symptom_names=symptom_names(lang), grade_words=grade_words(lang),
        doses=dose_rows(summary), days=timeline_days(summary), records=record_panels(db, summary, lang),
        caregivers=caregivers_for(db, p["id"]), history=history, now=now, protocol=protocol(),
        silent_hours=protocol().threshold("device_silent_hours"),
        nostril=lambda side: nostril_text(side, lang),
        item_state=lambda item: _item_state(item, payloads, lang))


@bp.get("/records/<record_id>")
@staff_required("view")
def record(record_id: str):
    """One record with its versions and audit trail (the page flags and reports link to)."""
    db = web.get_db()
    rec = get_record(db, record_id)
    if rec is None:
        raise EproError("record.not_found", 404)
    from server.store.participants import participant_by_id
    p = participant_by_id(db, rec["participant_id"])
    enforce("view", p["site_id"])
    summary = summarize(db, protocol(), p, utc_now(), states=flag_states(db, p["id"]))
    panel = record_panels(db, summary, web.lang(), only=record_id)[0]
    return web.render("staff/record.html", p=p, summary=summary, rec=panel)
