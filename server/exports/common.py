"""What every export format shares: one catalogue of fields per record type, and value helpers.

The CSV columns, the data dictionary, the ODM ItemDefs/CodeLists and the SDTM test codes are all built
from :func:`fields_for`, so a field's name, label (English and Simplified Chinese), type and codes are
written down once. Labels and codes come from the versioned instrument files (``shared/instruments``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from server.exports.dataset import current_version, participant_timeline, parse_time
from shared.csv_safe import defuse
from shared.instruments import load_instrument
from shared.schedule import Timeline
from shared.scoring import score_alsfrs_r, tnss
from shared.vocab import (
    ADMINISTERED_BY, ALSFRS_ALL_KEYS, LOSS_REASONS, MISSED_REASONS, NASAL_SYMPTOMS, RECORD_TYPES, RESPONDENTS,
    VOLUMES,
)

Text = dict[str, str]   # {"en": ..., "zh-CN": ...}
Codes = tuple[tuple[str, Text], ...]


@dataclass(frozen=True)
class Field:
    """One exported variable of a record type."""

    name: str                    # column name; lower_snake
    label: Text
    dtype: str                   # integer | text | boolean | date | datetime
    codes: Codes = ()
    path: str | None = None      # payload path it reads (None: envelope metadata or derived)
    derivation: str = ""         # how a derived value is computed (empty: collected)
    codelist: str = ""           # a shared code-list name, e.g. "nasal_grade"

    @property
    def derived(self) -> bool:
        return bool(self.derivation)


def _txt(en: str, zh: str) -> Text:
    return {"en": en, "zh-CN": zh}


def _codes(pairs: Iterable[tuple[Any, Text]]) -> Codes:
    return tuple((str(code), dict(text)) for code, text in pairs)


# --- record metadata common to every type --------------------------------------------------------------

RESPONDENT_TEXT = {
    "participant": _txt("Participant", "受试者本人"),
    "caregiver": _txt("Caregiver", "照护者"),
    "participant_assisted": _txt("Participant, with help", "受试者在他人帮助下"),
}
ORIGINATOR_TEXT = {"device": _txt("Device of the participant or caregiver", "受试者或照护者的设备"),
                   "staff": _txt("Site staff member", "研究中心工作人员")}
YN = _codes([("Y", _txt("Yes", "是")), ("N", _txt("No", "否"))])

META_FIELDS: tuple[Field, ...] = (
    Field("record_id", _txt("Record id (UUID made on the device)", "记录编号（设备生成的 UUID）"), "text"),
    Field("subject", _txt("Study subject id", "受试者编号"), "text"),
    Field("site", _txt("Site code", "研究中心代码"), "text"),
    Field("study_day", _txt("Study day of the event (day 1 = dose 1; no day 0)", "事件所在研究日（第 1 天 = 首次用药；无第 0 天）"),
          "integer", derivation="local date of event_time (diary: its date; missed dose: planned date) in the "
                                "participant's zone, counted from the date of dose 1 as given (else as planned)"),
    Field("respondent", _txt("Who answered (the person's own statement)", "回答者（本人填写）"), "text",
          _codes((r, RESPONDENT_TEXT[r]) for r in RESPONDENTS)),
    Field("originator_kind", _txt("Data originator: device or staff", "数据来源：设备或工作人员"), "text",
          _codes(ORIGINATOR_TEXT.items())),
    Field("originator_id", _txt("Data originator id (device id or staff account)", "数据来源编号（设备或工作人员账号）"), "text"),
    Field("originator_role", _txt("Role of the originator", "数据来源角色"), "text"),
    Field("instrument_version", _txt("Wording and language version shown", "所示文字及语言版本"), "text"),
    Field("draft_wording", _txt("Draft wording (not yet sponsor-approved)", "草稿文字（尚未经申办方批准）"), "text", YN,
          derivation="Y when instrument_version ends in draft-N"),
    Field("schema_version", _txt("Payload schema version", "数据结构版本"), "integer"),
    Field("event_time", _txt("Event time, as sent by the device (with UTC offset)", "事件时间（设备发送，含时区偏移）"), "datetime"),
    Field("entered_at", _txt("Entry time on the device when Submit was pressed", "设备上按下提交的时间"), "datetime"),
    Field("received_at", _txt("Server receipt time (UTC)", "服务器接收时间（UTC）"), "datetime"),
    Field("server_seq", _txt("Server receipt sequence number", "服务器接收序号"), "integer"),
    Field("sha256", _txt("SHA-256 of the record as first received", "首次接收时记录的 SHA-256"), "text"),
    Field("version", _txt("Current version number (1 = as entered)", "当前版本号（1 = 原始录入）"), "integer"),
    Field("corrected", _txt("Corrected after submission", "提交后是否被更正"), "text", YN, derivation="Y when version > 1"),
    Field("last_changed_at", _txt("Time of the current version (UTC)", "当前版本时间（UTC）"), "datetime"),
    Field("labels", _txt("Review labels (late, clock drift, staff-entered …), separated by ;", "审核标签（迟录、时钟偏差、工作人员录入等），以 ; 分隔"), "text"),
)


# --- per-type fields from the instrument files ----------------------------------------------------------

@lru_cache(maxsize=1)
def alsfrs_fields() -> tuple[Field, ...]:
    inst = load_instrument("alsfrs_r").content
    items = {i["id"]: i for i in inst["items"]}
    out = [Field("gastrostomy", _txt("Has a feeding tube through the abdomen (selects item 5b)",
                                     "腹部有喂食管（选择第 5b 项）"), "boolean", path="gastrostomy"),
           Field("scale", _txt("Item 5 version scored: 5a (no gastrostomy) or 5b", "第 5 项所用版本：5a（无胃造瘘）或 5b"),
                 "text", _codes([("5a", _txt("5a", "5a")), ("5b", _txt("5b", "5b"))]),
                 derivation="5b when item 5b is scored, else 5a")]
    for key in ALSFRS_ALL_KEYS:
        it = items[key]
        out.append(Field(
            f"item_{key}", _txt(f"ALSFRS-R item {key}: {it['title']['en']}", f"ALSFRS-R 第 {key} 项：{it['title']['zh-CN']}"),
            "integer", _codes((o["value"], o["text"]) for o in it["options"]), path=f"items.{key}"))
    domains = (("bulbar", "bulbar (items 1–3)", "延髓功能（第 1–3 项）"),
               ("fine_motor", "fine motor (items 4–6)", "精细运动（第 4–6 项）"),
               ("gross_motor", "gross motor (items 7–9)", "粗大运动（第 7–9 项）"),
               ("respiratory", "respiratory (items 10–12)", "呼吸功能（第 10–12 项）"))
    for name, en, zh in domains:
        out.append(Field(name, _txt(f"ALSFRS-R domain score, {en}, 0–12", f"ALSFRS-R 分域得分，{zh}，0–12"), "integer",
                         derivation="sum of the domain's three items (item 5a or 5b for fine motor)"))
    out.append(Field("total", _txt("ALSFRS-R total, 0–48 (higher = better)", "ALSFRS-R 总分，0–48（越高越好）"), "integer",
                     derivation="sum of the twelve scored items"))
    out.append(Field("item_respondent", _txt("Who answered each item, where recorded (item=respondent;…)",
                                             "各条目回答者（如有记录，格式：条目=回答者;…）"), "text", path="item_respondent"))
    return tuple(out)


@lru_cache(maxsize=1)
def nasal_fields() -> tuple[Field, ...]:
    inst = load_instrument("nasal_symptoms").content
    grades = _codes((g["value"], {k: f"{g['label'][k]} – {g['text'][k]}" for k in ("en", "zh-CN")})
                    for g in inst["grades"])
    names = {s["name"]: s for s in inst["symptoms"]}
    q = inst["questions"]
    out = [Field("date", _txt("Diary date (the day described)", "日记日期（所描述的那一天）"), "date", path="date")]
    for name in NASAL_SYMPTOMS:
        s = names[name]
        note = " (empty: no dose that day)" if name == "cough_choking_dosing" else ""
        note_zh = "（空白：当天未用药）" if name == "cough_choking_dosing" else ""
        out.append(Field(name, _txt(f"{s['title']['en']}, 0–3{note}", f"{s['title']['zh-CN']}，0–3{note_zh}"), "integer",
                         grades, path=f"symptoms.{name}", codelist="nasal_grade"))
    out += [
        Field("tnss", _txt("Total Nasal Symptom Score, 0–12 (runny nose + blocked nose + itchy nose + sneezing)",
                           "鼻部症状总评分 TNSS，0–12（流鼻涕 + 鼻塞 + 鼻痒 + 打喷嚏）"), "integer",
              derivation="rhinorrhea + congestion + itching + sneezing"),
        Field("epistaxis_needed_help", dict(q["epistaxis_needed_help"]), "boolean", path="epistaxis_needed_help"),
        Field("sought_medical_care", dict(q["sought_medical_care"]), "boolean", path="sought_medical_care"),
        Field("notes", _txt("Free-text notes from the person", "本人填写的备注"), "text", path="notes"),
    ]
    return tuple(out)


@lru_cache(maxsize=1)
def dose_fields() -> tuple[Field, ...]:
    inst = load_instrument("dose_confirmation").content
    f = inst["fields"]
    by = _codes((k, inst["administered_by"][k]) for k in ADMINISTERED_BY)
    vol = _codes((v, f[f"volume_{v}"]) for v in VOLUMES)
    loss = _codes((k, inst["loss"][k]) for k in LOSS_REASONS)
    missed = _codes((k, inst["missed_reasons"][k]) for k in MISSED_REASONS)
    out = [
        Field("dose_number", _txt("Dose number (1 = first dose)", "用药次数（1 = 首次）"), "integer", path="dose_number"),
        Field("planned_date", dict(f["planned_date"]), "date", path="planned_date"),
        Field("given", _txt("Dose given (at least one nostril)", "已用药（至少一侧鼻孔）"), "boolean", path="given"),
        Field("occurred", _txt("Dose occurred (EC ECOCCUR): Y given, N not given", "是否用药（EC ECOCCUR）：Y 已用，N 未用"),
              "text", YN, derivation="Y when given, else N (a missed dose is never a zero volume)"),
        Field("administered_at", _txt("Time the dose was given (device clock, with UTC offset)", "用药时间（设备时钟，含时区偏移）"),
              "datetime", path="administered_at"),
        Field("administered_by", dict(f["administered_by"]), "text", by, path="administered_by"),
    ]
    for side in ("left", "right"):
        side_txt = f[side]
        out += [
            Field(f"{side}_given", _txt(f"{side_txt['en']}: drops given", f"{side_txt['zh-CN']}：是否滴药"), "boolean",
                  path=f"nostrils.{side}.given"),
            Field(f"{side}_volume", _txt(f"{side_txt['en']}: amount given (full = 1 mL)", f"{side_txt['zh-CN']}：滴药量（全部 = 1 毫升）"),
                  "text", vol, path=f"nostrils.{side}.volume"),
            Field(f"{side}_retained", _txt(f"{side_txt['en']}: dose stayed in", f"{side_txt['zh-CN']}：药液是否留住"), "boolean",
                  path=f"nostrils.{side}.retained"),
        ]
    out += [
        Field("laterality", _txt("Nostrils given (EC ECLAT): LEFT, RIGHT or BILATERAL", "用药鼻孔（EC ECLAT）：LEFT、RIGHT 或 BILATERAL"),
              "text", _codes([("LEFT", _txt("Left", "左")), ("RIGHT", _txt("Right", "右")),
                              ("BILATERAL", _txt("Both", "双侧"))]), derivation="from left_given and right_given"),
        Field("loss", _txt("How the dose was lost, separated by ;", "药液流失方式，以 ; 分隔"), "text", loss, path="loss"),
        Field("missed_reason", dict(f["missed_reason"]), "text", missed, path="missed_reason"),
        Field("missed_reason_text", _txt("Reason not given, described", "未用药原因说明"), "text", path="missed_reason_text"),
        Field("kit_number", _txt("Kit number on the box (masked identifier)", "药盒编号（盲态编号）"), "text", path="kit_number"),
        Field("concomitant_nasal_products", _txt("Other nose sprays or drops used", "使用的其他鼻喷剂或滴鼻剂"), "text",
              path="concomitant_nasal_products"),
        Field("notes", _txt("Free-text notes", "备注"), "text", path="notes"),
    ]
    return tuple(out)


def fields_for(record_type: str) -> tuple[Field, ...]:
    return {"alsfrs_r": alsfrs_fields, "nasal_symptoms": nasal_fields, "dose_confirmation": dose_fields}[record_type]()


FORM_TITLES: dict[str, Text] = {
    "alsfrs_r": _txt("ALSFRS-R self-report", "ALSFRS-R 自评"),
    "nasal_symptoms": _txt("Nasal symptom diary", "鼻部症状日记"),
    "dose_confirmation": _txt("Dose confirmation", "用药确认"),
}
assert set(FORM_TITLES) == set(RECORD_TYPES)


# --- values ---------------------------------------------------------------------------------------------

def _get(payload: Mapping[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not (type(node) is dict or isinstance(node, Mapping)) or part not in node:  # dict first: fast
            return None
        node = node[part]
    return node


def payload_values(record_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Every type field's value (collected and derived) for one payload; None where absent."""
    out: dict[str, Any] = {f.name: _get(payload, f.path) for f in fields_for(record_type) if f.path}
    if record_type == "alsfrs_r":
        score = score_alsfrs_r(payload["items"])
        out.update(score.as_dict())
        who = payload.get("item_respondent") or {}
        out["item_respondent"] = ";".join(f"{k}={who[k]}" for k in ALSFRS_ALL_KEYS if k in who) or None
    elif record_type == "nasal_symptoms":
        out["tnss"] = tnss(payload["symptoms"])
    elif record_type == "dose_confirmation":
        out["occurred"] = "Y" if payload["given"] else "N"
        sides = [s.upper() for s in ("left", "right") if payload["nostrils"][s]["given"]]
        out["laterality"] = "BILATERAL" if len(sides) == 2 else (sides[0] if sides else None)
        out["loss"] = list(payload.get("loss") or []) or None
    return out


def study_day(record: Mapping[str, Any], timeline: Timeline) -> int:
    payload = current_version(record)["payload"]
    if record["type"] == "nasal_symptoms":
        d = date.fromisoformat(payload["date"])
    elif record["type"] == "dose_confirmation" and not payload["given"]:
        d = date.fromisoformat(payload["planned_date"])
    else:
        d = timeline.local_date(parse_time(record["event_time"]))
    return timeline.study_day(d)


def is_draft(instrument_version: str) -> bool:
    return bool(re.search(r"draft-\d+$", instrument_version))


def meta_values(record: Mapping[str, Any], timeline: Timeline, site: str) -> dict[str, Any]:
    cur = current_version(record)
    o = record["originator"]
    return {
        "record_id": record["id"], "subject": record["participant"], "site": site,
        "study_day": study_day(record, timeline), "respondent": record["respondent"],
        "originator_kind": o["kind"], "originator_id": o["id"], "originator_role": o.get("role"),
        "instrument_version": record["instrument_version"],
        "draft_wording": "Y" if is_draft(record["instrument_version"]) else "N",
        "schema_version": record["schema_version"], "event_time": record["event_time"],
        "entered_at": record["entered_at"], "received_at": record["received_at"],
        "server_seq": record["server_seq"], "sha256": record["sha256"], "version": cur["version"],
        "corrected": "Y" if cur["version"] > 1 else "N", "last_changed_at": cur["created_at"],
        "labels": list(record.get("labels") or []) or None,
    }


def timelines(dataset: Mapping[str, Any]) -> dict[str, Timeline]:
    return {p["subject"]: participant_timeline(p, dataset["records"]) for p in dataset["participants"]}


def site_of(dataset: Mapping[str, Any]) -> dict[str, str]:
    return {p["subject"]: p.get("site") or dataset["study"]["site"]["code"] for p in dataset["participants"]}


def sorted_records(dataset: Mapping[str, Any], record_type: str | None = None) -> list[Mapping[str, Any]]:
    recs = [r for r in dataset["records"] if record_type is None or r["type"] == record_type]
    return sorted(recs, key=lambda r: (r["participant"], parse_time(r["event_time"]), r["server_seq"], r["id"]))


# --- formatting and files -------------------------------------------------------------------------------

def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def utc_iso(value: str | datetime) -> str:
    """A timestamp as UTC ``YYYY-MM-DDTHH:MM:SSZ`` (fractions dropped)."""
    moment = parse_time(value).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_cell(value: Any) -> str:
    """:func:`csv_value` for a spreadsheet CSV cell: text that a spreadsheet would run as a formula is
    prefixed with an apostrophe (``'=HYPERLINK(…)``, :func:`shared.csv_safe.defuse`). Numbers are never
    prefixed; the verbatim text stays in the analysis files (SDTM, ODM, FHIR) and in the audit trail."""
    text = csv_value(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return text
    return defuse(text)


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> Path:
    """A spreadsheet CSV: UTF-8 with a byte-order mark (spreadsheets then show Chinese correctly), CRLF
    line ends, every cell quoted and defused by :func:`csv_cell` (OWASP CSV injection). Rows are
    written as they come (a generator keeps memory flat)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
        writer.writerow([csv_cell(h) for h in header])
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
    return path


class AnalysisCsv:
    """:func:`write_analysis_csv` as an open file that takes rows as they come."""

    def __init__(self, path: Path, header: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fh = path.open("w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.fh, lineterminator="\r\n")
        self.writer.writerow(header)

    def rows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writer.writerow([csv_value(v) for v in row])

    def close(self) -> Path:
        self.fh.close()
        return self.path


def write_analysis_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> Path:
    """An analysis CSV (SDTM): values verbatim, never an apostrophe added (UTF-8 with BOM, CRLF)."""
    out = AnalysisCsv(path, header)
    out.rows(rows)
    return out.close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def codes_text(codes: Codes, lang: str) -> str:
    return " | ".join(f"{code}={text.get(lang) or text['en']}" for code, text in codes)

