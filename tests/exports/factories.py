"""Synthetic, valid records and a realistic export dataset for the flag and export tests.

Every envelope goes through :func:`shared.schemas.load_record`, so a factory that drifts from the
contract fails loudly. Ids are uuid5 of the participant and a counter: the same calls give the same
records, which the determinism tests rely on.
"""

from __future__ import annotations

import copy
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from server.exports.dataset import DEMO_MARKER, diff_payloads, with_path
from shared.instruments import load_instrument
from shared.schemas import load_record
from shared.vocab import ALSFRS_ITEM_KEYS_5A, ALSFRS_ITEM_KEYS_5B, NASAL_SYMPTOMS

NS = uuid.UUID("7d1c2a52-0d55-4c1e-9f1e-5b7f3c0a9e11")
CST = timezone(timedelta(hours=8))
UTC = timezone.utc

__all__ = ["CST", "RecordMaker", "at", "alsfrs_items", "symptoms", "make_dataset", "correct", "DEMO_MARKER"]


def at(y: int, m: int, d: int, hh: int = 9, mm: int = 0, tz: timezone = CST) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alsfrs_items(gastrostomy: bool = False, default: int = 4, **scores: int) -> dict[str, int]:
    """Twelve scored items (5a or 5b by ``gastrostomy``); override with ``i10=3``, ``i5=2`` …"""
    keys = ALSFRS_ITEM_KEYS_5B if gastrostomy else ALSFRS_ITEM_KEYS_5A
    items = {k: default for k in keys}
    for name, value in scores.items():
        key = name[1:]
        key = ("5b" if gastrostomy else "5a") if key == "5" else key
        if key not in items:
            raise KeyError(name)
        items[key] = value
    return items


def symptoms(cough: int | None = 0, **grades: int) -> dict[str, int | None]:
    out: dict[str, int | None] = {n: 0 for n in NASAL_SYMPTOMS}
    out["cough_choking_dosing"] = cough
    for name, value in grades.items():
        if name not in out:
            raise KeyError(name)
        out[name] = value
    return out


class RecordMaker:
    """Builds valid envelopes for one participant (``lang`` picks the instrument_version language)."""

    def __init__(self, participant: str = "P-001", *, lang: str = "zh-CN", respondent: str = "participant",
                 seed: str = "") -> None:
        self.participant, self.lang, self.respondent, self.seed = participant, lang, respondent, seed
        self.seq = 0

    def _env(self, rtype: str, event_time: datetime, entered_at: datetime, payload: dict[str, Any],
             respondent: str | None = None) -> dict[str, Any]:
        self.seq += 1
        env = {
            "id": str(uuid.uuid5(NS, f"{self.participant}:{self.seed}:{self.seq}")),
            "type": rtype, "schema_version": 1,
            "instrument_version": load_instrument(rtype).version_string(self.lang),
            "participant": self.participant, "respondent": respondent or self.respondent,
            "event_time": iso(event_time), "entered_at": iso(entered_at),
            "clock_offset_s": 0.4, "device_seq": self.seq, "payload": payload,
        }
        return load_record(env)

    def alsfrs(self, entered_at: datetime, items: dict[str, int] | None = None, *, gastrostomy: bool = False,
               item_respondent: dict[str, str] | None = None, respondent: str | None = None) -> dict[str, Any]:
        items = items if items is not None else alsfrs_items(gastrostomy)
        payload: dict[str, Any] = {"gastrostomy": "5b" in items, "items": dict(items)}
        if item_respondent:
            payload["item_respondent"] = item_respondent
        return self._env("alsfrs_r", entered_at, entered_at, payload, respondent)

    def nasal(self, day: date, entered_at: datetime, grades: dict[str, int | None] | None = None, *,
              needed_help: bool = False, sought_care: bool = False, notes: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"date": day.isoformat(), "symptoms": grades or symptoms(),
                                   "epistaxis_needed_help": needed_help, "sought_medical_care": sought_care}
        if notes is not None:
            payload["notes"] = notes
        midnight = datetime(day.year, day.month, day.day, tzinfo=entered_at.tzinfo)
        return self._env("nasal_symptoms", midnight, entered_at, payload)

    def dose(self, n: int, planned: date, administered_at: datetime | None = None, *,
             entered_at: datetime | None = None, given: bool = True, left: bool = True, right: bool = True,
             retained: bool = True, loss: Iterable[str] = (), missed_reason: str | None = None,
             missed_reason_text: str | None = None, by: str = "caregiver", kit: str = "K-0107",
             volume: str = "full") -> dict[str, Any]:
        if not given:
            left = right = False
        sides = {s: ({"given": True, "volume": volume, "retained": retained} if g
                     else {"given": False, "volume": None, "retained": None})
                 for s, g in (("left", left), ("right", right))}
        if given and not (left and right) and missed_reason is None:
            missed_reason = "product_issue"
        if not given and missed_reason is None:
            missed_reason = "forgot"
        payload: dict[str, Any] = {
            "dose_number": n, "planned_date": planned.isoformat(), "given": given,
            "administered_at": iso(administered_at) if given and administered_at else None,
            "administered_by": by, "nostrils": sides, "loss": list(loss), "missed_reason": missed_reason,
            "kit_number": kit,
        }
        if missed_reason_text is not None:
            payload["missed_reason_text"] = missed_reason_text
        if given:
            assert administered_at is not None
            entered = entered_at or administered_at + timedelta(minutes=10)
            event = administered_at
        else:
            entered = entered_at or at(planned.year, planned.month, planned.day, 20)
            event = datetime(planned.year, planned.month, planned.day, tzinfo=entered.tzinfo)
        return self._env("dose_confirmation", event, entered, payload)


# --- dataset ------------------------------------------------------------------------------------------

DEVICE_ROLE = {"participant": "participant", "caregiver": "caregiver", "participant_assisted": "participant"}


def stored(env: dict[str, Any], seq: int, *, device: str, labels: Iterable[str] = (),
           delay: timedelta = timedelta(minutes=3), originator: dict[str, Any] | None = None) -> dict[str, Any]:
    """A dataset record for an accepted envelope, as the server would hold it."""
    received = datetime.fromisoformat(env["entered_at"]) + delay
    origin = originator or {"kind": "device", "id": device, "role": DEVICE_ROLE[env["respondent"]], "name": None}
    rec = {k: copy.deepcopy(v) for k, v in env.items() if k not in ("payload", "clock_offset_s", "device_seq")}
    rec.update({
        "received_at": utc(received), "server_seq": seq, "sha256": env.sha256, "originator": origin,
        "labels": sorted({*env.labels, *labels}),
        "versions": [{"version": 1, "payload": copy.deepcopy(env["payload"]), "created_at": utc(received),
                      "created_by": origin, "requested_by": None, "reason": None, "changes": []}],
    })
    return rec


def correct(record: dict[str, Any], changes: dict[str, Any], *, reason: str, by: dict[str, Any],
            when: datetime, requested_by: str | None = None) -> dict[str, Any]:
    """Append a correction version (validated with load_record) to a dataset record, in place."""
    prev = record["versions"][-1]["payload"]
    new = prev
    for field, value in changes.items():
        new = with_path(new, field, value)
    env = {k: record[k] for k in ("id", "type", "schema_version", "instrument_version", "participant",
                                  "respondent", "event_time", "entered_at")}
    load_record({**env, "device_seq": 1, "payload": new})  # the corrected payload must still be valid
    record["versions"].append({
        "version": len(record["versions"]) + 1, "payload": new, "created_at": utc(when), "created_by": by,
        "requested_by": requested_by, "reason": reason, "changes": diff_payloads(prev, new)})
    return record


COORDINATOR = {"kind": "staff", "id": "coord@bj01.example", "role": "coordinator", "name": "Li Na"}
INVESTIGATOR = {"kind": "staff", "id": "pi@bj01.example", "role": "investigator", "name": "Wang Wei"}


def participant_records(subject: str, first_dose: date, *, seed: str = "", gastrostomy_switch: bool = False,
                        baseline: bool = True, missed_dose: int | None = None,
                        respondent: str = "participant") -> list[dict[str, Any]]:
    """About five weeks of a participant's ePRO: baseline ALSFRS-R, four doses, daily nasal diary, weekly ALSFRS-R."""
    mk = RecordMaker(subject, seed=seed, respondent=respondent)
    d1 = first_dose
    day = lambda n: d1 + timedelta(days=n - 1)  # noqa: E731 - study day n (n >= 1)
    out = []
    if baseline:
        b = day(1) - timedelta(days=3)
        out.append(mk.alsfrs(at(b.year, b.month, b.day, 10), alsfrs_items(i3=3, i8=3)))
    bd = day(1)
    out.append(mk.nasal(bd, at(bd.year, bd.month, bd.day, 8), symptoms(cough=None, congestion=1)))
    for n, sd in enumerate((1, 4, 8, 11), start=1):
        dd = day(sd)
        if n == missed_dose:
            out.append(mk.dose(n, dd, given=False, missed_reason="unwell", entered_at=at(dd.year, dd.month, dd.day, 21)))
        else:
            out.append(mk.dose(n, dd, at(dd.year, dd.month, dd.day, 9, 30),
                               loss=("coughed_choked",) if n == 2 else (), retained=n != 2))
    for sd in range(1, 15):
        dd = day(sd)
        dosing = sd in (1, 4, 8, 11)
        g = symptoms(cough=1 if dosing else None, congestion=1, rhinorrhea=1 if sd % 3 == 0 else 0)
        if sd == 4:
            g.update(epistaxis=2, allergic_signs=1)
        if sd == 9:
            g.update(headache=3)
        out.append(mk.nasal(dd, at(dd.year, dd.month, dd.day, 21), g, needed_help=sd == 4, sought_care=sd == 9,
                            notes="鼻子有点干" if sd == 5 else None))
    dd = day(6)
    out.append(mk.nasal(dd, at(dd.year, dd.month, dd.day, 22), symptoms(cough=None)))  # second diary, same day
    for wk, sd in enumerate((8, 15, 22), start=1):
        dd = day(sd)
        g = gastrostomy_switch and sd >= 15
        items = alsfrs_items(g, i3=3, i8=3, i10=3 if sd == 15 else 4, i9=4 - wk, i4=4 - wk)
        out.append(mk.alsfrs(at(dd.year, dd.month, dd.day, 10), items))
    return out


def make_dataset(*, demo: bool = True, generated_at: datetime | None = None) -> dict[str, Any]:
    """Three participants at one site, with corrections and an audit trail."""
    plans = [
        ("P-001", date(2026, 3, 2), dict(seed="a")),
        ("P-002", date(2026, 3, 9), dict(seed="b", gastrostomy_switch=True, missed_dose=3, respondent="caregiver")),
        ("P-003", date(2026, 3, 16), dict(seed="c", baseline=False)),
    ]
    participants, records, audit = [], [], []
    seq = 0
    for subject, first, kw in plans:
        participants.append({"subject": subject, "site": "BJ01", "status": "enrolled", "onset": "2025-06",
                             "first_dose_date": first.isoformat(), "tz": "Asia/Shanghai"})
        device = f"D-{subject[-3:]}"
        for env in participant_records(subject, first, **kw):
            seq += 1
            labels = ["late"] if seq % 11 == 0 else []
            rec = stored(env, seq, device=device, labels=labels)
            records.append(rec)
            audit.append({"seq": len(audit) + 1, "at": rec["received_at"], "actor": f"device:{device}",
                          "action": "record.accept", "entity": "record", "entity_id": rec["id"],
                          "detail": {"server_seq": seq, "sha256": rec["sha256"]}})
    # corrections: a nosebleed grade corrected twice, an ALSFRS-R item, a dose time
    nasal4 = next(r for r in records if r["participant"] == "P-001" and r["type"] == "nasal_symptoms"
                  and r["versions"][0]["payload"]["date"] == "2026-03-05")
    alsfrs = next(r for r in records if r["participant"] == "P-002" and r["type"] == "alsfrs_r")
    fixes = [
        (nasal4, {"symptoms.epistaxis": 3}, "Participant called: the nosebleed was worse than entered",
         "participant, by phone", datetime(2026, 3, 6, 2, 0, tzinfo=UTC)),
        (nasal4, {"symptoms.epistaxis": 2, "notes": "Corrected after the site visit"},
         "Checked at the site visit: grade 2 was right", "investigator at visit", datetime(2026, 3, 9, 3, 0, tzinfo=UTC)),
        (alsfrs, {"items.12": 3}, "Caregiver called: uses a breathing machine at night sometimes",
         "caregiver, by phone", datetime(2026, 3, 20, 1, 0, tzinfo=UTC)),
    ]
    for rec, changes, reason, who, when in fixes:
        correct(rec, changes, reason=reason, by=COORDINATOR, when=when, requested_by=who)
        audit.append({"seq": len(audit) + 1, "at": utc(when), "actor": COORDINATOR["id"], "action": "record.correct",
                      "entity": "record", "entity_id": rec["id"],
                      "detail": {"version": rec["versions"][-1]["version"], "reason": reason,
                                 "changes": rec["versions"][-1]["changes"]}})
    generated = generated_at or datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    return {
        "study": {"protocol_id": "NCT06598202", "protocol_version": "draft-1",
                  "site": {"code": "BJ01", "name": "宣武医院研究中心 (Xuanwu Hospital)"}, "demo": demo},
        "generated_at": utc(generated), "generated_by": INVESTIGATOR["id"], "software_version": "0.1.0",
        "participants": participants, "records": records, "audit": audit,
    }
