"""SDTM-style QS, EC and SUPPEC CSV files, with the sponsor-defined codes documented in ``sdtm_codes.csv``.

**QS is sponsor-defined.** CDISC has no ALSFRS-R controlled terminology (no QSCAT term, no test codes,
SDTM CT 2025-03-25; clinical.md §0, §2.1), nor one for this nasal diary, so ``QSCAT`` and ``QSTESTCD``
here are our own and are listed, as such, in ``sdtm_codes.csv``; remap if CDISC publishes terms.

- ALSFRS-R: ``QSCAT = "ALSFRS-R"``; ``ALSF0101``…``ALSF0104``, ``ALSF015A``/``ALSF015B``, ``ALSF0106``…``ALSF0112``
  for the items, ``ALSF01GS`` for the gastrostomy answer, derived ``ALSF01BU``/``FM``/``GM``/``RE`` (domains)
  and ``ALSF01TS`` (total, ``QSDRVFL = "Y"``). Of 5a/5b only the scored one is written (the other is
  omitted, not "NOT DONE"). ``QSEVAL`` is per item when the item's respondent was recorded.
- Nasal diary: ``QSCAT = "NASAL SYMPTOM DIARY"``; ``NSD0101``…``NSD0114`` (the 14 symptoms, 0–3),
  ``NSD01TN`` (TNSS, derived), ``NSD01EH`` (nosebleed needed help), ``NSD01MC`` (sought medical care).
  ``cough_choking_dosing`` left empty on a day without a dose is ``QSSTAT = "NOT DONE"``,
  ``QSREASND = "NO DOSE THAT DAY"``.
- ``QSORRES`` is the English anchor text of the answer, ``QSSTRESC``/``QSSTRESN`` the score;
  ``QSGRPID`` is the record id (one response), ``QSSPID`` the source variable; ``QSDTC`` is the
  participant's local time with its UTC offset (diary: its date); ``QSDY`` the study day (no day 0);
  VISIT/VISITNUM from the schedule, EPOCH, QSBLFL on the last pre-dose value; SUPPQS RESPOND keeps the
  respondent as stated (SELF / CAREGIVER / SELF WITH HELP). STUDYID is the sponsor protocol id; TS
  keeps the NCT number (REGID); DFS is one row per subject with ΔFS or the reason it is blank. Every
  dataset is written as XPORT v5 (.xpt) and CSV, described by define.xml (:mod:`server.exports.xpt`).

**EC** (exposure as collected): one row per nostril per dose confirmation; ``ECTRT = "MASKED"`` (never
the product), ``ECMOOD = "PERFORMED"``, ``ECOCCUR = "N"`` for a nostril not given — never a zero dose —
with ``ECREASOC``; ``ECDOSE = 1``, ``ECDOSU = "mL"`` per nostril when the full drop was given,
``ECDOSTXT = "PARTIAL"`` otherwise; ``ECROUTE = "NASAL"``; ``ECLAT`` LEFT/RIGHT; retention, loss,
who gave it, dose number and kit number are in SUPPEC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Mapping

from server.exports.common import (
    AnalysisCsv, codes_text, fields_for, payload_values, study_day, utc_iso, write_analysis_csv,
)
from server.exports.dataset import current_version, parse_time, participant_timeline, require_valid
from server.exports.visits import epoch, local_dtc, protocol_for, record_visits, study_ids
from server.exports.xpt import DATASETS, XptWriter, columns, define_xml
from shared.schedule import Timeline
from shared.scoring import delta_fs
from shared.instruments import load_instrument
from shared.vocab import NASAL_SYMPTOMS

CT_NOTE = "Sponsor-defined: CDISC SDTM CT (2025-03-25) has no term for this instrument (clinical.md §0, §2.1)"
QSCAT = {"alsfrs_r": "ALSFRS-R", "nasal_symptoms": "NASAL SYMPTOM DIARY"}
EVAL = {"participant": "STUDY SUBJECT", "caregiver": "CAREGIVER", "participant_assisted": "STUDY SUBJECT"}
#: who gave the dose, in CDISC EVAL terms (C78735)
ADMINISTERED_BY_EVAL = {"participant": "STUDY SUBJECT", "caregiver": "CAREGIVER",
                        "site_staff": "HEALTH CARE PROFESSIONAL"}


def _alsfrs_codes() -> dict[str, str]:
    codes = {"gastrostomy": "ALSF01GS", "bulbar": "ALSF01BU", "fine_motor": "ALSF01FM",
             "gross_motor": "ALSF01GM", "respiratory": "ALSF01RE", "total": "ALSF01TS"}
    for key in ("1", "2", "3", "4", "5a", "5b", "6", "7", "8", "9", "10", "11", "12"):
        codes[f"item_{key}"] = "ALSF01" + (f"5{key[1].upper()}" if key.startswith("5") else f"{int(key):02d}")
    return codes


QS_CODES: dict[str, dict[str, str]] = {
    "alsfrs_r": _alsfrs_codes(),
    "nasal_symptoms": {**{name: f"NSD01{i:02d}" for i, name in enumerate(NASAL_SYMPTOMS, start=1)},
                       "tnss": "NSD01TN", "epistaxis_needed_help": "NSD01EH", "sought_medical_care": "NSD01MC"},
}


def qs_testcd(record_type: str, field: str) -> str | None:
    """The sponsor-defined QSTESTCD of a field, or None when the field is not a QS test."""
    return QS_CODES.get(record_type, {}).get(field)


QSTEST: dict[str, dict[str, str]] = {
    "alsfrs_r": {
        "gastrostomy": "Gastrostomy Present", "item_1": "Speech", "item_2": "Salivation", "item_3": "Swallowing",
        "item_4": "Handwriting", "item_5a": "Cutting Food (No Gastrostomy)",
        "item_5b": "Cutting Food (With Gastrostomy)", "item_6": "Dressing and Hygiene", "item_7": "Turning in Bed",
        "item_8": "Walking", "item_9": "Climbing Stairs", "item_10": "Dyspnea", "item_11": "Orthopnea",
        "item_12": "Respiratory Insufficiency", "bulbar": "Bulbar Subscore", "fine_motor": "Fine Motor Subscore",
        "gross_motor": "Gross Motor Subscore", "respiratory": "Respiratory Subscore", "total": "Total Score"},
    "nasal_symptoms": {
        "rhinorrhea": "Runny Nose", "congestion": "Blocked or Stuffy Nose", "itching": "Itchy Nose",
        "sneezing": "Sneezing", "burning_stinging": "Nasal Burning or Stinging", "epistaxis": "Nosebleed",
        "postnasal_drip_throat": "Postnasal Drip/Throat Irritation", "sinus_facial_pain": "Sinus or Facial Pain",
        "headache": "Headache", "smell_change": "Change in Smell", "taste_change": "Change in Taste",
        "cough_choking_dosing": "Cough or Choking With Dosing", "dizziness": "Dizziness",
        "allergic_signs": "Allergic Signs", "tnss": "Total Nasal Symptom Score",
        "epistaxis_needed_help": "Nosebleed Needed Help to Stop", "sought_medical_care": "Sought Medical Care"},
}


def _qstest(record_type: str, field: str) -> str:
    prefix = "ALSF01" if record_type == "alsfrs_r" else "NSD01"
    return f"{prefix}-{QSTEST[record_type][field]}"


def _anchor_text(record_type: str, field: str, value: Any) -> str:
    f = next(x for x in fields_for(record_type) if x.name == field)
    for code, text in f.codes:
        if code == str(value):
            return text["en"].split(" – ")[0] if record_type == "nasal_symptoms" else text["en"]
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


QS_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "QSSEQ", "QSGRPID", "QSSPID", "QSTESTCD", "QSTEST", "QSCAT",
              "QSORRES", "QSSTRESC", "QSSTRESN", "QSSTAT", "QSREASND", "QSBLFL", "QSDRVFL", "QSEVAL", "VISITNUM",
              "VISIT", "EPOCH", "QSDTC", "QSDY"]
EC_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "ECSEQ", "ECGRPID", "ECSPID", "ECTRT", "ECMOOD", "ECPRESP",
              "ECOCCUR", "ECREASOC", "ECDOSE", "ECDOSTXT", "ECDOSU", "ECROUTE", "ECLAT", "VISITNUM", "VISIT", "EPOCH",
              "ECSTDTC", "ECENDTC", "ECSTDY", "ECENDY"]
SUPP_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG"]
DFS_COLUMNS = ["STUDYID", "USUBJID", "SUBJID", "SITEID", "REGID", "ONSETDTC", "RFSTDTC", "BLDTC", "BLTOTAL",
               "DFS", "DFSU", "DFSREAS"]
TS_COLUMNS = ["STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM", "TSVAL"]
SUPPEC_QNAMS = {
    "ECRETAIN": "Dose Retained in Nostril",
    "ECLOSS": "How Dose Was Lost",
    "ECADMBY": "Administered By",
    "ECDOSNUM": "Dose Number",
    "ECKITNO": "Kit Number (Masked)",
    "ECREASTX": "Reason Not Given, Text",
    "RESPOND": "Respondent as Stated",
}
SUPPQS_QNAMS = {"RESPOND": "Respondent as Stated", "ASSISTED": "Answered With Help"}
#: the respondent as the person stated it (contract vocabulary → SUPPQS/SUPPEC RESPOND)
RESPOND = {"participant": "SELF", "caregiver": "CAREGIVER", "participant_assisted": "SELF WITH HELP"}
#: XPORT v5 holds at most 200 bytes in a character variable; longer QVAL text continues in QNAM1, QNAM2 …
QVAL_BYTES = 200


def _usubjid(study: str, site: str, subject: str) -> str:
    return f"{study}-{site}-{subject}"


class Subject:
    """What the SDTM rows of one participant need: ids, timeline, visits, epochs (built per participant)."""

    def __init__(self, dataset: Mapping[str, Any], participant: Mapping[str, Any],
                 records: list[Mapping[str, Any]], timeline: Timeline | None = None) -> None:
        self.protocol = protocol_for(dataset["study"]["protocol_id"])
        self.studyid, self.regid = study_ids(dataset["study"], self.protocol)
        self.participant = participant
        self.site = participant.get("site") or dataset["study"]["site"]["code"]
        self.usubjid = _usubjid(self.studyid, self.site, participant["subject"])
        self.timeline = timeline or participant_timeline(participant, records)
        self.days = {r["id"]: study_day(r, self.timeline) for r in records}
        self.visits = record_visits(self.protocol, self.timeline, records, self.days)

    def dtc(self, value: str) -> str:
        return local_dtc(value, self.timeline)

    def epoch_of(self, rec: Mapping[str, Any]) -> str:
        p = current_version(rec)["payload"]
        if rec["type"] == "dose_confirmation":
            if p.get("given") and p.get("administered_at"):
                return epoch(self.protocol, self.timeline, parse_time(p["administered_at"]))
            return epoch(self.protocol, self.timeline, date.fromisoformat(p["planned_date"]))
        if self.pre_dose(rec):
            return "SCREENING"
        return epoch(self.protocol, self.timeline, self.timeline.date_of(self.days[rec["id"]]))

    def visit_cols(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        v = self.visits[rec["id"]]
        return {"VISITNUM": v.num, "VISIT": v.name, "EPOCH": self.epoch_of(rec)}

    def pre_dose(self, rec: Mapping[str, Any]) -> bool:
        """Collected before dose 1 as given: the event and its entry both before it (a diary describing
        day 1 but filled in that evening is not pre-dose, as the schedule's matching has it)."""
        dose1 = self.timeline.dose1_administered_at
        return (dose1 is not None and parse_time(rec["event_time"]) < dose1
                and parse_time(rec["entered_at"]) < dose1)


def _sort_key(r: Mapping[str, Any]) -> tuple[Any, ...]:
    return (parse_time(r["event_time"]), r["server_seq"], r["id"])


def qs_record_rows(subj: Subject, rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The QS rows of one questionnaire record (no QSSEQ, no QSBLFL yet)."""
    rtype = rec["type"]
    fields = [f for f in fields_for(rtype) if f.name in QS_CODES[rtype]]
    payload = current_version(rec)["payload"]
    values = payload_values(rtype, payload)
    who = payload.get("item_respondent") or {}
    dtc = payload["date"] if rtype == "nasal_symptoms" else subj.dtc(rec["event_time"])
    base = {"STUDYID": subj.studyid, "DOMAIN": "QS", "USUBJID": subj.usubjid, "QSGRPID": rec["id"],
            "QSCAT": QSCAT[rtype], "QSDTC": dtc, "QSDY": subj.days[rec["id"]], **subj.visit_cols(rec)}
    rows = []
    for f in fields:
        value = values.get(f.name)
        if rtype == "alsfrs_r" and f.name in ("item_5a", "item_5b") and value is None:
            continue  # only the scored one of 5a/5b
        item_key = f.name[5:] if f.name.startswith("item_") else None
        row = {**base, "QSSPID": f.name, "QSTESTCD": QS_CODES[rtype][f.name], "QSTEST": _qstest(rtype, f.name),
               "QSEVAL": EVAL[who.get(item_key) or rec["respondent"]], "QSDRVFL": "Y" if f.derived else ""}
        if value is None:
            row.update(QSSTAT="NOT DONE", QSREASND="NO DOSE THAT DAY")
        elif isinstance(value, bool):
            row.update(QSORRES="Y" if value else "N", QSSTRESC="Y" if value else "N")
        else:
            row.update(QSORRES=_anchor_text(rtype, f.name, value) if f.codes else str(value),
                       QSSTRESC=str(value), QSSTRESN=value if isinstance(value, int) else None)
        rows.append(row)
    return rows


def _supp(subj: Subject, rdomain: str, idvar: str, idval: Any, qnam: str, label: str, qval: Any,
          origin: str = "CRF") -> list[dict[str, Any]]:
    """One supplemental qualifier; text over :data:`QVAL_BYTES` continues in QNAM1, QNAM2 …"""
    text = "" if qval is None else str(qval)
    chunks, cur = [], ""
    for ch in text:
        if len((cur + ch).encode("utf-8")) > QVAL_BYTES:
            chunks.append(cur)
            cur = ""
        cur += ch
    chunks.append(cur)
    return [{"STUDYID": subj.studyid, "RDOMAIN": rdomain, "USUBJID": subj.usubjid, "IDVAR": idvar,
             "IDVARVAL": str(idval), "QNAM": qnam if i == 0 else f"{qnam[:7]}{i}", "QLABEL": label, "QVAL": chunk,
             "QORIG": origin} for i, chunk in enumerate(chunks)]


def suppqs_record_rows(subj: Subject, rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = _supp(subj, "QS", "QSGRPID", rec["id"], "RESPOND", SUPPQS_QNAMS["RESPOND"], RESPOND[rec["respondent"]])
    if rec["respondent"] == "participant_assisted":
        rows += _supp(subj, "QS", "QSGRPID", rec["id"], "ASSISTED", SUPPQS_QNAMS["ASSISTED"], "Y")
    return rows


def ec_record_rows(subj: Subject, rec: Mapping[str, Any],
                   reasons: Mapping[str, Mapping[str, str]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(EC row, its SUPPEC qualifiers) per nostril of one dose confirmation (no ECSEQ yet)."""
    p = current_version(rec)["payload"]
    when = subj.dtc(p["administered_at"]) if p["given"] else p["planned_date"]
    day = subj.days[rec["id"]]
    out = []
    for side in ("left", "right"):
        n = p["nostrils"][side]
        row = {"STUDYID": subj.studyid, "DOMAIN": "EC", "USUBJID": subj.usubjid, "ECGRPID": rec["id"],
               "ECSPID": f"DOSE{p['dose_number']}-{side.upper()}", "ECTRT": "MASKED", "ECMOOD": "PERFORMED",
               "ECPRESP": "Y", "ECOCCUR": "Y" if n["given"] else "N", "ECROUTE": "NASAL", "ECLAT": side.upper(),
               **subj.visit_cols(rec), "ECSTDTC": when, "ECENDTC": when, "ECSTDY": day, "ECENDY": day}
        if n["given"]:
            if n["volume"] == "full":
                row.update(ECDOSE=1, ECDOSU="mL")
            else:
                row.update(ECDOSTXT="PARTIAL", ECDOSU="mL")
        else:
            row["ECREASOC"] = reasons[p["missed_reason"]]["en"].upper() if p.get("missed_reason") else ""
        quals = {"ECDOSNUM": p["dose_number"], "ECADMBY": ADMINISTERED_BY_EVAL[p["administered_by"]],
                 "ECKITNO": p["kit_number"], "RESPOND": RESPOND[rec["respondent"]]}
        if n["given"]:
            quals["ECRETAIN"] = "Y" if n["retained"] else "N"
            if n["retained"] is False and p.get("loss"):
                quals["ECLOSS"] = ";".join(x.upper() for x in p["loss"])
        elif p.get("missed_reason_text"):
            quals["ECREASTX"] = p["missed_reason_text"]
        out.append((row, quals))
    return out


def _flag_baseline(subj: Subject, recs: list[Mapping[str, Any]], rows_by_rec: dict[str, list[dict[str, Any]]]) -> None:
    """QSBLFL = Y on the last pre-dose non-missing value of each test (dose 1 as given; none before it)."""
    last: dict[str, dict[str, Any]] = {}
    for rec in recs:  # in event-time order
        if not subj.pre_dose(rec):
            continue
        for row in rows_by_rec[rec["id"]]:
            if row.get("QSSTAT") != "NOT DONE":
                last[row["QSTESTCD"]] = row
    for row in last.values():
        row["QSBLFL"] = "Y"


def subject_dfs(subj: Subject, qs_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The subject-level ΔFS row: (48 − baseline total) / months from onset to the baseline assessment."""
    p = subj.participant
    dose1 = subj.timeline.dose1_administered_at
    row: dict[str, Any] = {"STUDYID": subj.studyid, "USUBJID": subj.usubjid, "SUBJID": p["subject"],
                           "SITEID": subj.site, "REGID": subj.regid, "ONSETDTC": p.get("onset") or "",
                           "RFSTDTC": subj.dtc(dose1.isoformat()) if dose1 else "", "DFSU": "POINTS/MONTH"}
    base = [r for r in qs_rows if r["QSTESTCD"] == "ALSF01TS" and r.get("QSBLFL") == "Y"]
    if dose1 is None:
        row["DFSREAS"] = "DOSE 1 NOT CONFIRMED: NO PRE-DOSE BASELINE YET"
    elif not base:
        row["DFSREAS"] = "NO PRE-DOSE ALSFRS-R TOTAL"
    else:
        b = base[0]
        row.update(BLDTC=b["QSDTC"], BLTOTAL=b["QSSTRESN"])
        try:
            row["DFS"] = round(delta_fs(int(b["QSSTRESN"]), p["onset"], date.fromisoformat(b["QSDTC"][:10])), 4)
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
            row["DFSREAS"] = f"NOT COMPUTABLE: {str(exc).upper()[:150]}"
    return row


@dataclass
class SubjectRows:
    qs: list[dict[str, Any]]
    suppqs: list[dict[str, Any]]
    ec: list[dict[str, Any]]
    suppec: list[dict[str, Any]]
    dfs: dict[str, Any]


def subject_rows(dataset: Mapping[str, Any], participant: Mapping[str, Any],
                 records: list[Mapping[str, Any]]) -> SubjectRows:
    """Every SDTM row of one participant (``records``: that participant's records, normalised)."""
    subj = Subject(dataset, participant, records)
    recs = sorted(records, key=_sort_key)
    qs_by: dict[str, list[dict[str, Any]]] = {}
    suppqs: list[dict[str, Any]] = []
    for rtype in ("alsfrs_r", "nasal_symptoms"):
        for rec in (r for r in recs if r["type"] == rtype):
            qs_by[rec["id"]] = qs_record_rows(subj, rec)
            suppqs += suppqs_record_rows(subj, rec)
    _flag_baseline(subj, [r for r in recs if r["id"] in qs_by], qs_by)
    qs = [row for rtype in ("alsfrs_r", "nasal_symptoms") for rec in recs if rec["type"] == rtype
          for row in qs_by[rec["id"]]]
    for i, row in enumerate(qs, start=1):
        row["QSSEQ"] = i
    reasons = load_instrument("dose_confirmation").content["missed_reasons"]
    ec, suppec = [], []
    for rec in (r for r in recs if r["type"] == "dose_confirmation"):
        for row, quals in ec_record_rows(subj, rec, reasons):
            row["ECSEQ"] = len(ec) + 1
            ec.append(row)
            for qnam, qval in quals.items():
                suppec += _supp(subj, "EC", "ECSEQ", row["ECSEQ"], qnam, SUPPEC_QNAMS[qnam], qval)
    return SubjectRows(qs, suppqs, ec, suppec, subject_dfs(subj, qs))


def probe_record(rec: Mapping[str, Any], ctx: Mapping[str, Any], _unused: Any = None) -> None:
    """Write one record's SDTM rows (for :mod:`server.exports.screen`): raises what the export would.
    The participant's :class:`Subject` (visits matched over all its records, as the export does) is
    built once per participant; if that fails, each record gets one of its own, so the failing record
    is the one held back."""
    cache = ctx.get("cache")
    if cache is None:
        cache = {}
    if "sdtm_subject" not in cache:
        try:
            cache["sdtm_subject"] = Subject(ctx["dataset"], ctx["participant"], ctx.get("records") or [rec],
                                            ctx["timeline"])
        except Exception:  # noqa: BLE001 - found again below, record by record
            cache["sdtm_subject"] = None
    subj = cache["sdtm_subject"]
    if subj is None or rec["id"] not in subj.visits:
        subj = Subject(ctx["dataset"], ctx["participant"], [rec], ctx["timeline"])
    if rec["type"] == "dose_confirmation":
        rows = [r for r, _q in ec_record_rows(subj, rec, load_instrument("dose_confirmation").content["missed_reasons"])]
    else:
        rows = qs_record_rows(subj, rec) + suppqs_record_rows(subj, rec)
    for row in rows:
        for v in row.values():
            if isinstance(v, str):
                v.encode("utf-8")


def trial_summary(dataset: Mapping[str, Any]) -> list[dict[str, Any]]:
    """TS: the sponsor protocol id is STUDYID; the registry number (NCT) is kept as REGID."""
    protocol = protocol_for(dataset["study"]["protocol_id"])
    studyid, regid = study_ids(dataset["study"], protocol)
    title = protocol.data.get("title", {}).get("en", "")
    params = [("REGID", "Registry Identifier", regid), ("SPONSOR", "Clinical Study Sponsor Protocol Id", studyid),
              ("TITLE", "Trial Title", title), ("PROTVER", "Protocol Version", dataset["study"]["protocol_version"])]
    return [{"STUDYID": studyid, "DOMAIN": "TS", "TSSEQ": i, "TSPARMCD": code, "TSPARM": label, "TSVAL": value}
            for i, (code, label, value) in enumerate(params, start=1)]


def _code_rows() -> list[list[Any]]:
    rows = []
    for rtype, codes in QS_CODES.items():
        fields = {f.name: f for f in fields_for(rtype)}
        for field, code in codes.items():
            f = fields[field]
            rows.append(["QS", QSCAT[rtype], code, _qstest(rtype, field), field, f.label["en"], f.label["zh-CN"],
                         "Derived: " + f.derivation if f.derived else "CRF", codes_text(f.codes, "en"), CT_NOTE])
    ct = "CDISC SDTM CT"
    rows += [
        ["EC", "", "ECTRT", "Name of Treatment", "", "MASKED", "盲态", "Assigned", "MASKED", f"{ct}: masked study (clinical.md §2.2, §5)"],
        ["EC", "", "ECMOOD", "Mode of Exposure", "", "PERFORMED", "已执行", "Assigned", "PERFORMED", f"{ct} BRDGMOOD C125923"],
        ["EC", "", "ECOCCUR", "Occurrence", "given", "Y given / N not given", "Y 已用 / N 未用", "CRF", "Y | N",
         f"{ct} NY C66742; a missed dose is ECOCCUR=N, never ECDOSE=0"],
        ["EC", "", "ECDOSE", "Dose", "volume", "1 per nostril when full", "全量时每侧 1", "CRF", "1", "per nostril"],
        ["EC", "", "ECDOSU", "Dose Units", "", "mL", "毫升", "Assigned", "mL", f"{ct} UNIT C71620 (C28254)"],
        ["EC", "", "ECDOSTXT", "Dose Description", "volume", "PARTIAL when only part was given", "仅滴部分时为 PARTIAL", "CRF",
         "PARTIAL", "Sponsor-defined"],
        ["EC", "", "ECROUTE", "Route of Administration", "", "NASAL", "经鼻", "Assigned", "NASAL", f"{ct} ROUTE C66729 (C38284)"],
        ["EC", "", "ECLAT", "Laterality", "nostrils", "LEFT / RIGHT, one row per nostril", "LEFT / RIGHT，每侧鼻孔一行",
         "CRF", "LEFT | RIGHT", f"{ct} LAT C99073"],
        ["EC", "", "ECREASOC", "Reason for Occur Value", "missed_reason", "Reason not given (English wording)",
         "未用药原因（英文）", "CRF", "", "Sponsor-defined; verify the variable against the target SDTMIG version"],
    ]
    rows += [["SUPPEC", "", qnam, label, "", label, "", "CRF", "", "Sponsor-defined supplemental qualifier"]
             for qnam, label in SUPPEC_QNAMS.items()]
    rows += [["SUPPQS", "", qnam, label, "respondent", label, "", "CRF", " | ".join(RESPOND.values()) if qnam == "RESPOND"
              else "Y", "Sponsor-defined supplemental qualifier"] for qnam, label in SUPPQS_QNAMS.items()]
    return rows


README = """SDTM-style files from ALS ePRO
=============================

Each dataset as SAS XPORT v5 (.xpt, what regulators take) and as CSV, values identical and verbatim
(no spreadsheet apostrophe: these are analysis files), described by define.xml (Define-XML 2.0):

qs.xpt / qs.csv          questionnaires: ALSFRS-R self-report (items, domain subscores, total) and the
                         nasal symptom diary (current values); QSBLFL=Y on the last pre-dose value
suppqs.xpt / suppqs.csv  who answered as the person stated it (RESPOND: SELF, CAREGIVER, SELF WITH HELP)
ec.xpt / ec.csv          exposure as collected: one row per nostril per dose confirmation
suppec.xpt / suppec.csv  supplemental EC qualifiers: retention, loss, who gave it, dose and kit number
dfs.xpt / dfs.csv        one row per subject: baseline ALSFRS-R total and delta FS, or why not computed
ts.xpt / ts.csv          trial summary: STUDYID is the sponsor protocol id, REGID the NCT number
define.xml               every dataset and variable, the sponsor-defined QSTESTCD codes, derivations
sdtm_codes.csv           every code used, and which are SPONSOR-DEFINED

STUDYID is the sponsor's protocol id; the registry number (NCT) is TS REGID and DFS REGID.
QSCAT and QSTESTCD are sponsor-defined: CDISC controlled terminology (SDTM CT 2025-03-25) has no
ALSFRS-R terms and none for this diary. Remap them if CDISC publishes terminology.
Conventions: only the scored one of ALSFRS-R items 5a/5b is written; derived totals carry QSDRVFL=Y;
a missed dose (or nostril) is ECOCCUR=N with ECREASOC, never ECDOSE=0; ECTRT is MASKED.
VISIT/VISITNUM come from the protocol schedule (BASELINE = 0, DAY n = n, UNSCHEDULED = the visit before
+ 0.01); EPOCH is SCREENING before dose 1 as given, TREATMENT to the protocol's last treatment day,
FOLLOW-UP after. Date-times (QSDTC, ECSTDTC, RFSTDTC) are in the participant's time zone with its UTC
offset (a diary's QSDTC is its date; a missed dose's ECSTDTC its planned date); QSDY/ECSTDY count from
dose 1 as given in the same zone and have no day 0.
"""

CSV_NAMES = {"QS": "qs", "SUPPQS": "suppqs", "EC": "ec", "SUPPEC": "suppec", "DFS": "dfs", "TS": "ts"}
METHODS = {
    "QS.QSBLFL": "Y on the last non-missing value of each QSTESTCD whose event and entry are before dose 1 as given",
    "QS.VISITNUM": "Visit of the schedule item the entry fills (shared/schedule.py match); else UNSCHEDULED",
    "QS.EPOCH": "SCREENING when collected before dose 1 as given (or before study day 1); TREATMENT to the protocol's "
                "treatment_last_day; FOLLOW-UP after",
    "QS.QSDY": "Local date in the participant's zone minus study day 1 (as staff confirmed it, else the date of"
               " dose 1 as given), plus 1 on or after it",
    "DFS.DFS": "(48 - baseline ALSFRS-R total) / months from symptom onset to the baseline date (month = 365.25/12 days)",
}


def _csv_rows(name: str, rows: list[Mapping[str, Any]]):
    numeric = {v.name for v in DATASETS[name]["vars"] if v.numeric}
    for r in rows:
        yield [(f"{r[c]:g}" if c in numeric and isinstance(r.get(c), float) else r.get(c)) for c in columns(name)]


class SdtmWriter:
    """The SDTM files written as the data comes: :meth:`add` takes a normalised dataset of whole
    participants (successive calls in subject order) and writes their rows to the CSV files at once
    and to the XPT spool (:class:`server.exports.xpt.XptWriter`); :meth:`finish` writes TS, the XPT
    files, define.xml, sdtm_codes.csv and the README."""

    def __init__(self, out_dir: str | Path, head: Mapping[str, Any]) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.head = head
        self.csv = {name: AnalysisCsv(self.out / f"{base}.csv", columns(name)) for name, base in CSV_NAMES.items()}
        self.xpt = {name: XptWriter(name) for name in CSV_NAMES}

    def _rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.csv[name].rows(_csv_rows(name, rows))
        self.xpt[name].add(rows)

    def add(self, dataset: Mapping[str, Any]) -> None:
        by_subject: dict[str, list[Mapping[str, Any]]] = {}
        for r in dataset["records"]:
            by_subject.setdefault(r["participant"], []).append(r)
        for p in sorted(dataset["participants"], key=lambda p: p["subject"]):
            got = subject_rows(dataset, p, by_subject.get(p["subject"], []))
            self._rows("QS", got.qs)
            self._rows("SUPPQS", got.suppqs)
            self._rows("EC", got.ec)
            self._rows("SUPPEC", got.suppec)
            self._rows("DFS", [got.dfs])

    def close(self) -> None:
        for name in CSV_NAMES:
            self.csv[name].fh.close()
            self.xpt[name].spool.close()

    def finish(self) -> list[Path]:
        dataset = self.head
        self._rows("TS", trial_summary(dataset))
        written: list[Path] = []
        widths: dict[str, dict[str, int]] = {}
        for name, base in CSV_NAMES.items():
            written.append(self.csv[name].close())
            xpt = self.out / f"{base}.xpt"
            widths[name] = self.xpt[name].write(xpt, parse_time(dataset["generated_at"]))
            written.append(xpt)
        protocol = protocol_for(dataset["study"]["protocol_id"])
        studyid, regid = study_ids(dataset["study"], protocol)
        codes = [(code, _qstest(rtype, field)) for rtype, m in QS_CODES.items() for field, code in m.items()]
        written.append(define_xml(self.out / "define.xml", studyid=studyid, regid=regid,
                                  title=protocol.data.get("title", {}).get("en", ""),
                                  created=utc_iso(dataset["generated_at"]),
                                  files={n: f"{b}.xpt" for n, b in CSV_NAMES.items()}, widths=widths,
                                  testcodes=codes, methods=METHODS))
        written.append(write_analysis_csv(self.out / "sdtm_codes.csv", [
            "DOMAIN", "QSCAT", "TESTCD_OR_VARIABLE", "TEST_OR_LABEL", "SOURCE_FIELD", "LABEL_EN", "LABEL_ZH_CN",
            "ORIGIN", "CODES", "STATUS"], _code_rows()))
        readme = self.out / "README_SDTM.txt"
        readme.write_text(README, encoding="utf-8")
        return written + [readme]


def sdtm_export(dataset: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the SDTM datasets (.xpt and .csv), define.xml, sdtm_codes.csv and README_SDTM.txt."""
    dataset = require_valid(dataset)
    writer = SdtmWriter(out_dir, dataset)
    writer.add(dataset)
    return writer.finish()
