"""The participant page: a summary that fits one screen, then sections that load on demand.

``/staff/participants/<subject>`` is the summary with the Safety flags section (what a coordinator
looks at first; the flag-acknowledgement form returns to ``…#flags`` here). Every section has its
own URL and view function, and its own template under ``staff/participant/`` that extends the
layout ``staff/participant.html`` (summary, section tabs, ``{% block section %}``):

=============================================  =============================  ===============================
URL                                            endpoint                        template
=============================================  =============================  ===============================
``/staff/participants/<s>`` and ``…/flags``    ``participant`` / ``…_flags``   ``participant/flags.html``
``…/diary`` (``?window=N``)                    ``participant_diary``           ``participant/diary.html``
``…/doses``                                    ``participant_doses``           ``participant/doses.html``
``…/records`` (``?page=N&type=T``)             ``participant_records``         ``participant/records.html``
``…/audit`` (``?page=N``)                      ``participant_audit``           ``participant/audit.html``
``…/devices``                                  ``participant_devices``         ``participant/devices.html``
``…/print``                                    ``participant_print``           ``participant/print.html``
=============================================  =============================  ===============================

Everything is server-rendered and works without JavaScript. A section reads only what it shows
(records' versions and audit rows only for the page of records on screen), so a participant with a
year of entries stays small and fast. Another area adds to a section by including its template in
that section's block (see each template's header comment), or to the summary through the blocks
``summary_facts`` / ``open_queries`` (``open_queries`` is shown when the view passes a number).
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from server.auth import staff_required
from server.clock import utc_now
from server.staff import bp, flag_states, participant_or_403, protocol, web
from server.staff.detail import (
    DOMAINS, RECORD_TYPES, RECORDS_PER_PAGE, Names, alsfrs_points, audit_summary, day_windows,
    delta_fs_at_baseline, dose_marks, dose_rows, grade_words, heat_map, heat_window, nostril_text, page_of,
    record_panels, symptom_names, symptom_totals, timeline_days, timeline_window, window_for,
)
from server.staff.overview import summarize
from server.staff.svg import Bar, Mark, Point, bar_chart, line_chart
from server.store.audit import audit_for_entity, audit_for_participant, count_audit_for_participant
from server.store.participants import caregivers_for
from server.store.queries import active_counts
from shared.flags import describe_flag, describe_note
from shared.messages import t

#: section key → (endpoint, message key of its name)
SECTIONS = {
    "flags": ("staff.participant_flags", "staff.flags.title"),
    "diary": ("staff.participant_diary", "staff_pages.section.diary"),
    "doses": ("staff.participant_doses", "staff.doses.title"),
    "records": ("staff.participant_records", "staff_pages.section.records"),
    "audit": ("staff.participant_audit", "staff_pages.section.audit"),
    "devices": ("staff.participant_devices", "staff.devices.title"),
}
AUDIT_PER_PAGE = 50
ITEM_STATES = {"done": ("green", "✓"), "late": ("amber", "⚠"), "missed": ("red", "✗"), "open": ("blue", "○"),
               "upcoming": ("grey", "·")}


# --- the summary every section shows -----------------------------------------------------------------

def _context(subject: str, section: str) -> dict[str, Any]:
    """The participant, its summary and the top strip's figures, shared by every section."""
    p = participant_or_403(subject, "view")
    db, lang, now = web.get_db(), web.lang(), utc_now()
    summary = summarize(db, protocol(), p, now, states=flag_states(db, p["id"]))
    tl, dlt = summary.timeline, summary.dlt
    dlt_days = {"first": tl.date_of(1), "last": tl.date_of(dlt.length_days),
                "starts_at": dlt.starts_at, "planned": dlt.starts_at is None}
    open_flags = summary.open_flags
    active = active_counts(db, p["site_id"]).get(p["id"], {})
    open_queries = active.get("open", 0) + active.get("answered", 0)
    tabs = []
    for key, (endpoint, label) in SECTIONS.items():
        count = None
        if key == "flags":
            count = t("staff_pages.tabs.open_n", lang, n=len(open_flags))
        elif key == "records":
            count = str(len(summary.records))
        tabs.append({"key": key, "url": url_for(endpoint, subject=subject), "label": t(label, lang),
                     "count": count})
    return {"p": p, "summary": summary, "section": section, "tabs": tabs, "now": now, "protocol": protocol(),
            "dfs": delta_fs_at_baseline(summary), "dlt_days": dlt_days, "open_flag_count": len(open_flags),
            "open_high": summary.open_high, "open_queries": open_queries, "section_title": t(SECTIONS[section][1], lang) if section in SECTIONS
            else t("staff_pages.print.title", lang)}


def _render(section: str, subject: str, **extra: Any):
    ctx = _context(subject, section)
    builder = BUILDERS[section]
    ctx.update(builder(ctx))
    ctx.update(extra)
    return web.render(f"staff/participant/{section}.html", **ctx)


# --- sections ------------------------------------------------------------------------------------------

def _flags(ctx: dict[str, Any]) -> dict[str, Any]:
    lang, summary = web.lang(), ctx["summary"]
    by_id = {r["id"]: r for r in summary.records}
    flags = [{"flag": f, "desc": describe_flag(f, lang), "state": summary.states.get(f.key),
              "record": by_id.get(f.record_id)} for f in summary.flags]
    flags.sort(key=lambda x: (x["state"] is not None, x["flag"].severity != "high"))
    from server.staff.detail import record_title
    for f in flags:
        if f["record"] is not None:
            f["record_title"] = record_title(f["record"], summary, lang)
    return {"flags": flags, "notes": [describe_note(n, lang) for n in summary.flags.notes]}


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


def _tick(lang: str):
    def tick(x):
        return t("staff.chart.day_tick", lang, n=int(x) if x > 0 else f"−{abs(int(x))}")
    return tick


def alsfrs_charts(points, lang: str, subject: str, *, prefix: str = "chart") -> list[dict[str, Any]]:
    """The ALSFRS-R total chart and one small chart per domain, each with title and description."""
    tick = _tick(lang)
    base = next((p for p in points if p["baseline"]), None)
    floor = _y_floor(p["total"] for p in points)
    x_label = t("staff.chart.x_label", lang)
    dose1 = (1, t("staff.chart.dose1", lang))
    total_desc = t("staff.chart.total_desc", lang, subject=subject, n=len(points),
                   values="; ".join(f"{tick(p['day'])}: {p['total']}" for p in points) or "—")
    caption = t("staff.chart.total_title", lang) + (t("staff.chart.axis_from", lang, value=floor) if floor else "")
    charts = [{"id": f"{prefix}-total", "css": "chart-total", "caption": caption,
               "svg": line_chart([Point(p["day"], p["total"], emphasis=p["baseline"]) for p in points],
                                 chart_id=f"{prefix}-total", title=caption,
                                 desc=total_desc, y_min=floor, y_max=48, y_ticks=range(floor, 49, 4), x_tick=tick,
                                 x_label=x_label, marker_x=dose1,
                                 baseline=(base["total"], t("staff.chart.baseline_line", lang, total=base["total"]))
                                 if base else None, width=720, height=280)}]
    for d in DOMAINS:
        name = t(f"staff.alsfrs.{d}", lang)
        desc = t("staff.chart.domain_desc", lang, domain=name,
                 values="; ".join(f"{tick(p['day'])}: {p[d]}" for p in points) or "—")
        charts.append({"id": f"{prefix}-{d}", "css": "chart-domain", "caption": name,
                       "svg": line_chart([Point(p["day"], p[d], emphasis=p["baseline"]) for p in points],
                                         chart_id=f"{prefix}-{d}", title=t("staff.chart.domain_title", lang, domain=name),
                                         desc=desc, y_min=0, y_max=12, y_ticks=(0, 4, 8, 12), x_tick=tick,
                                         x_label=x_label, font=16,
                                         baseline=(base[d], t("staff.chart.baseline_short", lang, value=base[d]))
                                         if base else None, width=480, height=240)})
    return charts


def symptom_window(summary, heat_all: dict[str, Any], doses: list[dict[str, Any]], window, lang: str, *,
                   chart_id: str, width: int = 1000) -> dict[str, Any]:
    """One window of days: the heat map's columns, the doses on the same days (a row of the table
    and marks on the chart) and the chart of each day's symptom total with the doses marked."""
    tl = summary.timeline
    heat = heat_window(heat_all, window)
    marks_by_day = dose_marks(doses, tl)
    shown = [c["day"] for c in heat["columns"]]
    lo_day = min(shown, default=window["first"] if window else 1)   # no empty days before the first diary
    hi_day = window["last"] if window else max((c["day"] for c in heat["columns"]), default=1)
    if window:
        hi_day = min(hi_day, max([c["day"] for c in heat["columns"]] + [
            tl.study_day(d) for d in marks_by_day if window["first"] <= tl.study_day(d) <= window["last"]] + [lo_day]))

    def offset(day: int) -> int:          # a continuous axis: study days have no day 0
        return day - 1 if day > 0 else day

    tick = _tick(lang)
    totals = symptom_totals(heat)
    per_day: dict[int, int | None] = {}
    for c, total in zip(heat["columns"], totals):
        prev = per_day.get(c["day"])
        per_day[c["day"]] = total if prev is None else (prev if total is None else max(prev, total))
    bars = [Bar(offset(d), v) for d, v in sorted(per_day.items())]
    marks, lane = [], []
    for d, items in sorted(marks_by_day.items()):
        sd = tl.study_day(d)
        if not (offset(lo_day) <= offset(sd) <= offset(hi_day)):
            continue
        for m in items:
            marks.append(Mark(offset(sd), t("staff_pages.dose_mark", lang, n=m["number"], icon=m["icon"])))
            lane.append({**m, "day": sd, "date": d})
    column_doses = [[m for m in marks_by_day.get(c["date"], [])] for c in heat["columns"]]
    top = max([v for v in per_day.values() if v is not None] + [6])
    desc_values = "; ".join(f"{tick(d)}: {'—' if v is None else v}" for d, v in sorted(per_day.items())) or "—"
    dose_words = "; ".join(f"{tick(m['day'])}: {t('staff_pages.dose_state.' + m['state'], lang, n=m['number'])}"
                           for m in lane) or t("staff_pages.no_doses_in_window", lang)
    title = t("staff_pages.symptom_chart.title", lang)
    svg = bar_chart(bars, chart_id=chart_id, title=title,
                    desc=t("staff_pages.symptom_chart.desc", lang, values=desc_values, doses=dose_words),
                    y_max=top, x_tick=lambda x: tick(x + 1 if x >= 0 else x),
                    x_label=t("staff.chart.x_label", lang), y_label=t("staff_pages.symptom_chart.y_label", lang),
                    marks=marks, x_range=(offset(lo_day), offset(hi_day)), width=width)
    return {"heat": heat, "column_doses": column_doses, "totals": totals, "chart": svg, "chart_title": title, "doses_in_window": lane}


def _label_windows(windows: list[dict[str, int]], lang: str) -> list[dict[str, Any]]:
    for w in windows:
        first = str(w["low"]) if w["low"] > 0 else f"−{abs(w['low'])}"
        w["label"] = t("staff_pages.window.days", lang, first=first, last=w["last"])
    return windows


def _diary(ctx: dict[str, Any]) -> dict[str, Any]:
    lang, summary, p = web.lang(), ctx["summary"], ctx["p"]
    points = alsfrs_points(summary)
    heat_all = heat_map(summary, protocol())
    doses = dose_rows(summary)
    days = timeline_days(summary)
    windows = _label_windows(day_windows(sorted({c["day"] for c in heat_all["columns"]} | {d["day"] for d in days})),
                             lang)
    latest = max((c["day"] for c in heat_all["columns"]), default=None)
    window = window_for(windows, request.args.get("window"), latest)
    payloads = {r["id"]: r["current"]["payload"] for r in summary.records}
    return {"points": points, "charts": alsfrs_charts(points, lang, p["subject"]), "windows": windows,
            "window": window, "symptoms": symptom_window(summary, heat_all, doses, window, lang, chart_id="chart-nasal"),
            "symptom_names": symptom_names(lang), "grade_words": grade_words(lang),
            "days": timeline_window(days, window), "item_state": lambda item: _item_state(item, payloads, lang)}


def _doses(ctx: dict[str, Any]) -> dict[str, Any]:
    lang = web.lang()
    return {"doses": dose_rows(ctx["summary"]), "nostril": lambda side: nostril_text(side, lang)}


def _records(ctx: dict[str, Any]) -> dict[str, Any]:
    summary = ctx["summary"]
    kind = request.args.get("type", "")
    kind = kind if kind in RECORD_TYPES else ""
    only_corrected = request.args.get("only") == "corrected"
    chosen = [r for r in reversed(summary.records) if (not kind or r["type"] == kind)
              and (not only_corrected or (r.get("version") or 1) > 1)]
    page = page_of(chosen, request.args.get("page"), RECORDS_PER_PAGE)
    page["items"] = record_panels(web.get_db(), summary, web.lang(), records=page["items"])
    counts = {k: sum(r["type"] == k for r in summary.records) for k in RECORD_TYPES}
    counts["corrected"] = sum((r.get("version") or 1) > 1 for r in summary.records)
    pager_args = {"subject": summary.subject, **({"type": kind} if kind else {}),
                  **({"only": "corrected"} if only_corrected else {})}
    return {"records": page["items"], "pager": page, "pager_args": pager_args, "type": kind, "only": "corrected" if only_corrected else "",
            "type_counts": counts, "record_types": RECORD_TYPES}


def _audit(ctx: dict[str, Any]) -> dict[str, Any]:
    db, lang, p = web.get_db(), web.lang(), ctx["p"]
    total = count_audit_for_participant(db, p["id"], p["subject"])
    page = page_of(range(total), request.args.get("page"), AUDIT_PER_PAGE)
    rows = audit_for_participant(db, p["id"], p["subject"], limit=AUDIT_PER_PAGE,
                                 offset=(page["page"] - 1) * AUDIT_PER_PAGE)
    names = Names(db, lang)
    titles = {r["id"]: r for r in ctx["summary"].records}
    for row in rows:
        row["by"] = names(row["actor_kind"], row["actor_id"])
        row["summary"] = audit_summary(row, lang)
        row["record"] = titles.get(row["entity_id"]) if row["entity"] == "record" else None
    history = [a for a in audit_for_entity(db, "participant", p["subject"])
               if a["action"] in ("participant.enroll", "participant.set_first_dose", "participant.withdraw")]
    return {"audit_rows": rows, "pager": page, "history": history}


def _devices(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"caregivers": caregivers_for(web.get_db(), ctx["p"]["id"]),
            "silent_hours": protocol().threshold("device_silent_hours")}


def _print(ctx: dict[str, Any]) -> dict[str, Any]:
    """Everything for paper: summary, flags, charts, every window of symptoms, doses, every record
    with its versions (their audit rows are on the Audit section and in the exports)."""
    lang, summary, p = web.lang(), ctx["summary"], ctx["p"]
    out = {**_flags(ctx), **_doses(ctx)}
    points = alsfrs_points(summary)
    heat_all = heat_map(summary, protocol())
    doses = out["doses"]
    windows = _label_windows(day_windows(sorted({c["day"] for c in heat_all["columns"]}), size=14), lang)
    out.update({
        "points": points, "charts": alsfrs_charts(points, lang, p["subject"], prefix="print-chart"),
        "symptom_windows": [{"window": w, **symptom_window(summary, heat_all, doses, w, lang,
                                                           chart_id=f"print-nasal-{w['index']}", width=700)}
                            for w in windows],
        "symptom_names": symptom_names(lang), "grade_words": grade_words(lang),
        "records": record_panels(web.get_db(), summary, lang, audit=False), "printed_at": ctx["now"],
    })
    return out


BUILDERS = {"flags": _flags, "diary": _diary, "doses": _doses, "records": _records, "audit": _audit,
            "devices": _devices, "print": _print}


@bp.get("/participants/<subject>")
@staff_required("view")
def participant(subject: str):
    """The summary with the Safety flags section."""
    return _render("flags", subject)


@bp.get("/participants/<subject>/flags")
@staff_required("view")
def participant_flags(subject: str):
    return _render("flags", subject)


@bp.get("/participants/<subject>/diary")
@staff_required("view")
def participant_diary(subject: str):
    return _render("diary", subject)


@bp.get("/participants/<subject>/doses")
@staff_required("view")
def participant_doses(subject: str):
    return _render("doses", subject)


@bp.get("/participants/<subject>/records")
@staff_required("view")
def participant_records(subject: str):
    return _render("records", subject)


@bp.get("/participants/<subject>/audit")
@staff_required("view")
def participant_audit(subject: str):
    return _render("audit", subject)


@bp.get("/participants/<subject>/devices")
@staff_required("view")
def participant_devices(subject: str):
    return _render("devices", subject)


@bp.get("/participants/<subject>/print")
@staff_required("view")
def participant_print(subject: str):
    """One participant for paper (A4, the browser's print to PDF)."""
    return _render("print", subject)
