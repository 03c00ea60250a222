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
  ``QSGRPID`` is the record id (one response), ``QSSPID`` the source variable; ``QSDTC`` is local time
  without offset (diary: its date); ``QSDY`` the study day (no day 0).

**EC** (exposure as collected): one row per nostril per dose confirmation; ``ECTRT = "MASKED"`` (never
the product), ``ECMOOD = "PERFORMED"``, ``ECOCCUR = "N"`` for a nostril not given — never a zero dose —
with ``ECREASOC``; ``ECDOSE = 1``, ``ECDOSU = "mL"`` per nostril when the full drop was given,
``ECDOSTXT = "PARTIAL"`` otherwise; ``ECROUTE = "NASAL"``; ``ECLAT`` LEFT/RIGHT; retention, loss,
who gave it, dose number and kit number are in SUPPEC.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from server.exports.common import (
    codes_text, fields_for, payload_values, site_of, sorted_records, study_day, timelines,
    write_csv,
)
from server.exports.dataset import current_version, parse_time, require_valid
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


def _dtc(value: str | datetime) -> str:
    """ISO 8601 local date-time without offset (SDTM --DTC)."""
    moment = parse_time(value)
    return moment.replace(tzinfo=None).isoformat(timespec="seconds")


QS_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "QSSEQ", "QSGRPID", "QSSPID", "QSTESTCD", "QSTEST", "QSCAT",
              "QSORRES", "QSSTRESC", "QSSTRESN", "QSSTAT", "QSREASND", "QSEVAL", "QSDRVFL", "QSDTC", "QSDY"]
EC_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "ECSEQ", "ECGRPID", "ECSPID", "ECTRT", "ECMOOD", "ECPRESP",
              "ECOCCUR", "ECREASOC", "ECDOSE", "ECDOSTXT", "ECDOSU", "ECROUTE", "ECLAT", "ECSTDTC", "ECENDTC",
              "ECSTDY", "ECENDY"]
SUPP_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG"]
SUPPEC_QNAMS = {
    "ECRETAIN": "Dose Retained in Nostril",
    "ECLOSS": "How Dose Was Lost",
    "ECADMBY": "Administered By",
    "ECDOSNUM": "Dose Number",
    "ECKITNO": "Kit Number (Masked)",
    "ECREASTX": "Reason Not Given, Text",
}


def _usubjid(study: str, site: str, subject: str) -> str:
    return f"{study}-{site}-{subject}"


def _qs_rows(dataset: Mapping[str, Any]) -> list[dict[str, Any]]:
    study, tls, sites = dataset["study"]["protocol_id"], timelines(dataset), site_of(dataset)
    rows: list[dict[str, Any]] = []
    for rtype in ("alsfrs_r", "nasal_symptoms"):
        fields = [f for f in fields_for(rtype) if f.name in QS_CODES[rtype]]
        for rec in sorted_records(dataset, rtype):
            payload = current_version(rec)["payload"]
            values = payload_values(rtype, payload)
            who = payload.get("item_respondent") or {}
            dtc = payload["date"] if rtype == "nasal_symptoms" else _dtc(rec["event_time"])
            for f in fields:
                value = values.get(f.name)
                if rtype == "alsfrs_r" and f.name in ("item_5a", "item_5b") and value is None:
                    continue  # only the scored one of 5a/5b
                item_key = f.name[5:] if f.name.startswith("item_") else None
                row = {"STUDYID": study, "DOMAIN": "QS",
                       "USUBJID": _usubjid(study, sites[rec["participant"]], rec["participant"]),
                       "QSGRPID": rec["id"], "QSSPID": f.name, "QSTESTCD": QS_CODES[rtype][f.name],
                       "QSTEST": _qstest(rtype, f.name), "QSCAT": QSCAT[rtype],
                       "QSEVAL": EVAL[who.get(item_key) or rec["respondent"]],
                       "QSDRVFL": "Y" if f.derived else "", "QSDTC": dtc,
                       "QSDY": study_day(rec, tls[rec["participant"]])}
                if value is None:
                    row.update(QSSTAT="NOT DONE", QSREASND="NO DOSE THAT DAY")
                elif isinstance(value, bool):
                    row.update(QSORRES="Y" if value else "N", QSSTRESC="Y" if value else "N")
                else:
                    row.update(QSORRES=_anchor_text(rtype, f.name, value) if f.codes else str(value),
                               QSSTRESC=str(value), QSSTRESN=value if isinstance(value, int) else "")
                rows.append(row)
    return rows


def _number(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """--SEQ: 1, 2, … per subject, in file order."""
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["USUBJID"]] = seen.get(row["USUBJID"], 0) + 1
        row[column] = seen[row["USUBJID"]]
    return rows


def _ec_rows(dataset: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    study, tls, sites = dataset["study"]["protocol_id"], timelines(dataset), site_of(dataset)
    reasons = load_instrument("dose_confirmation").content["missed_reasons"]
    ec, supp = [], []
    for rec in sorted_records(dataset, "dose_confirmation"):
        p = current_version(rec)["payload"]
        usubjid = _usubjid(study, sites[rec["participant"]], rec["participant"])
        when = _dtc(p["administered_at"]) if p["given"] else p["planned_date"]
        day = study_day(rec, tls[rec["participant"]])
        for side in ("left", "right"):
            n = p["nostrils"][side]
            row = {"STUDYID": study, "DOMAIN": "EC", "USUBJID": usubjid, "ECGRPID": rec["id"],
                   "ECSPID": f"DOSE{p['dose_number']}-{side.upper()}", "ECTRT": "MASKED", "ECMOOD": "PERFORMED",
                   "ECPRESP": "Y", "ECOCCUR": "Y" if n["given"] else "N", "ECROUTE": "NASAL", "ECLAT": side.upper(),
                   "ECSTDTC": when, "ECENDTC": when, "ECSTDY": day, "ECENDY": day}
            if n["given"]:
                if n["volume"] == "full":
                    row.update(ECDOSE=1, ECDOSU="mL")
                else:
                    row.update(ECDOSTXT="PARTIAL", ECDOSU="mL")
            else:
                row["ECREASOC"] = reasons[p["missed_reason"]]["en"].upper() if p.get("missed_reason") else ""
            ec.append(row)
            quals = {"ECDOSNUM": p["dose_number"], "ECADMBY": ADMINISTERED_BY_EVAL[p["administered_by"]],
                     "ECKITNO": p["kit_number"]}
            if n["given"]:
                quals["ECRETAIN"] = "Y" if n["retained"] else "N"
                if n["retained"] is False and p.get("loss"):
                    quals["ECLOSS"] = ";".join(x.upper() for x in p["loss"])
            elif p.get("missed_reason_text"):
                quals["ECREASTX"] = p["missed_reason_text"]
            supp.append({"_row": row, "_quals": quals})
    _number(ec, "ECSEQ")
    supp_rows = []
    for item in supp:
        row = item["_row"]
        for qnam, qval in item["_quals"].items():
            supp_rows.append({"STUDYID": study, "RDOMAIN": "EC", "USUBJID": row["USUBJID"], "IDVAR": "ECSEQ",
                              "IDVARVAL": row["ECSEQ"], "QNAM": qnam, "QLABEL": SUPPEC_QNAMS[qnam], "QVAL": qval,
                              "QORIG": "CRF"})
    return ec, supp_rows


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
    return rows


README = """SDTM-style files from ALS ePRO
=============================

qs.csv      questionnaires: ALSFRS-R self-report and nasal symptom diary (current values)
ec.csv      exposure as collected: one row per nostril per dose confirmation
suppec.csv  supplemental EC qualifiers: retention, loss, who gave it, dose and kit number
sdtm_codes.csv  every code used, and which are SPONSOR-DEFINED

QSCAT and QSTESTCD are sponsor-defined: CDISC controlled terminology (SDTM CT 2025-03-25) has no
ALSFRS-R terms and none for this diary. Remap them if CDISC publishes terminology.
Conventions: only the scored one of ALSFRS-R items 5a/5b is written; derived totals carry QSDRVFL=Y;
a missed dose (or nostril) is ECOCCUR=N with ECREASOC, never ECDOSE=0; ECTRT is MASKED.
Times (QSDTC, ECSTDTC) are the participant's local time without offset; QSDY/ECSTDY have no day 0.
"""


def sdtm_export(dataset: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write qs.csv, ec.csv, suppec.csv, sdtm_codes.csv and README_SDTM.txt into ``out_dir``."""
    dataset = require_valid(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qs = _number(_qs_rows(dataset), "QSSEQ")
    ec, supp = _ec_rows(dataset)
    written = [
        write_csv(out / "qs.csv", QS_COLUMNS, ([r.get(c, "") for c in QS_COLUMNS] for r in qs)),
        write_csv(out / "ec.csv", EC_COLUMNS, ([r.get(c, "") for c in EC_COLUMNS] for r in ec)),
        write_csv(out / "suppec.csv", SUPP_COLUMNS, ([r.get(c, "") for c in SUPP_COLUMNS] for r in supp)),
        write_csv(out / "sdtm_codes.csv", ["DOMAIN", "QSCAT", "TESTCD_OR_VARIABLE", "TEST_OR_LABEL", "SOURCE_FIELD",
                                           "LABEL_EN", "LABEL_ZH_CN", "ORIGIN", "CODES", "STATUS"], _code_rows()),
    ]
    readme = out / "README_SDTM.txt"
    readme.write_text(README, encoding="utf-8")
    return written + [readme]
