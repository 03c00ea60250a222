"""Builders shared by the desktop tests: a paired store, filled drafts."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from shared.protocol import load_protocol
from shared.vocab import ALSFRS_ITEM_KEYS_5A, NASAL_SYMPTOMS

from desktop.clock import FixedClock
from desktop.services.entries import EntryService
from desktop.store import Pairing, Store

BEIJING = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 10, 9, 30, tzinfo=BEIJING)


def pair(store: Store, participant: str = "001-001", role: str = "participant",
         url: str = "http://127.0.0.1:9", device_id: str = "dev-1", protocol: dict | None = None,
         limits: dict | None = None) -> Pairing:
    p = Pairing(server_url=url, device_id=device_id, participant=participant, role=role,
                originator=f"device:{device_id}",
                protocol=protocol if protocol is not None else load_protocol().participant_projection())
    if limits:
        p.limits = limits
    store.settings.save_pairing(p)
    return p


def clock(at: datetime = START) -> FixedClock:
    return FixedClock(at)


def fill_alsfrs(svc: EntryService, score: int = 4, gastrostomy: bool = False):
    d = svc.start("alsfrs_r")
    d.answers = {"respondent": "participant", "gastrostomy": gastrostomy,
                 "items": {k: score for k in ALSFRS_ITEM_KEYS_5A}}
    svc.save(d)
    return d


def fill_nasal(svc: EntryService, day: str = "2026-03-10", grades: dict | None = None, dosing_day=False):
    d = svc.start("nasal_symptoms", {"date": day, "dosing_day": dosing_day})
    symptoms = {n: 0 for n in NASAL_SYMPTOMS if n != "cough_choking_dosing" or dosing_day}
    symptoms.update(grades or {})
    d.answers = {"respondent": "participant", "symptoms": symptoms, "sought_medical_care": False}
    svc.save(d)
    return d


def fill_dose(svc: EntryService, n: int = 1, planned: str = "2026-03-10", given: bool = True,
              at: str = "2026-03-10T09:00:00+08:00"):
    d = svc.start("dose_confirmation", {"dose_number": n, "planned_date": planned})
    if given:
        d.answers = {"respondent": "caregiver", "given": True, "administered_at": at,
                     "administered_by": "caregiver", "nostrils": "both",
                     "volume": {"left": "full", "right": "full"},
                     "retained": {"left": True, "right": True}, "kit_number": "K-1"}
    else:
        d.answers = {"respondent": "caregiver", "given": False, "missed_reason": "forgot"}
    svc.save(d)
    return d
