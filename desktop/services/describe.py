"""An entry's answers in the person's words (review pages, History), from the instrument files."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from shared.instruments import load_instrument
from shared.vocab import NASAL_SYMPTOMS, NOSTRILS

from desktop.services.fmt import long_date, long_datetime
from desktop.services.i18n import tr as t


def _w(obj: dict[str, str] | None, lang: str) -> str:
    if not obj:
        return ""
    return obj.get(lang) or obj.get("en", "")


def alsfrs_item(key: str) -> dict[str, Any]:
    return next(i for i in load_instrument("alsfrs_r").content["items"] if i["id"] == key)


def alsfrs_option_text(key: str, score: int, lang: str) -> str:
    opt = next(o for o in alsfrs_item(key)["options"] if o["value"] == score)
    return f"{score} — {_w(opt['text'], lang)}"


def nasal_symptom(name: str) -> dict[str, Any]:
    return next(s for s in load_instrument("nasal_symptoms").content["symptoms"] if s["name"] == name)


def nasal_grade_text(grade: int, lang: str) -> str:
    g = next(x for x in load_instrument("nasal_symptoms").content["grades"] if x["value"] == grade)
    return f"{grade} {_w(g['label'], lang)} — {_w(g['text'], lang)}"


def yes_no(value: Any, lang: str) -> str:
    return t("answer.yes", lang) if value else t("answer.no", lang)


def respondent_text(who: str | None, lang: str) -> str:
    return t(f"respondent.{who}", lang) if who else t("answer.missing", lang)


def describe(rtype: str, payload: dict[str, Any], respondent: str | None, lang: str) -> list[tuple[str, str]]:
    """(question, answer) rows; unanswered questions say so in words."""
    rows: list[tuple[str, str]] = [(t("review.respondent", lang), respondent_text(respondent, lang))]
    missing = t("answer.missing", lang)
    if rtype == "alsfrs_r":
        q = load_instrument("alsfrs_r").content["gastrostomy_question"]
        g = payload.get("gastrostomy")
        rows.append((_w(q["text"], lang), missing if g is None else _w(q["yes" if g else "no"], lang)))
        who = payload.get("item_respondent") or {}
        for key in ("1", "2", "3", "4", "5b" if g else "5a", "6", "7", "8", "9", "10", "11", "12"):
            item = alsfrs_item(key)
            score = (payload.get("items") or {}).get(key)
            text = missing if score is None else alsfrs_option_text(key, score, lang)
            if key in who:
                text += " · " + t("review.answered_by", lang, who=respondent_text(who[key], lang))
            rows.append((f"{key}. {_w(item['title'], lang)}", text))
    elif rtype == "nasal_symptoms":
        if payload.get("date"):
            rows.append((t("review.diary_date", lang), long_date(date.fromisoformat(payload["date"]), lang)))
        for name in NASAL_SYMPTOMS:
            grade = (payload.get("symptoms") or {}).get(name, "absent")
            if grade is None and name == "cough_choking_dosing":
                continue
            text = missing if grade in (None, "absent") else nasal_grade_text(grade, lang)
            rows.append((_w(nasal_symptom(name)["title"], lang), text))
        qs = load_instrument("nasal_symptoms").content["questions"]
        if ((payload.get("symptoms") or {}).get("epistaxis") or 0) >= 1:
            rows.append((_w(qs["epistaxis_needed_help"], lang), yes_no(payload.get("epistaxis_needed_help"), lang)))
        smc = payload.get("sought_medical_care")
        rows.append((_w(qs["sought_medical_care"], lang), missing if smc is None else yes_no(smc, lang)))
        if payload.get("notes"):
            rows.append((_w(qs["notes"], lang), payload["notes"]))
    elif rtype == "dose_confirmation":
        rows.extend(_dose_rows(payload, lang))
    return rows


def _dose_rows(p: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    c = load_instrument("dose_confirmation").content
    f = c["fields"]
    missing = t("answer.missing", lang)
    rows = []
    if p.get("planned_date"):
        rows.append((_w(f["planned_date"], lang), long_date(date.fromisoformat(p["planned_date"]), lang)))
    given = p.get("given")
    rows.append((_w(f["given"], lang), missing if given is None else _w(f["given_yes" if given else "given_no"], lang)))
    if given:
        at = p.get("administered_at")
        rows.append((_w(f["administered_at"], lang),
                     long_datetime(datetime.fromisoformat(at), lang) if at else missing))
        by = p.get("administered_by")
        rows.append((_w(f["administered_by"], lang), _w(c["administered_by"].get(by), lang) or missing))
        for side in NOSTRILS:
            n = p["nostrils"][side]
            if not n["given"]:
                rows.append((_w(f[side], lang), t("dose.nostril_not_given", lang)))
                continue
            vol = {"full": _w(f["volume_full"], lang), "partial": _w(f["volume_partial"], lang)}.get(n["volume"], missing)
            kept = {True: _w(f["retained_yes"], lang), False: _w(f["retained_no"], lang)}.get(n["retained"], missing)
            rows.append((_w(f[side], lang), f"{vol} · {kept}"))
        if p.get("loss"):
            rows.append((_w(f["loss"], lang), ", ".join(_w(c["loss"][x], lang) for x in p["loss"])))
    if p.get("missed_reason") is not None or (given is False):
        reason = p.get("missed_reason")
        text = _w(c["missed_reasons"].get(reason), lang) if reason else missing
        if reason == "other" and p.get("missed_reason_text"):
            text += f": {p['missed_reason_text']}"
        rows.append((_w(f["missed_reason"], lang), text))
    rows.append((_w(f["kit_number"], lang), p.get("kit_number") or "—"))
    for key in ("concomitant_nasal_products", "notes"):
        if p.get(key):
            rows.append((_w(f[key], lang), p[key]))
    return rows


