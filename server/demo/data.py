"""Synthetic participants with four weeks of diary history, for the demo database.

Pure and deterministic: ``build_demo_history(protocol, now, seed)`` returns participants with the
envelopes their two devices (participant and caregiver) would have sent, valid under
``shared.schemas.load_record``. The demo loads them through the same idempotent ingest as real
uploads, so the demo exercises the real path. Every value is invented; nothing names an arm.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.instruments import load_instrument
from shared.protocol import Protocol
from shared.vocab import ALSFRS_ITEM_KEYS_5A, NASAL_SYMPTOMS


@dataclass
class DemoDevice:
    role: str                                  # "participant" | "caregiver"
    name: str
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DemoParticipant:
    subject: str
    onset: str
    first_dose_date: date
    tz: str
    story: str                                 # what the reviewer should find, in plain words
    caregiver_name: str
    devices: list[DemoDevice] = field(default_factory=list)
    withdraw: bool = False
    confirm_day1: bool = True                  # staff confirmed study day 1 on the site page


# (subject, days since first dose, onset, story, special events)
PLAN = [
    ("001-001", 27, "2025-06", "Four weeks in, everything on time; slow decline.", set()),
    ("001-002", 24, "2025-04-10", "Nosebleed that needed help on day 5; a missed dose 3; caregiver laptop silent 3 days.", {"epistaxis", "missed_dose"}),
    ("001-003", 12, "2025-09", "In the DLT window; allergic signs the day after dose 4.", {"allergic"}),
    ("001-004", 26, "2025-02-20", "ALSFRS-R 4 points below baseline and breathing item at 3.", {"decline", "respiratory"}),
    ("001-005", 5, "2025-11", "Early in the DLT window; two diaries on day 3; cough at dosing.", {"second_diary", "cough"}),
    ("001-006", -3, "2025-12-01", "Enrolled, first dose in three days; baseline done.", set()),
    # issue 10: one participant per new safety rule (onsets are months before the first dose, see below)
    ("001-007", 16, "-13", "Breathing: orthopnea at 1 on day 15 (urgent flag; the participant saw the safety notice).",
     {"breathing"}),
    ("001-008", 18, "-10", "Allergic signs grade 2 on day 7, in the DLT window but not within 24 h of a dose.",
     {"allergic_dlt"}),
    ("001-009", 20, "-15", "Swallowing at 1 without a gastrostomy (tube through the nose); 5a→5b later with a 44→27 fall.",
     {"swallowing", "switch_drop"}),
    ("001-010", 14, "-9", "Doses off schedule: dose 2 on day 2 (early, too close), doses 3 and 4 on day 8 (same day).",
     {"dose_schedule"}),
    ("001-011", 12, "-20", "Inconsistent diaries: nosebleed help with grade 0, cough at dosing on day 6, a diary for a future date; no ALSFRS-R baseline (ΔFS says why); dose 4 never confirmed (flagged the day after its window); dose 1's date typed a day early, day 1 not confirmed.",
     {"inconsistent", "no_baseline", "day1_unconfirmed"}),
]


def _onset(onset: str, day1: date) -> str:
    """``"-13"`` = the month 13 months before day 1 (kept inside the protocol's 6–24 months whatever
    the date the demo is built); anything else is a fixed onset."""
    if not onset.startswith("-"):
        return onset
    months = day1.year * 12 + day1.month - 1 - int(onset[1:])
    return f"{months // 12:04d}-{months % 12 + 1:02d}"


class _Device:
    def __init__(self, subject: str, role: str, tz: ZoneInfo, rng: random.Random):
        self.subject, self.role, self.tz, self.rng = subject, role, tz, rng
        self.seq = 0
        self.records: list[dict[str, Any]] = []

    def _env(self, rtype: str, entered: datetime, event: datetime, payload: dict[str, Any], lang: str) -> None:
        self.seq += 1
        self.records.append({
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "type": rtype,
            "schema_version": 1,
            "instrument_version": load_instrument(rtype).version_string(lang),
            "participant": self.subject,
            "respondent": "participant" if self.role == "participant" else "caregiver",
            "event_time": event.isoformat(),
            "entered_at": entered.isoformat(),
            "clock_offset_s": round(self.rng.uniform(-3, 3), 1),
            "device_seq": self.seq,
            "payload": payload,
        })


def _at(d: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(hour, minute), tzinfo=tz)


def build_demo_history(protocol: Protocol, now: datetime, seed: int = 7) -> list[DemoParticipant]:
    rng = random.Random(seed)
    tz = ZoneInfo(protocol.timezone)
    today = now.astimezone(tz).date()
    out: list[DemoParticipant] = []
    for subject, days_in, onset, story, events in PLAN:
        day1 = today - timedelta(days=days_in)
        p = DemoParticipant(subject, _onset(onset, day1), day1, protocol.timezone, story,
                            caregiver_name=f"Caregiver of {subject}", confirm_day1="day1_unconfirmed" not in events)
        pdev = _Device(subject, "participant", tz, rng)
        cdev = _Device(subject, "caregiver", tz, rng)
        lang = "zh-CN" if subject != "001-001" else "en"

        def day(n: int) -> date:
            return day1 + timedelta(days=n - 1 if n > 0 else n)

        def visible(moment: datetime) -> bool:
            return moment <= now

        # baseline ALSFRS-R five days before dose 1
        base_items = {k: 4 for k in ALSFRS_ITEM_KEYS_5A}
        base_items.update({"1": 3, "4": 3, "5a": 3, "8": 3} if "decline" in events else
                          {"1": 3, "2": 3, "8": 3, "9": 3} if "switch_drop" in events else {"4": 3})
        base_at = _at(day(-5), 10, 15, tz)
        if visible(base_at) and "no_baseline" not in events:
            pdev._env("alsfrs_r", base_at, base_at, {"gastrostomy": False, "items": dict(base_items)}, lang)

        # doses
        dose_times: list[datetime] = []
        for n, dday in enumerate(protocol.dose_days, start=1):
            if "dose_schedule" in events:       # dose 2 on day 2 (early, 24 h after dose 1); 3 and 4 on day 8
                dday = {1: dday, 2: 2, 3: 8, 4: 8}[n]
            d = day(dday)
            given_at = _at(d, 9, 0 + n, tz) if not ("dose_schedule" in events and n == 4) else _at(d, 18, 0, tz)
            entered = given_at + timedelta(minutes=12)
            if "day1_unconfirmed" in events and n == 1:   # dose 1's date typed a day early on the device
                given_at, entered = _at(day(-1), 9, 1, tz), _at(d, 9, 20, tz)
            if not visible(entered) or ("no_baseline" in events and n == 4):
                continue
            missed = "missed_dose" in events and n == 3
            if missed:
                payload = {"dose_number": n, "planned_date": d.isoformat(), "given": False, "administered_at": None,
                           "administered_by": "caregiver",
                           "nostrils": {s: {"given": False, "volume": None, "retained": None} for s in ("left", "right")},
                           "loss": [], "missed_reason": "nasal_problem", "missed_reason_text": "",
                           "kit_number": f"K-{subject[-3:]}-{n}", "notes": "Nose still sore after the nosebleed."}
                cdev._env("dose_confirmation", entered, _at(d, 0, 0, tz), payload, lang)
                continue
            lost = "cough" in events and n == 1
            planned = day(protocol.dose_days[n - 1]) if "dose_schedule" in events else d
            payload = {"dose_number": n, "planned_date": planned.isoformat(), "given": True,
                       "administered_at": given_at.isoformat(), "administered_by": "caregiver",
                       "nostrils": {"left": {"given": True, "volume": "full", "retained": True},
                                    "right": {"given": True, "volume": "partial" if lost else "full",
                                              "retained": not lost}},
                       "loss": ["coughed_choked"] if lost else [], "missed_reason": None,
                       "kit_number": f"K-{subject[-3:]}-{n}"}
            cdev._env("dose_confirmation", entered, given_at, payload, lang)
            dose_times.append(given_at)

        # nasal diary: pre-dose baseline on day 1, then daily to day 28 (a few days skipped)
        dosing_dates = {day(d) for d in protocol.dose_days}
        last_nasal = min(days_in, protocol.nasal.get("last_day", 28))
        diary_days = [("baseline", 1)] + [("day", n) for n in range(1, last_nasal + 1)]
        for kind, n in diary_days:
            d = day(n)
            entered = _at(d, 7, 30, tz) if kind == "baseline" else _at(d, 20, rng.randint(0, 40), tz)
            keep = "inconsistent" in events and n in (3, 6)
            if not visible(entered) or (kind == "day" and n > 2 and rng.random() < 0.08 and not keep):
                continue
            grades: dict[str, int | None] = {s: 0 for s in NASAL_SYMPTOMS}
            if kind == "day":
                grades["rhinorrhea"] = rng.choice([0, 0, 1])
                grades["congestion"] = rng.choice([0, 0, 0, 1])
                if d in dosing_dates:
                    grades["burning_stinging"] = rng.choice([0, 1])
            grades["cough_choking_dosing"] = 0 if (kind == "day" and d in dosing_dates) else None
            help_needed = False
            if "epistaxis" in events and kind == "day" and n == 5:
                grades["epistaxis"], help_needed = 2, True
            if "allergic" in events and kind == "day" and n == 12:
                grades["allergic_signs"] = 1
            if "cough" in events and kind == "day" and n == 1:
                grades["cough_choking_dosing"] = 2
            if "allergic_dlt" in events and kind == "day" and n == 7:
                grades["allergic_signs"] = 2
            if "inconsistent" in events and kind == "day" and n == 3:
                help_needed = True                      # "needed help" with a nosebleed grade of 0
            if "inconsistent" in events and kind == "day" and n == 6:
                grades["cough_choking_dosing"] = 1      # cough at dosing on a day without a dose
            payload = {"date": d.isoformat(), "symptoms": grades, "epistaxis_needed_help": help_needed,
                       "sought_medical_care": False,
                       "notes": "流鼻血，家人帮忙按压止血" if help_needed else ""}
            pdev._env("nasal_symptoms", entered, _at(d, 0, 0, tz), payload, lang)
            if "inconsistent" in events and kind == "day" and n == min(days_in, last_nasal):
                ahead = d + timedelta(days=2)           # a diary for a date two days ahead
                future = dict(payload, date=ahead.isoformat(), epistaxis_needed_help=False,
                              symptoms={**grades, "cough_choking_dosing": None}, notes="")
                pdev._env("nasal_symptoms", entered + timedelta(minutes=3), _at(ahead, 0, 0, tz), future, lang)
            if "second_diary" in events and kind == "day" and n == 3:
                again = dict(payload, symptoms={**grades, "rhinorrhea": 1}, notes="Forgot I had already filled it in.")
                later = entered + timedelta(minutes=50)
                if visible(later):
                    pdev._env("nasal_symptoms", later, _at(d, 0, 0, tz), again, lang)

        # weekly ALSFRS-R after dose 1
        for k, n in enumerate(protocol.alsfrs_days(), start=1):
            when = _at(day(n), 10, 5, tz)
            if not visible(when):
                break
            items = dict(base_items)
            if "decline" in events:
                items.update({"2": 3, "3": 3, "9": 3, "6": 3} if k >= 2 else {"9": 3})
            if "respiratory" in events and k >= 3:
                items["10"] = 3
            if k >= 3 and "decline" not in events:
                items["8"] = 3
            if "breathing" in events and k == 2:
                items["11"] = 1                          # orthopnea: can only sleep sitting up
            if "swallowing" in events and k == 1:
                items["3"] = 1                           # needs tube feeding, no gastrostomy
            gastrostomy = False
            if "switch_drop" in events and k >= 2:       # a PEG placed: 5b, and a 44 -> 27 fall
                gastrostomy = True
                items = {key: 2 for key in items if key != "5a"}
                items.update({"5b": 2, "1": 1, "10": 4, "11": 4})
            pdev._env("alsfrs_r", when, when, {"gastrostomy": gastrostomy, "items": items,
                                               "item_respondent": {"4": "participant_assisted"}}, lang)

        p.devices = [DemoDevice("participant", f"{subject} home computer", pdev.records),
                     DemoDevice("caregiver", f"{subject} caregiver laptop", cdev.records)]
        out.append(p)
    return out
