"""One bad stored value never breaks an export: screen the dataset record by record (issue 16.1).

:func:`screen_dataset` splits an export dataset into what every format can write and a list of
:class:`HeldBack` rows. It does not rely on ingest-side validation: whatever the database holds (a
timestamp in year 0001 or 9999, a date that does not exist, a malformed payload, text XML cannot hold,
a time zone that does not exist) is caught here, per participant and per record:

1. participant: subject, time zone, planned first dose; a bad one holds back the participant and its
   records (each reported);
2. record: the envelope keys, every date-time (``event_time``, ``entered_at``, ``received_at``, each
   version's ``created_at``, payload ``date``/``planned_date``/``administered_at``) parsed with its
   offset and inside :data:`EXPORT_RANGE`, the versions numbered and reasoned, no masking key;
3. render probe: the record is written by every format's own per-record code (CSV row, SDTM rows, ODM
   forms serialised, FHIR response validated against the R4 schema when at hand); any exception or
   schema error holds the record back with the message.

Held-back records are listed in ``problems.json`` (record id, subject, field, rule, the stored value
shortened) and in the manifest; the rest is exported and the manifest still verifies. A masking
problem never copies the offending payload into the report.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from server.exports.dataset import (
    _RECORD, _change_leaves, _forbidden_keys, as_actor, diff_payloads, normalize_field, parse_time,
    participant_timeline,
)
from shared.schemas import record_errors
from shared.vocab import RECORD_TYPES

#: every date-time an export writes lies in this UTC range (anything else is reported, not written)
EXPORT_RANGE = (datetime(1900, 1, 1, tzinfo=timezone.utc), datetime(2200, 1, 1, tzinfo=timezone.utc))
PROBLEMS_FILE = "problems.json"


@dataclass(frozen=True)
class HeldBack:
    """One held-back participant, record or audit row, and why."""

    kind: str            # participant | record | audit
    id: str
    subject: str | None
    field: str
    rule: str
    value: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        who = f" of {self.subject}" if self.subject and self.kind != "participant" else ""
        return f"{self.kind} {self.id}{who}: {self.field}: {self.rule}" + (f" (stored: {self.value})" if self.value else "")


def shown(value: Any, limit: int = 80) -> str:
    """A stored value for a report: repr, control characters escaped, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Bad(ValueError):
    def __init__(self, field: str, rule: str, value: Any = None, *, hide: bool = False) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule
        self.value = "" if hide or value is None else shown(value)


def check_moment(field: str, value: Any, zone: ZoneInfo | None = None) -> datetime:
    """``value`` as an aware datetime inside :data:`EXPORT_RANGE`, convertible to UTC and ``zone``."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = parse_time(value)
        except (TypeError, ValueError):
            raise Bad(field, "not an ISO 8601 date-time with a UTC offset", value) from None
    try:
        utc = moment.astimezone(timezone.utc)
        if zone is not None:
            moment.astimezone(zone)
    except (OverflowError, ValueError):
        raise Bad(field, "outside the range of a date-time", value) from None
    if not EXPORT_RANGE[0] <= utc < EXPORT_RANGE[1]:
        raise Bad(field, f"outside {EXPORT_RANGE[0].year}–{EXPORT_RANGE[1].year - 1}, the range an export writes",
                  value)
    return moment


def check_date(field: str, value: Any) -> date:
    try:
        d = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        d = None
    if d is None:
        raise Bad(field, "not an ISO 8601 date (YYYY-MM-DD)", value)
    if not EXPORT_RANGE[0].year <= d.year < EXPORT_RANGE[1].year:
        raise Bad(field, f"outside {EXPORT_RANGE[0].year}–{EXPORT_RANGE[1].year - 1}, the range an export writes",
                  value)
    return d


def _check_participant(p: Mapping[str, Any]) -> None:
    if _forbidden_keys(p):
        raise Bad(", ".join(_forbidden_keys(p)), "masking: a key an export may not hold", hide=True)
    if not isinstance(p.get("subject"), str) or not p["subject"]:
        raise Bad("subject", "missing", p.get("subject"))
    if "tz" in p and (not isinstance(p["tz"], str) or not p["tz"]):
        raise Bad("tz", "not an IANA time zone", p["tz"])
    try:
        ZoneInfo(str(p.get("tz") or "Asia/Shanghai"))
    except (ValueError, KeyError, OSError):
        raise Bad("tz", "not an IANA time zone", p.get("tz")) from None
    check_date("first_dose_date", p.get("first_dose_date"))
    if p.get("day1_confirmed") is not None:
        check_date("day1_confirmed", p.get("day1_confirmed"))


def _check_record(r: Mapping[str, Any], zone: ZoneInfo, generated: datetime) -> None:
    missing = [k for k in _RECORD if k not in r]
    if missing:
        raise Bad(", ".join(missing), "missing")
    if r["type"] not in RECORD_TYPES:
        raise Bad("type", "not a record type", r["type"])
    if _forbidden_keys(r):
        raise Bad(", ".join(_forbidden_keys(r)), "masking: a key an export may not hold", hide=True)
    if not isinstance(r["server_seq"], int) or not isinstance(r["versions"], list) or not r["versions"]:
        raise Bad("server_seq/versions", "malformed")
    for name in ("event_time", "entered_at", "received_at"):
        check_moment(name, r[name], zone)
    if parse_time(r["received_at"]) > generated:
        raise Bad("received_at", "after the export's generated_at", r["received_at"])
    try:
        as_actor(r["originator"])
        for v in r["versions"]:
            as_actor(v["created_by"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Bad("originator/created_by", str(exc)[:80]) from None
    if [v.get("version") for v in r["versions"]] != list(range(1, len(r["versions"]) + 1)):
        raise Bad("versions", "must be numbered 1..n in order")
    for v in r["versions"]:
        n = v["version"]
        check_moment(f"v{n}.created_at", v.get("created_at"), zone)
        if parse_time(v["created_at"]) > generated:
            raise Bad(f"v{n}.created_at", "after the export's generated_at", v["created_at"])
        p = v.get("payload")
        if not isinstance(p, Mapping):
            raise Bad(f"v{n}.payload", "not an object", p)
        if r["type"] == "nasal_symptoms":
            check_date(f"v{n}.payload.date", p.get("date"))
        elif r["type"] == "dose_confirmation":
            check_date(f"v{n}.payload.planned_date", p.get("planned_date"))
            if p.get("given") or p.get("administered_at") is not None:
                check_moment(f"v{n}.payload.administered_at", p.get("administered_at"), zone)
    for v in r["versions"]:
        env = {k: r[k] for k in ("id", "type", "schema_version", "instrument_version", "participant", "respondent",
                                 "event_time", "entered_at")}
        _valid, errors = record_errors({**env, "device_seq": 1, "payload": v["payload"]})
        # the payload against the contract's own schema (the envelope's times are checked above)
        wrong = [e for e in errors if e.field.startswith("payload") or e.field in ("respondent", "type")]
        if wrong:
            raise Bad(f"v{v['version']}.{wrong[0].field}", f"{wrong[0].rule}: {wrong[0].message}"[:120])
    for prev, v in zip(r["versions"], r["versions"][1:]):
        if not (v.get("reason") or "").strip():
            raise Bad(f"v{v['version']}.reason", "a correction needs a reason")
        want = {c["field"]: c["new"] for c in diff_payloads(prev["payload"], v["payload"])}
        changes = [{**c, "field": normalize_field(str(c["field"]))} for c in v.get("changes") or []]
        if _change_leaves(changes) != want:
            raise Bad(f"v{v['version']}.changes", "do not match the payloads")


Probe = Callable[[Mapping[str, Any], Mapping[str, Any], Any], None]


def _probes() -> list[tuple[str, Probe]]:
    """Each format's per-record writer, run on one record (imports here: the formats import this module)."""
    import importlib
    return [(name, importlib.import_module(f"server.exports.{module}").probe_record)
            for name, module in (("csv", "csv_export"), ("sdtm", "sdtm"), ("odm", "odm"), ("fhir", "fhir"))]


def screen_dataset(dataset: Mapping[str, Any], *, probe: bool = True,
                   seen: set[str] | None = None) -> tuple[dict[str, Any], list[HeldBack]]:
    """(the dataset every format can write, the problems held back). The input is not changed.
    ``seen``: the record ids of the parts of the same dataset screened before (a record listed again
    is held back; the set is updated)."""
    problems: list[HeldBack] = []
    out = {k: v for k, v in dataset.items() if k not in ("participants", "records", "audit")}
    generated = parse_time(dataset["generated_at"])
    zones: dict[str, ZoneInfo] = {}
    participants = []
    for p in dataset.get("participants") or []:
        try:
            _check_participant(p)
        except Bad as bad:
            problems.append(HeldBack("participant", str(p.get("subject")), None, bad.field, bad.rule, bad.value))
            continue
        p = dict(p)
        if p.get("enrolled_at") is not None:
            try:
                check_moment("enrolled_at", p["enrolled_at"])
            except Bad as bad:
                problems.append(HeldBack("participant", p["subject"], None, bad.field,
                                        bad.rule + "; exported without an enrolment time", bad.value))
                p.pop("enrolled_at")
        zones[p["subject"]] = ZoneInfo(p.get("tz") or "Asia/Shanghai")
        participants.append(p)
    records: list[Mapping[str, Any]] = []
    seen = set() if seen is None else seen
    for r in dataset.get("records") or []:
        rid = str(r.get("id", "?")) if isinstance(r, Mapping) else "?"
        subject = r.get("participant") if isinstance(r, Mapping) else None
        try:
            if not isinstance(r, Mapping):
                raise Bad("record", "not an object")
            if subject not in zones:
                raise Bad("participant", "its participant is not exported (see the participant's problem)", subject)
            if rid in seen:
                raise Bad("id", "listed twice", rid)
            _check_record(r, zones[subject], generated)
        except Bad as bad:
            problems.append(HeldBack("record", rid, subject, bad.field, bad.rule, bad.value))
            continue
        seen.add(rid)
        records.append(r)
    audit = []
    for a in dataset.get("audit") or []:
        try:
            if not isinstance(a, Mapping) or not isinstance(a.get("seq"), int):
                raise Bad("seq", "malformed audit row", a)
            check_moment("at", a.get("at"))
        except Bad as bad:
            seq = a.get("seq") if isinstance(a, Mapping) else "?"
            problems.append(HeldBack("audit", str(seq), None, bad.field, bad.rule, bad.value))
            continue
        audit.append(a)
    signoffs = []
    for so in dataset.get("signoffs") or []:
        try:
            check_moment("signed_at", so.get("signed_at"))
            as_actor(so.get("signer"))
            if not all(isinstance(c.get("record_id"), str) and isinstance(c.get("version"), int)
                       for c in so.get("covered") or []):
                raise Bad("covered", "malformed")
        except (Bad, ValueError, TypeError, AttributeError) as bad:
            problems.append(HeldBack("signoff", str(so.get("id")), so.get("subject"), getattr(bad, "field", "signoff"),
                                     getattr(bad, "rule", str(bad)), getattr(bad, "value", "")))
            continue
        signoffs.append(so)
    if "signoffs" in dataset:
        out["signoffs"] = signoffs
    out.update(participants=participants, records=records, audit=audit)
    if probe and records:
        out, more = _probe(out)
        problems += more
    return out, problems


def _normalised(r: Mapping[str, Any]) -> dict[str, Any]:
    rec = copy.deepcopy(dict(r))
    rec["originator"] = as_actor(rec["originator"])
    rec["versions"] = sorted(rec["versions"], key=lambda v: v["version"])
    for v in rec["versions"]:
        v["created_by"] = as_actor(v["created_by"])
        v["changes"] = [{**c, "field": normalize_field(str(c["field"]))} for c in v.get("changes") or []]
    return rec


def _probe(dataset: dict[str, Any]) -> tuple[dict[str, Any], list[HeldBack]]:
    probes = _probes()
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    for r in dataset["records"]:
        by_subject.setdefault(r["participant"], []).append(r)
    problems: list[HeldBack] = []
    kept: list[Mapping[str, Any]] = []
    for p in dataset["participants"]:
        recs = by_subject.get(p["subject"], [])
        try:
            normed = [_normalised(r) for r in recs]
            timeline = participant_timeline(p, normed)
        except Exception as exc:  # noqa: BLE001 - any stored value: report, never fail the export
            problems.append(HeldBack("participant", p["subject"], None, "timeline", f"{type(exc).__name__}: {exc}"[:160]))
            problems += [HeldBack("record", r["id"], p["subject"], "participant", "its participant is not exported")
                         for r in recs]
            continue
        # "records": the participant's records, normalised; "cache": what a probe builds once per participant
        ctx = {"dataset": dataset, "participant": p, "timeline": timeline, "records": normed, "cache": {}}
        for r, rec in zip(recs, normed):
            for name, fn in probes:
                try:
                    fn(rec, ctx, None)
                except Exception as exc:  # noqa: BLE001 - any stored value: report, never fail the export
                    problems.append(HeldBack("record", r["id"], p["subject"], f"{name} export",
                                            f"{type(exc).__name__}: {exc}"[:160]))
                    break
            else:
                kept.append(r)
    exported = {p["subject"] for p in dataset["participants"]} - {x.id for x in problems if x.kind == "participant"}
    dataset = {**dataset, "participants": [p for p in dataset["participants"] if p["subject"] in exported],
               "records": [r for r in kept if r["participant"] in exported]}
    return dataset, problems


def problems_body(problems: Iterable[HeldBack]) -> dict[str, Any]:
    rows = [p.as_dict() for p in problems]
    return {"count": len(rows), "note": {
        "en": "Held back from every format: these stored values cannot be written as they are. They stay in the "
              "database unchanged; correct them there, then export again.",
        "zh-CN": "以下数据无法按原样写入任何导出格式，已暂不导出；数据库中的原始数据未被改动。请在系统中更正后重新导出。"},
        "problems": rows}


__all__ = ["EXPORT_RANGE", "PROBLEMS_FILE", "HeldBack", "screen_dataset", "check_moment", "check_date",
           "problems_body"]
