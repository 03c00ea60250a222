"""What the participant page shows, built from a :class:`server.staff.overview.Summary`. No Flask.

Timeline by study day, ALSFRS-R series and ΔFS, the nasal heat map (one column per diary, never
merged), the dose table, and each record with its versions and audit rows in readable words.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlite_utils import Database

from server.db import query_one
from server.staff.fmt import fmt_date, fmt_local, study_day_label, to_datetime
from server.staff.overview import Summary
from server.store.audit import audit_for_entity
from server.store.records import record_versions
from shared.instruments import load_instrument
from shared.messages import has, t
from shared.protocol import Protocol
from shared.scoring import delta_fs, score_alsfrs_r
from shared.vocab import ALSFRS_ALL_KEYS, NASAL_SYMPTOMS

DOMAINS = ("bulbar", "fine_motor", "gross_motor", "respiratory")
UPCOMING_DAYS = 7


def _text(obj: dict[str, str], lang: str) -> str:
    return obj.get(lang) or obj["en"]


def symptom_names(lang: str) -> dict[str, str]:
    return {s["name"]: _text(s["title"], lang) for s in load_instrument("nasal_symptoms").content["symptoms"]}


def item_names(lang: str) -> dict[str, str]:
    return {i["id"]: _text(i["title"], lang) for i in load_instrument("alsfrs_r").content["items"]}


def grade_words(lang: str) -> dict[int, str]:
    return {g["value"]: _text(g["label"], lang) for g in load_instrument("nasal_symptoms").content["grades"]}


# --- who did it ---------------------------------------------------------------------------------------

class Names:
    """Readable names for actor strings (``staff:5``, ``device:dev-1``, ``caregiver:3``...), cached."""

    def __init__(self, db: Database, lang: str) -> None:
        self.db, self.lang = db, lang
        self._cache: dict[str, dict[str, str]] = {}

    def __call__(self, kind: str | None, ident: str | None = None) -> dict[str, str]:
        if ident is None and kind and ":" in kind:
            kind, ident = kind.split(":", 1)
        key = f"{kind}:{ident}"
        if key not in self._cache:
            self._cache[key] = {"kind": kind or "unknown", "text": self._describe(kind or "", ident)}
        return self._cache[key]

    def _describe(self, kind: str, ident: str | None) -> str:
        lang = self.lang
        if kind == "staff" and ident:
            row = query_one(self.db, "SELECT email, role FROM staff WHERE id = ?", [ident])
            if row:
                return t("staff.actor.staff", lang, email=row["email"], role=t(f"staff.role.{row['role']}", lang))
        if kind == "device" and ident:
            row = query_one(self.db, "SELECT name, role FROM devices WHERE id = ?", [ident])
            if row:
                return t(f"staff.actor.device_{row['role']}", lang, name=row["name"], id=ident)
        if kind == "caregiver" and ident:
            row = query_one(self.db, "SELECT name FROM caregivers WHERE id = ?", [ident])
            return t("staff.actor.caregiver", lang, name=row["name"] if row else "?", id=ident)
        if kind == "participant":
            return t("staff.actor.participant", lang, subject=ident or "")
        if kind in ("cli", "system", "anonymous"):
            return t(f"staff.actor.{kind}", lang, id=ident or "—")
        return f"{kind}:{ident}" if ident else kind


# --- values in words ------------------------------------------------------------------------------------

def value_text(value: Any, lang: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return t("staff.yes" if value else "staff.no", lang)
    if isinstance(value, list):
        return ", ".join(value_text(v, lang) for v in value) if value else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}{t('staff.colon', lang)}{value_text(v, lang)}" for k, v in value.items())
    return str(value)


def field_label(path: str, rtype: str, lang: str) -> str:
    """``payload.items.5a`` → the item's title, ``payload.symptoms.epistaxis`` → the symptom's."""
    parts = path.removeprefix("payload.").split(".")
    if parts[0] == "items" and len(parts) == 2:
        return f"{parts[1]} · {item_names(lang).get(parts[1], parts[1])}"
    if parts[0] == "symptoms" and len(parts) == 2:
        return symptom_names(lang).get(parts[1], parts[1])
    if rtype == "dose_confirmation":
        fields = load_instrument("dose_confirmation").content["fields"]
        names = [_text(fields[p], lang) if p in fields and "{" not in _text(fields[p], lang) else p for p in parts]
        return " · ".join(names)
    key = f"staff.field.{parts[-1]}"
    return t(key, lang) if has(key) else path.removeprefix("payload.")


def payload_rows(rec: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """The current payload of a record as (label, value) rows in words."""
    p, rtype = rec["current"]["payload"], rec["type"]
    if rtype == "alsfrs_r":
        names = item_names(lang)
        score = score_alsfrs_r(p["items"])
        rows = [(t("staff.field.gastrostomy", lang), value_text(p.get("gastrostomy"), lang))]
        who = p.get("item_respondent") or {}
        for key in sorted(p["items"], key=ALSFRS_ALL_KEYS.index):
            val = p["items"][key]
            extra = f" ({t(f'staff.respondent.{who[key]}', lang)})" if key in who else ""
            rows.append((f"{key} · {names.get(key, key)}", f"{val}{extra}"))
        rows.append((t("staff.alsfrs.total", lang), f"{score.total} / 48"))
        rows += [(t(f"staff.alsfrs.{d}", lang), f"{getattr(score, d)} / 12") for d in DOMAINS]
        return rows
    if rtype == "nasal_symptoms":
        names, words = symptom_names(lang), grade_words(lang)
        rows = [(t("staff.field.date", lang), p["date"])]
        for name in NASAL_SYMPTOMS:
            g = p["symptoms"].get(name)
            rows.append((names[name], t("staff.not_asked", lang) if g is None else f"{g} · {words.get(g, '')}"))
        rows.append((t("staff.field.epistaxis_needed_help", lang), value_text(p.get("epistaxis_needed_help"), lang)))
        rows.append((t("staff.field.sought_medical_care", lang), value_text(p.get("sought_medical_care"), lang)))
        rows.append((t("staff.field.notes", lang), p.get("notes") or "—"))
        return rows
    inst = load_instrument("dose_confirmation").content
    rows = [(t("staff.dose.number", lang), str(p["dose_number"])),
            (_text(inst["fields"]["planned_date"], lang), p["planned_date"]),
            (_text(inst["fields"]["given"], lang), value_text(p["given"], lang)),
            (_text(inst["fields"]["administered_at"], lang), p.get("administered_at") or "—"),
            (_text(inst["fields"]["administered_by"], lang),
             _text(inst["administered_by"].get(p["administered_by"], {"en": p["administered_by"]}), lang))]
    for side in ("left", "right"):
        rows.append((_text(inst["fields"][side], lang), nostril_text(p["nostrils"][side], lang)))
    rows.append((_text(inst["fields"]["loss"], lang),
                 ", ".join(_text(inst["loss"][x], lang) for x in p.get("loss") or []) or "—"))
    reason = p.get("missed_reason")
    rows.append((_text(inst["fields"]["missed_reason"], lang),
                 (_text(inst["missed_reasons"][reason], lang)
                  + (t("staff.colon", lang) + p["missed_reason_text"] if p.get("missed_reason_text") else ""))
                 if reason else "—"))
    for key in ("kit_number", "concomitant_nasal_products", "notes"):
        rows.append((_text(inst["fields"][key], lang), p.get(key) or "—"))
    return rows


def nostril_text(side: dict[str, Any], lang: str) -> str:
    if not side.get("given"):
        return t("staff.dose.nostril_not_given", lang)
    volume = t(f"staff.dose.volume_{side.get('volume')}", lang)
    kept = t("staff.dose.retained" if side.get("retained") else "staff.dose.lost", lang)
    return f"{volume} · {kept}"


# --- record panels ------------------------------------------------------------------------------------

def record_panels(db: Database, summary: Summary, lang: str, only: str | None = None,
                  records: list[dict[str, Any]] | None = None, audit: bool = True) -> list[dict[str, Any]]:
    """Each record (or only one, or only ``records``: a page of them) with its versions (old → new)
    and, unless ``audit`` is False, its audit rows; in the order given (oldest event first)."""
    names = Names(db, lang)
    out = []
    for rec in summary.records if records is None else records:
        if only is not None and rec["id"] != only:
            continue
        versions = record_versions(db, rec["id"])
        for v in versions:
            v["by"] = names(v["created_by"])
            v["change_rows"] = [{"field": field_label(c["field"], rec["type"], lang),
                                 "old": value_text(c.get("old"), lang), "new": value_text(c.get("new"), lang)}
                                for c in v["changes"]]
        rows = audit_for_entity(db, "record", rec["id"]) if audit else []
        for row in rows:
            row["by"] = names(row["actor_kind"], row["actor_id"])
            row["summary"] = audit_summary(row, lang)
        out.append({
            **rec, "versions": versions, "audit": rows, "originator_name": names(rec["originator"]),
            "rows": payload_rows(rec, lang), "title": record_title(rec, summary, lang),
            "when": record_when(rec, summary, lang),
            "drift_min": None if rec["drift_s"] is None else round(rec["drift_s"] / 60, 1),
        })
    return out


def record_title(rec: dict[str, Any], summary: Summary, lang: str) -> str:
    p = rec["current"]["payload"]
    kind = t(f"staff.type.{rec['type']}", lang)
    if rec["type"] == "dose_confirmation":
        return f"{kind} {p['dose_number']}"
    if rec["type"] == "nasal_symptoms":
        return f"{kind} · {p['date']}"
    return f"{kind} · {score_alsfrs_r(p['items']).total}/48"


def record_when(rec: dict[str, Any], summary: Summary, lang: str) -> str:
    """When the record says it happened: the diary's day, the dose's time, the report's time."""
    p, tz = rec["current"]["payload"], summary.participant["tz"]
    if rec["type"] == "nasal_symptoms":
        d = date.fromisoformat(p["date"])
        return f"{study_day_label(summary.timeline.study_day(d), lang)} · {fmt_date(d, lang)}"
    if rec["type"] == "dose_confirmation" and not p.get("administered_at"):
        d = date.fromisoformat(p["planned_date"])
        return t("staff.record.planned_for", lang, date=fmt_date(d, lang))
    return fmt_local(rec["current"]["event_time"], lang, tz)


def audit_summary(row: dict[str, Any], lang: str) -> str:
    """The audit detail that matters to a reader, in a line (old → new and reason where present)."""
    d = row["detail"] if isinstance(row["detail"], dict) else {}
    parts = []
    if "changes" in d:
        parts += [f"{c['field'].removeprefix('payload.')}{t('staff.colon', lang)}"
                  f"{value_text(c.get('old'), lang)} → {value_text(c.get('new'), lang)}"
                  for c in d["changes"]]
    elif "old" in d or "new" in d:
        parts.append(f"{value_text(d.get('old'), lang)} → {value_text(d.get('new'), lang)}")
    for key in ("reason", "requested_by", "channel", "server_seq", "labels", "version"):
        if d.get(key) not in (None, "", []):
            parts.append(f"{t(f'staff.audit.detail.{key}', lang)}{t('staff.colon', lang)}{value_text(d[key], lang)}")
    return ("；" if lang == "zh-CN" else "; ").join(parts)


# --- ALSFRS-R ---------------------------------------------------------------------------------------------

def alsfrs_points(summary: Summary) -> list[dict[str, Any]]:
    baseline_id = summary.flags.baseline.record_id if summary.flags.baseline else None
    out = []
    for rec in summary.records:
        if rec["type"] != "alsfrs_r":
            continue
        score = score_alsfrs_r(rec["current"]["payload"]["items"])
        local = summary.timeline.local_date(to_datetime(rec["current"]["event_time"]))
        out.append({"record_id": rec["id"], "day": summary.timeline.study_day(local), "date": local,
                    "total": score.total, "scale": score.scale, "baseline": rec["id"] == baseline_id,
                    "version": rec.get("version") or 1, **{d: getattr(score, d) for d in DOMAINS}})
    return out


def delta_fs_at_baseline(summary: Summary) -> dict[str, Any] | None:
    """ΔFS computed once, at baseline (contract §4); None without a baseline."""
    base = summary.flags.baseline
    if base is None:
        return None
    on = summary.timeline.local_date(to_datetime(base.entered_at))
    try:
        value = delta_fs(base.total, summary.participant["onset"], on)
    except ValueError:
        value = None
    return {"value": None if value is None else round(value, 2), "total": base.total, "date": on,
            "onset": summary.participant["onset"], "record_id": base.record_id}


# --- nasal heat map ------------------------------------------------------------------------------------

def heat_map(summary: Summary, protocol: Protocol) -> dict[str, Any]:
    """Columns: one per diary (pre-dose baseline and repeats included), or one empty per missing day."""
    nasal = [r for r in summary.records if r["type"] == "nasal_symptoms"]
    base_item = next((i for i in summary.items if i.key == "nasal:baseline"), None)
    baseline_ids = set(base_item.record_ids) if base_item else set()
    tl = summary.timeline
    by_date: dict[date, list[dict[str, Any]]] = {}
    for r in nasal:
        by_date.setdefault(date.fromisoformat(r["current"]["payload"]["date"]), []).append(r)
    last_day = int(protocol.nasal.get("last_day", 28))
    expected_end = min(summary.today, tl.date_of(last_day))
    dates = set(by_date)
    if expected_end >= tl.day1:
        dates |= {tl.day1 + timedelta(days=n) for n in range((expected_end - tl.day1).days + 1)}
    columns = []
    for d in sorted(dates):
        recs = sorted(by_date.get(d, []), key=lambda r: (r["entered_at"], r["id"]))
        if not recs:
            columns.append({"kind": "missing", "date": d, "day": tl.study_day(d), "record": None})
        seen_diary = False
        for r in recs:
            kind = "baseline" if r["id"] in baseline_ids else ("repeat" if seen_diary else "diary")
            seen_diary = seen_diary or kind != "baseline"
            columns.append({"kind": kind, "date": d, "day": tl.study_day(d), "record": r})
    rows = []
    for name in NASAL_SYMPTOMS:
        rows.append({"name": name, "cells": [
            None if c["record"] is None else ("na" if c["record"]["current"]["payload"]["symptoms"].get(name) is None
                                              else c["record"]["current"]["payload"]["symptoms"][name])
            for c in columns]})
    extras = []
    for key in ("epistaxis_needed_help", "sought_medical_care"):
        extras.append({"name": key, "cells": [None if c["record"] is None else bool(c["record"]["current"]["payload"].get(key))
                                              for c in columns]})
    return {"columns": columns, "rows": rows, "extras": extras}


# --- doses and timeline ------------------------------------------------------------------------------

def dose_rows(summary: Summary) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in summary.records}
    rows, matched = [], set()
    for item in summary.items:
        if item.kind != "dose_confirmation":
            continue
        rec = by_id.get(item.record_ids[0]) if item.record_ids else None
        matched.update(item.record_ids)
        rows.append({"number": item.dose_number, "day": item.study_day, "planned": item.due_date,
                     "status": item.status, "late": item.late, "record": rec})
    for rec in summary.records:
        if rec["type"] == "dose_confirmation" and rec["id"] not in matched:
            p = rec["current"]["payload"]
            planned = date.fromisoformat(p["planned_date"])
            rows.append({"number": p["dose_number"], "day": summary.timeline.study_day(planned), "planned": planned,
                         "status": "extra", "late": "late" in rec["labels"], "record": rec})
    return rows


def timeline_days(summary: Summary) -> list[dict[str, Any]]:
    """One row per study day that had something due (up to a week ahead) or an entry made."""
    tl, horizon = summary.timeline, summary.today + timedelta(days=UPCOMING_DAYS)
    days: dict[date, dict[str, Any]] = {}

    def day(d: date) -> dict[str, Any]:
        return days.setdefault(d, {"date": d, "day": tl.study_day(d), "due": [], "entered": []})

    for item in summary.items:
        if item.due_date <= horizon:
            day(item.due_date)["due"].append(item)
    for rec in summary.records:
        entered = to_datetime(rec["entered_at"])
        day(tl.local_date(entered))["entered"].append(rec)
    return [days[d] for d in sorted(days)]


# --- windows of days (diary section, print view) --------------------------------------------------------

WINDOW_DAYS = 28


def day_windows(days: list[int], size: int = WINDOW_DAYS) -> list[dict[str, int]]:
    """Windows of ``size`` study days that hold at least one of ``days``: days 1–28, 29–56, …;
    everything before day 1 (pre-dose baseline) belongs to the first window."""
    out: dict[int, dict[str, int]] = {}
    for d in days:
        k = max(0, (d - 1) // size)
        w = out.setdefault(k, {"index": k, "first": 1 + k * size, "last": (k + 1) * size, "low": 1 + k * size})
        w["low"] = min(w["low"], d)
    return [out[k] for k in sorted(out)]


def window_for(windows: list[dict[str, int]], wanted: str | None, default_day: int | None = None
               ) -> dict[str, int] | None:
    """The window asked for (``?window=N``, N from 0), else the one holding ``default_day`` (the
    latest diary day), else the latest one."""
    if not windows:
        return None
    by_index = {w["index"]: w for w in windows}
    fallback = windows[-1]
    if default_day is not None:
        fallback = by_index.get(max(0, (default_day - 1) // (windows[0]["last"] - windows[0]["first"] + 1)), fallback)
    try:
        return by_index.get(int(wanted or ""), fallback)
    except ValueError:
        return fallback


def heat_window(heat: dict[str, Any], window: dict[str, int] | None) -> dict[str, Any]:
    """The heat map's columns (and each row's cells) that fall in ``window``."""
    if window is None:
        return heat
    keep = [i for i, c in enumerate(heat["columns"])
            if (c["day"] < 1 and window["index"] == 0) or window["first"] <= c["day"] <= window["last"]]
    return {"columns": [heat["columns"][i] for i in keep],
            "rows": [{**r, "cells": [r["cells"][i] for i in keep]} for r in heat["rows"]],
            "extras": [{**r, "cells": [r["cells"][i] for i in keep]} for r in heat["extras"]]}


def dose_marks(doses: list[dict[str, Any]], timeline) -> dict[date, list[dict[str, Any]]]:
    """Each dose on the day it happened (given: the local day of administration; otherwise its
    planned day), with a state word key and icon, for the symptom time axis."""
    out: dict[date, list[dict[str, Any]]] = {}
    for d in doses:
        p = d["record"]["current"]["payload"] if d["record"] else None
        if p and p.get("given") and p.get("administered_at"):
            day = timeline.local_date(to_datetime(p["administered_at"]))
            state, icon = "given", "✓"
        elif p and p.get("given") is False:
            day, state, icon = d["planned"], "not_given", "✗"
        elif d["status"] in ("missed", "late"):
            day, state, icon = d["planned"], "unconfirmed", "?"
        else:
            day, state, icon = d["planned"], "planned", "·"
        out.setdefault(day, []).append({"number": d["number"], "state": state, "icon": icon,
                                        "record_id": d["record"]["id"] if d["record"] else None})
    return out


def symptom_totals(heat: dict[str, Any]) -> list[int | None]:
    """Per heat-map column, the sum of the symptom grades (None where no diary was made)."""
    totals: list[int | None] = []
    for i, c in enumerate(heat["columns"]):
        if c["record"] is None:
            totals.append(None)
            continue
        totals.append(sum(r["cells"][i] for r in heat["rows"] if isinstance(r["cells"][i], int)))
    return totals


def timeline_window(days: list[dict[str, Any]], window: dict[str, int] | None) -> list[dict[str, Any]]:
    if window is None:
        return days
    return [d for d in days if (d["day"] < 1 and window["index"] == 0) or window["first"] <= d["day"] <= window["last"]]


# --- pages of records ------------------------------------------------------------------------------------

RECORDS_PER_PAGE = 20
RECORD_TYPES = ("alsfrs_r", "nasal_symptoms", "dose_confirmation")


def page_of(items: list[Any], page: str | None, per_page: int) -> dict[str, Any]:
    """One page of ``items`` (``?page=N`` from 1, clamped) with what a pager needs."""
    pages = max(1, -(-len(items) // per_page))
    try:
        n = min(max(1, int(page or 1)), pages)
    except ValueError:
        n = 1
    return {"items": items[(n - 1) * per_page:n * per_page], "page": n, "pages": pages, "total": len(items),
            "first": (n - 1) * per_page + 1 if items else 0, "last": min(n * per_page, len(items))}
