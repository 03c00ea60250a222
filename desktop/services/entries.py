"""Build, check and submit diary entries (contract §1) from a draft's answers.

A form writes answers into a :class:`~desktop.store.Draft` as the person goes; :class:`EntryService`
turns them into the envelope that will be sent, validates it with ``shared.schemas`` and saves it
in one transaction. Nothing invalid can reach the outbox, and clock drift never blocks an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import ValidationError

from shared.consistency import consistency_issues, given_dose_dates
from shared.errors import FieldError
from shared.instruments import load_instrument
from shared.schemas import record_errors
from shared.vocab import ALSFRS_ITEM_KEYS_5A, ALSFRS_ITEM_KEYS_5B, NASAL_SYMPTOMS, NOSTRILS

from desktop.clock import Clock, local_iso, utc_iso
from desktop.services.i18n import tr as t
from desktop.services.safety import previous_alsfrs, safety_notice_needed
from desktop.services.today import protocol_of
from desktop.store import Draft, Entry, Store

SCHEMA_VERSION = 1


class NotPaired(Exception):
    """Entries need a pairing: it names the participant they belong to."""


class EntryInvalid(Exception):
    """The finished envelope breaks a contract rule; nothing was saved."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.rule}" for e in errors))
        self.errors = errors

    def messages(self, lang: str) -> list[str]:
        """The rules in plain words, from the catalogue's ``consistency.*`` or ``rule.*`` keys."""
        out = []
        for e in self.errors:
            for key in (f"consistency.{e.rule}", f"rule.{e.rule}"):
                text = t(key, lang)
                if text != key:
                    break
            out.append(text if text != key else e.message)
        return list(dict.fromkeys(out))


@dataclass
class Submitted:
    entry: Entry
    safety_notice: bool


def _midnight(day: str, entered_at: str) -> str:
    """00:00 of ``day`` at the UTC offset of ``entered_at`` (contract §1, event_time)."""
    offset = datetime.fromisoformat(entered_at).isoformat()[19:]
    return f"{day}T00:00:00{offset}"


def alsfrs_keys(gastrostomy: bool | None) -> tuple[str, ...]:
    return ALSFRS_ITEM_KEYS_5B if gastrostomy else ALSFRS_ITEM_KEYS_5A


def alsfrs_payload(answers: dict[str, Any]) -> dict[str, Any]:
    g = answers.get("gastrostomy")
    keys = alsfrs_keys(g)
    scores = answers.get("items") or {}
    payload: dict[str, Any] = {"gastrostomy": g, "items": {k: scores[k] for k in keys if k in scores}}
    who = {k: v for k, v in (answers.get("item_respondent") or {}).items() if k in payload["items"]}
    if who:
        payload["item_respondent"] = who
    return payload


def nasal_payload(answers: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    dosing_day = bool(context.get("dosing_day"))
    given = answers.get("symptoms") or {}
    symptoms: dict[str, int | None] = {}
    for name in NASAL_SYMPTOMS:
        if name == "cough_choking_dosing" and not dosing_day:
            symptoms[name] = None
        elif answers.get("none"):
            symptoms[name] = 0
        else:
            symptoms[name] = given.get(name)
    bleeding = (symptoms.get("epistaxis") or 0) >= 1
    # a "needed help" answer kept after the grade went back to 0 is a contradiction the review page
    # names (shared.consistency), never silently dropped; "No symptoms today" asks no help question
    payload = {
        "date": context.get("date") or answers.get("date"),
        "symptoms": symptoms,
        "epistaxis_needed_help": bool(answers.get("epistaxis_needed_help")) if not answers.get("none") else False,
        "sought_medical_care": False if answers.get("none") else answers.get("sought_medical_care"),
    }
    notes = (answers.get("notes") or "").strip()
    if notes:
        payload["notes"] = notes
    return payload


def nostrils_given(answers: dict[str, Any]) -> tuple[str, ...]:
    if not answers.get("given"):
        return ()
    return {"both": NOSTRILS, "left": ("left",), "right": ("right",)}.get(answers.get("nostrils") or "", ())


def dose_payload(answers: dict[str, Any], context: dict[str, Any], default_by: str) -> dict[str, Any]:
    given = answers.get("given")
    sides = nostrils_given(answers)
    volume, retained = answers.get("volume") or {}, answers.get("retained") or {}
    nostrils = {}
    for side in NOSTRILS:
        if side in sides:
            nostrils[side] = {"given": True, "volume": volume.get(side), "retained": retained.get(side)}
        else:
            nostrils[side] = {"given": False, "volume": None, "retained": None}
    lost = any(retained.get(s) is False for s in sides)
    all_given = bool(given) and len(sides) == len(NOSTRILS)
    payload: dict[str, Any] = {
        "dose_number": context.get("dose_number"),
        "planned_date": context.get("planned_date"),
        "given": given,
        "administered_at": answers.get("administered_at") if given else None,
        "administered_by": (answers.get("administered_by") if given else None) or default_by,
        "nostrils": nostrils,
        "loss": list(answers.get("loss") or []) if lost else [],
        "missed_reason": None if all_given else answers.get("missed_reason"),
        "kit_number": (answers.get("kit_number") or "").strip(),
    }
    if payload["missed_reason"] == "other":
        payload["missed_reason_text"] = (answers.get("missed_reason_text") or "").strip()
    for key in ("concomitant_nasal_products", "notes"):
        text = (answers.get(key) or "").strip()
        if text:
            payload[key] = text
    return payload


class EntryService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # --- drafts -----------------------------------------------------------------------------------
    def start(self, rtype: str, context: dict[str, Any] | None = None) -> Draft:
        pairing = self.store.settings.pairing()
        if pairing is None:
            raise NotPaired()
        return self.store.drafts.create(rtype, pairing.device_id, dict(context or {}),
                                        utc_iso(self.clock.now()))

    def save(self, draft: Draft) -> None:
        self.store.drafts.save(draft, utc_iso(self.clock.now()))

    def open_drafts(self) -> list[Draft]:
        return self.store.drafts.all(self.store.device_id or "")

    # --- envelopes --------------------------------------------------------------------------------
    def envelope(self, draft: Draft, lang: str, entered_at: datetime | None = None) -> dict[str, Any]:
        """The envelope as it will be sent, except ``device_seq`` (assigned by the store at Submit)."""
        pairing = self.store.settings.pairing()
        if pairing is None:
            raise NotPaired()
        entered = local_iso(entered_at or self.clock.now())
        a, c = draft.answers, draft.context
        if draft.type == "alsfrs_r":
            payload = alsfrs_payload(a)
            event = entered
        elif draft.type == "nasal_symptoms":
            payload = nasal_payload(a, c)
            event = _midnight(payload["date"], entered) if payload["date"] else None
        elif draft.type == "dose_confirmation":
            default_by = "caregiver" if pairing.role == "caregiver" else "participant"
            payload = dose_payload(a, c, default_by)
            if payload["given"]:
                event = payload["administered_at"]
            else:
                event = _midnight(payload["planned_date"], entered) if payload["planned_date"] else None
        else:
            raise ValueError(f"unknown record type {draft.type!r}")
        return {
            "id": draft.id,
            "type": draft.type,
            "schema_version": SCHEMA_VERSION,
            "instrument_version": load_instrument(draft.type).version_string(lang),
            "participant": pairing.participant,
            "respondent": a.get("respondent"),
            "event_time": event,
            "entered_at": entered,
            "clock_offset_s": self.store.settings.get("clock_offset_s"),
            "payload": payload,
        }

    def check(self, draft: Draft, lang: str) -> list[FieldError]:
        """Every rule the entry breaks as it stands now (empty when it can be submitted)."""
        env = {**self.envelope(draft, lang), "device_seq": 1}
        _, errors = record_errors(env)
        return errors

    def consistency(self, draft: Draft, lang: str) -> list[FieldError]:
        """Answers that contradict each other (:mod:`shared.consistency`), as this computer knows
        the doses: a dose day is a planned dosing day or a day a dose was given here, unless this
        computer recorded that day's dose as not given."""
        if draft.type != "nasal_symptoms":
            return []
        try:
            env = self.envelope(draft, lang)
        except NotPaired:
            return []
        if not (env["payload"].get("date")):
            return []
        from desktop.services.today import timeline_of
        protocol = protocol_of(self.store)
        tl = timeline_of(self.store, protocol)
        tz = tl.tz if tl is not None else (protocol.timezone if protocol is not None else None)
        return [FieldError("payload", code, code)
                for code in consistency_issues(env, protocol, self._dose_dates(), tz)]

    def _dose_dates(self) -> set:
        from datetime import date as _date

        from desktop.services.today import timeline_of
        protocol, entries = protocol_of(self.store), self.store.outbox.entries(self.store.device_id or "")
        doses = [e.envelope for e in entries if e.envelope.get("type") == "dose_confirmation"]
        given = given_dose_dates(doses)
        not_given = {_date.fromisoformat(d["payload"]["planned_date"]) for d in doses
                     if d["payload"].get("given") is False}
        tl = timeline_of(self.store, protocol)
        planned = {tl.date_of(day) for day in protocol.dose_days} if tl is not None and protocol else set()
        return given | (planned - not_given)

    def submit(self, draft: Draft, lang: str) -> Submitted:
        """Save the entry durably (one transaction) and say whether the safety notice is due.

        Raises :class:`EntryInvalid` (nothing saved, the draft kept) when a rule is broken or the
        answers contradict each other (:meth:`consistency`).
        """
        problems = self.consistency(draft, lang)
        if problems:
            raise EntryInvalid(problems)
        env = self.envelope(draft, lang)
        try:
            entry = self.store.outbox.submit(env, draft.id, utc_iso(self.clock.now()))
        except ValidationError as exc:
            errors = [FieldError(**e) for e in exc.messages["errors"]]  # type: ignore[index]
            raise EntryInvalid(errors) from None
        return Submitted(entry, safety_notice_needed(entry.envelope, protocol_of(self.store),
                                                     previous_alsfrs(self.store, entry.envelope)))
