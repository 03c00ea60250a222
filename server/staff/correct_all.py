"""Correct any field of a record (issue 10 §4): every field of the record type on one form, with its
current value, including fields the record does not hold yet (a missed dose that was in fact given:
time, nostrils, volumes) and item 5a/5b together with the gastrostomy answer.

Only the fields whose value changed become the correction's ``updates``; a blank item or optional
field that the record holds is removed (:data:`server.store.versions.REMOVE`). The whole corrected
record is validated by the same shared schema as an original (``shared.schemas``), stored as a new
version with its reason; an invalid one comes back with the field and the rule named next to the input.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import redirect, request, url_for

from server.auth import staff_required
from server.staff import bp, protocol, web
from server.store.versions import REMOVE
from shared.errors import EproError, FieldError
from shared.instruments import load_instrument
from shared.messages import has, t
from shared.vocab import (
    ADMINISTERED_BY, ALSFRS_ALL_KEYS, LOSS_REASONS, MISSED_REASONS, NASAL_SYMPTOMS, NULLABLE_SYMPTOMS, RESPONDENTS,
    VOLUMES,
)

_MISSING = object()


def _spec(path: str, kind: str, *, options: tuple = (), optional: bool = False) -> dict[str, Any]:
    """``kind``: int | bool | choice | text | list; ``optional``: blank removes it (or is null)."""
    return {"path": path, "kind": kind, "options": tuple(options), "optional": optional}


def field_specs(rtype: str) -> list[dict[str, Any]]:
    """Every field a record of ``rtype`` can hold, in form order."""
    if rtype == "alsfrs_r":
        return [_spec("gastrostomy", "bool"),
                *(_spec(f"items.{k}", "int", options=tuple(range(5)), optional=k in ("5a", "5b"))
                  for k in ALSFRS_ALL_KEYS),
                *(_spec(f"item_respondent.{k}", "choice", options=RESPONDENTS, optional=True)
                  for k in ALSFRS_ALL_KEYS)]
    if rtype == "nasal_symptoms":
        return [_spec("date", "text"),
                *(_spec(f"symptoms.{n}", "int", options=tuple(range(4)), optional=n in NULLABLE_SYMPTOMS)
                  for n in NASAL_SYMPTOMS),
                _spec("epistaxis_needed_help", "bool"), _spec("sought_medical_care", "bool"),
                _spec("notes", "text", optional=True)]
    sides = [s for side in ("left", "right") for s in (
        _spec(f"nostrils.{side}.given", "bool"),
        _spec(f"nostrils.{side}.volume", "choice", options=VOLUMES, optional=True),
        _spec(f"nostrils.{side}.retained", "bool", optional=True))]
    return [_spec("dose_number", "int"), _spec("planned_date", "text"), _spec("given", "bool"),
            _spec("administered_at", "text", optional=True),
            _spec("administered_by", "choice", options=ADMINISTERED_BY), *sides,
            _spec("loss", "list", options=LOSS_REASONS),
            _spec("missed_reason", "choice", options=MISSED_REASONS, optional=True),
            _spec("missed_reason_text", "text", optional=True), _spec("kit_number", "text"),
            _spec("concomitant_nasal_products", "text", optional=True), _spec("notes", "text", optional=True)]


def _get(payload: Mapping[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _input_name(path: str) -> str:
    return "v_" + path.replace(".", "__")


def as_text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _parse(spec: dict[str, Any], raw: str) -> Any:
    raw, name = (raw or "").strip(), _input_name(spec["path"])
    if raw == "":
        return None
    if spec["kind"] == "int":
        try:
            return int(raw)
        except ValueError:
            raise EproError("validation.invalid", 400, errors=[
                FieldError(name, "type.integer", "Enter a whole number.")]) from None
    if spec["kind"] == "bool":
        if raw in ("yes", "no"):
            return raw == "yes"
        raise EproError("validation.invalid", 400, errors=[FieldError(name, "type.boolean", "Choose yes or no.")])
    if spec["kind"] == "list":
        return [x.strip() for x in raw.split(",") if x.strip()]
    return raw


def updates_from_form(rtype: str, payload: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The changed fields as correction ``updates`` (blank optional field held by the record → REMOVE)."""
    out: dict[str, Any] = {}
    for spec in field_specs(rtype):
        name = _input_name(spec["path"])
        if name not in form:
            continue
        old = _get(payload, spec["path"])
        if (form.get(name) or "").strip() == as_text(old):
            continue
        new = _parse(spec, form.get(name, ""))
        if new is None and spec["kind"] == "list":
            new = []
        if new is None:
            if old is _MISSING:
                continue
            nullable = spec["path"] in ("administered_at", "missed_reason") or spec["path"].endswith(
                (".volume", ".retained")) or spec["path"].removeprefix("symptoms.") in NULLABLE_SYMPTOMS
            out[spec["path"]] = None if nullable else (REMOVE if spec["optional"] else None)
        else:
            out[spec["path"]] = new
    return out


def _label(rtype: str, path: str, lang: str) -> str:
    from server.staff.detail import field_label
    head = path.split(".")[0]
    if rtype == "dose_confirmation" and path.startswith("nostrils."):
        side, leaf = path.split(".")[1:]
        fields = load_instrument("dose_confirmation").content["fields"]
        side_text = (fields.get(side) or {}).get(lang) or side
        key = f"safety_rules.correct.field.{leaf}"
        return f"{side_text} · {t(key, lang) if has(key) else leaf}"
    if head in ("items", "symptoms"):
        return field_label("payload." + path, rtype, lang)
    if head == "item_respondent":
        item = field_label("payload.items." + path.split(".")[1], rtype, lang)
        return t("safety_rules.correct.who_answered", lang, item=item)
    key = f"review.field.{path}"
    return t(key, lang) if has(key) else field_label("payload." + path, rtype, lang)


def _option_text(path: str, value: Any, lang: str) -> str:
    inst = load_instrument("dose_confirmation").content
    leaf = path.rsplit(".", 1)[-1]
    words = None
    if path.startswith("item_respondent."):
        words = t(f"staff.respondent.{value}", lang)
    elif leaf == "volume":
        words = t(f"staff.dose.volume_{value}", lang)
    elif leaf == "administered_by":
        words = (inst["administered_by"].get(value) or {}).get(lang)
    elif leaf == "missed_reason":
        words = (inst["missed_reasons"].get(value) or {}).get(lang)
    return f"{words} ({value})" if words else str(value)


def form_rows(rec: Mapping[str, Any], lang: str, values: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    payload = rec["current"]["payload"]
    rows = []
    for spec in field_specs(rec["type"]):
        name = _input_name(spec["path"])
        current = _get(payload, spec["path"])
        shown = as_text(current)
        if spec["kind"] == "bool" and shown:
            shown = t(f"staff.{shown}", lang)
        elif spec["kind"] == "choice" and shown:
            shown = _option_text(spec["path"], shown, lang)
        rows.append({**spec, "name": name, "label": _label(rec["type"], spec["path"], lang), "current_text": shown,
                     "option_texts": [_option_text(spec["path"], o, lang) for o in spec["options"]],
                     "current": as_text(current), "held": current is not _MISSING,
                     "value": (values or {}).get(name, as_text(current))})
    return rows


def _record(record_id: str):
    from server.staff.review import _record_and_participant
    return _record_and_participant(record_id, "correct")


@bp.get("/records/<record_id>/correct/all")
@staff_required("correct")
def correct_all_form(record_id: str, values: dict | None = None, errors: dict | None = None):
    from server.staff.review import _names
    rec, p = _record(record_id)
    return web.render("staff/safety/correct_all.html", p=p, rec=rec, rows=form_rows(rec, web.lang(), values),
                      values=values or {"expected_version": rec["version"]}, errors=errors or {},
                      names=_names(), status=400 if errors else 200)


@bp.post("/records/<record_id>/correct/all")
@staff_required("correct")
def correct_all_submit(record_id: str):
    from server.staff.review import _errors
    from server.store.corrections import request_correction

    rec, p = _record(record_id)
    web.check_csrf()
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    try:
        updates = updates_from_form(rec["type"], rec["current"]["payload"], form)
        try:
            expected = int(form.get("expected_version", ""))
        except ValueError:
            expected = None
        out = request_correction(web.get_db(), record_id, updates, reason=form.get("reason", ""),
                                 requested_by=form.get("requested_by", ""), actor=web_actor(),
                                 protocol=protocol(), expected_version=expected, site_id=p["site_id"])
    except EproError as err:
        if err.status not in (400, 409):
            raise
        fields = {f"payload.{s['path']}": _input_name(s["path"]) for s in field_specs(rec["type"])}
        errors = _errors(err, fields)
        for e in err.errors:  # name the field and the rule next to the input
            name = fields.get(e.field)
            if name:
                errors[name] = [f"{x} ({e.field} · {e.rule})" for x in errors.get(name, [])]
        return correct_all_form(record_id, form, errors)
    n = len(out["invalidated_signoffs"])
    web.notify("review.correct.done_invalidated" if n else "review.correct.done", version=out["version"], n=n)
    return redirect(url_for("staff.record", record_id=record_id), 303)


def web_actor():
    from server.store.audit import Actor
    return Actor.staff(web.signed_in()["id"])
