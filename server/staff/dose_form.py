"""The staff dose-confirmation form (protocol ``dosing.location = "site"``): form values ⇄ envelope.

The form builds an ordinary ``dose_confirmation`` envelope (contract §1), validated by the shared
schema exactly as a device's would be; the view stores it through the same ingest (channel
``staff``), so the originator is the staff member and the record is marked staff-entered.
``administered_by`` is always ``site_staff``. No Flask here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from server.clock import utc_now
from server.staff.overview import record_views
from server.store.participants import participant_timeline
from shared.instruments import load_instrument
from shared.messages import has, t
from shared.protocol import Protocol
from shared.schemas import record_errors
from shared.vocab import LOSS_REASONS, MISSED_REASONS

NOSTRILS = ("both", "left", "right", "none")
TEXT_FIELDS = ("missed_reason_text", "kit_number", "concomitant", "notes")
#: envelope error field → form field
ERROR_FIELDS = {
    "payload.administered_at": "time", "event_time": "time", "entered_at": "time",
    "payload.nostrils.left.volume": "left_volume", "payload.nostrils.left.retained": "left_retained",
    "payload.nostrils.right.volume": "right_volume", "payload.nostrils.right.retained": "right_retained",
    "payload.given": "nostrils", "payload.nostrils": "nostrils", "payload.loss": "loss",
    "payload.missed_reason": "missed_reason", "payload.missed_reason_text": "missed_reason_text",
    "payload.kit_number": "kit_number", "payload.concomitant_nasal_products": "concomitant",
    "payload.notes": "notes", "payload.dose_number": "dose_number",
}


def _text(obj: dict[str, str], lang: str) -> str:
    return obj.get(lang) or obj["en"]


def _next_staff_seq(db: Database, staff_id: int) -> int:
    """``device_seq`` for a staff entry: the staff member's own running count (a staff member has no device)."""
    return db.execute("SELECT COALESCE(MAX(device_seq), 0) + 1 FROM records WHERE channel = 'staff'"
                      " AND staff_id = ?", [staff_id]).fetchone()[0]


@dataclass
class DoseForm:
    values: dict[str, Any]
    protocol: Protocol
    errors: dict[str, list[str]] = field(default_factory=dict)
    envelope: dict[str, Any] | None = None

    @classmethod
    def blank(cls, db: Database, protocol: Protocol, participant: dict[str, Any],
              now: datetime | None = None) -> "DoseForm":
        local = (now or utc_now()).astimezone(ZoneInfo(participant["tz"]))
        done = {r["current"]["payload"]["dose_number"] for r in record_views(db, participant["id"])
                if r["type"] == "dose_confirmation"}
        n = next((i for i in range(1, protocol.dose_count + 1) if i not in done), protocol.dose_count)
        return cls({"dose_number": str(n), "nostrils": "", "date": local.date().isoformat(),
                    "time": f"{local:%H:%M}", "left_volume": "full", "left_retained": "yes",
                    "right_volume": "full", "right_retained": "yes", "loss": [], "missed_reason": "",
                    **{k: "" for k in TEXT_FIELDS}}, protocol)

    @classmethod
    def from_request(cls, db: Database, protocol: Protocol, participant: dict[str, Any],
                     staff: dict[str, Any], form: Mapping[str, Any], lang: str,
                     now: datetime | None = None) -> "DoseForm":
        values = {k: (form.get(k) or "").strip() for k in
                  ("dose_number", "nostrils", "date", "time", "left_volume", "left_retained", "right_volume",
                   "right_retained", "missed_reason", *TEXT_FIELDS)}
        values["loss"] = [x for x in form.getlist("loss") if x in LOSS_REASONS]
        self = cls(values, protocol)
        self._build(db, participant, staff, lang, now or utc_now())
        return self

    def _need(self, name: str, lang: str, rule: str = "required") -> None:
        self.errors.setdefault(name, []).append(t(f"staff.rule.{rule}" if has(f"staff.rule.{rule}") else f"rule.{rule}", lang))

    def _build(self, db: Database, participant: dict[str, Any], staff: dict[str, Any], lang: str,
               now: datetime) -> None:
        v, tz = self.values, ZoneInfo(participant["tz"])
        try:
            number = int(v["dose_number"])
            if not 1 <= number <= self.protocol.dose_count:
                raise ValueError
        except ValueError:
            self._need("dose_number", lang, "one_of")
            return
        if v["nostrils"] not in NOSTRILS:
            self._need("nostrils", lang, "one_of")
            return
        given_sides = {"both": ("left", "right"), "left": ("left",), "right": ("right",), "none": ()}[v["nostrils"]]
        administered = None
        if given_sides:
            try:
                administered = datetime.combine(date.fromisoformat(v["date"]), time.fromisoformat(v["time"]), tzinfo=tz)
            except ValueError:
                self._need("time", lang, "format.datetime")
                return
        entered = now.astimezone(tz).replace(microsecond=0)
        timeline = participant_timeline(db, participant)
        planned = timeline.date_of(self.protocol.dose_days[number - 1])
        nostrils = {}
        for side in ("left", "right"):
            if side in given_sides:
                nostrils[side] = {"given": True, "volume": v[f"{side}_volume"] or None,
                                  "retained": {"yes": True, "no": False}.get(v[f"{side}_retained"])}
            else:
                nostrils[side] = {"given": False, "volume": None, "retained": None}
        all_given = len(given_sides) == 2
        payload = {
            "dose_number": number, "planned_date": planned.isoformat(), "given": bool(given_sides),
            "administered_at": administered.isoformat() if administered else None,
            "administered_by": "site_staff", "nostrils": nostrils, "loss": v["loss"],
            "missed_reason": None if all_given else (v["missed_reason"] or None),
            "missed_reason_text": v["missed_reason_text"], "kit_number": v["kit_number"],
            "concomitant_nasal_products": v["concomitant"], "notes": v["notes"],
        }
        event = administered or datetime.combine(planned, time(0, 0), tzinfo=entered.tzinfo)
        self.envelope = {
            "id": str(uuid.uuid4()), "type": "dose_confirmation", "schema_version": 1,
            "instrument_version": load_instrument("dose_confirmation").version_string(lang),
            "participant": participant["subject"], "respondent": "participant",
            "event_time": event.isoformat(), "entered_at": entered.isoformat(), "clock_offset_s": 0.0,
            "device_seq": _next_staff_seq(db, staff["id"]), "payload": payload,
        }
        _record, problems = record_errors(self.envelope, protocol=self.protocol)
        for e in problems:
            key = next((k for k in (f"staff.rule.{e.rule}", f"rule.{e.rule}") if has(k)), None)
            self.errors.setdefault(ERROR_FIELDS.get(e.field, "_form"), []).append(t(key, lang) if key else e.message)
        if self.errors:
            self.envelope = None

    def choices(self, lang: str) -> dict[str, Any]:
        """Option lists for the template, in the page language."""
        inst = load_instrument("dose_confirmation").content
        return {
            "dose_numbers": [(str(i), t("staff.item.dose_confirmation", lang, n=i)) for i in range(1, self.protocol.dose_count + 1)],
            "nostril_options": [(k, t(f"staff.dose_entry.nostrils_{k}", lang)) for k in NOSTRILS],
            "volume_options": [("full", t("staff.dose.volume_full", lang)), ("partial", t("staff.dose.volume_partial", lang))],
            "retained_options": [("yes", t("staff.dose.retained", lang)), ("no", t("staff.dose.lost", lang))],
            "loss_options": [(k, _text(inst["loss"][k], lang)) for k in LOSS_REASONS],
            "reason_options": [("", "—")] + [(k, _text(inst["missed_reasons"][k], lang)) for k in MISSED_REASONS],
            "product_wording": _text(inst["product_wording"], lang),
        }
