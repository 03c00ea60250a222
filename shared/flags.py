"""Safety flags for site review (issue 5), as rules whose thresholds live in the protocol file.

:func:`evaluate_flags` is a pure function of the protocol, the participant's :class:`Timeline` and the
participant's accepted records (envelope dicts carrying the *current* version's payload, with at
least ``id``, ``type``, ``event_time``, ``entered_at`` and ``payload``). It reads no clock and no
database: the same inputs always give the same flags, in the same order, with the same keys, so the
server can re-evaluate at any time and attach staff acknowledgements to a flag by its ``key``
(``"{rule}:{record_id}"``).

Rules and the protocol thresholds they read (``[flags]`` in ``shared/protocols/*.toml``):

==========================  ======  =========================================================================
rule                        sev.    fires when
==========================  ======  =========================================================================
``symptom_severe``          high    a nasal-diary symptom >= ``symptom_severe``
``allergic_after_dose``     high    ``allergic_signs`` >= ``allergic_signs_min`` on a diary day that lies
                                    within ``allergic_window_hours`` after a given dose (see below)
``epistaxis``               high/   ``epistaxis`` >= ``epistaxis_min`` (medium), or ``epistaxis_needed_help``
                            medium  (high)
``cough_choking_dosing``    high    diary ``cough_choking_dosing`` >= ``cough_choking_min``, or a dose record
                                    whose ``loss`` includes ``coughed_choked``
``sought_medical_care``     high    the diary says the person saw a doctor or went to hospital
``respiratory_item_low``    high    an ALSFRS-R respiratory item (10–12) < ``respiratory_item_below``
``alsfrs_drop``             medium  an ALSFRS-R total >= ``alsfrs_drop_points`` below the baseline, both on
                                    the same 5a/5b scale; no baseline → no drop flag (``notes``)
``alsfrs_scale_switch``     medium  an ALSFRS-R scored on 5a/5b where the previous report used the other
``dose_missed``             medium  a dose confirmation with ``given`` false
``second_diary_same_day``   medium  another nasal diary for a date that already has one, not counting
                                    the planned pre-dose baseline entry on study day 1
``respiratory_critical``    high    an ALSFRS-R respiratory item (10–12) <= ``respiratory_critical_max``, or
                                    ``respiratory_drop_points`` or more below the same item in the previous
                                    ALSFRS-R entry; the participant also sees the safety notice (issue 10)
``allergic_in_dlt_window``  high    ``allergic_signs`` >= ``allergic_dlt_min`` on a diary day that overlaps
                                    the DLT window (14 × 24 h from dose 1's time) and is not already an
                                    ``allergic_after_dose`` flag
``swallowing_tube_feeding`` high    ALSFRS-R item 3 <= ``swallowing_tube_max`` without a gastrostomy: tube
                                    feeding through the nose, a hazard for nasal dosing and an exclusion
                                    criterion
``dose_off_schedule``       medium  a given dose early, late, too close to the previous one, out of order
                                    or on the same day as another (:mod:`shared.dose_schedule`)
==========================  ======  =========================================================================

``alsfrs_drop`` compares the total (whichever of 5a/5b applies) and the fine-motor domain with the
baseline, also across a 5a↔5b switch (``fine_motor_drop_points`` for the domain). Which rules are
*urgent* is in the protocol file (``[flags.urgent]``, one key per rule id): :attr:`Flag.urgent`.

**"Within 24 hours of a dose" for a day-level diary.** A nasal diary describes a whole local day: its
``event_time`` is 00:00 of ``payload.date`` at the device's UTC offset (contract §1), so the day is
``[event_time, event_time + 24 h)``. Allergic signs reported for that day are flagged when any given
dose's ``administered_at`` lies in ``[event_time − H, min(event_time + 24 h, entered_at)]`` with
``H = allergic_window_hours``: the day overlaps the H hours after the dose, and the diary was not
filled in before that dose was given (so a pre-dose entry never counts as "after" the same dose).
This is deliberately inclusive — a diary cannot tell the hour of a symptom, so any overlap is flagged.

**Nasal baseline.** The pre-dose entry on study day 1 (contract §4) is found with
:func:`shared.schedule.match_entries`. Nasal flags on later entries carry that entry's grades for the
same symptoms in ``detail["baseline_grades"]``; flags on the baseline entry itself say so
(``detail["pre_dose_baseline"]``). Nothing is suppressed because it was already present at baseline.

A missed dose that was never confirmed at all is a schedule fact, not a record, and needs a clock:
the staff page takes it from :func:`shared.schedule.compute_schedule`, not from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from shared.dose_schedule import dose_findings
from shared.protocol import Protocol
from shared.schedule import Entry, Timeline, match_entries
from shared.schemas.fields import parse_aware
from shared.scoring import AlsfrsScore, score_alsfrs_r
from shared.vocab import NASAL_SYMPTOMS, RESPIRATORY_ITEMS

SEVERITIES = ("high", "medium")

#: every rule in display order, with its severity (``epistaxis`` is high only when help was needed)
RULES: dict[str, str] = {
    "respiratory_critical": "high",
    "symptom_severe": "high",
    "allergic_after_dose": "high",
    "allergic_in_dlt_window": "high",
    "epistaxis": "medium",
    "cough_choking_dosing": "high",
    "sought_medical_care": "high",
    "respiratory_item_low": "high",
    "swallowing_tube_feeding": "high",
    "alsfrs_drop": "medium",
    "alsfrs_scale_switch": "medium",
    "dose_missed": "medium",
    "dose_off_schedule": "medium",
    "second_diary_same_day": "medium",
}
#: the contract's values for the rules a device applies when its protocol projection lacks them
NOTICE_DEFAULTS = {"respiratory_critical_max": 1, "respiratory_drop_points": 2}
_ORDER = {rule: i for i, rule in enumerate(RULES)}

#: the note :func:`evaluate_flags` returns when there is no ALSFRS-R baseline (drop flag is off)
NOTE_NO_BASELINE = "no_baseline"


@dataclass(frozen=True)
class Flag:
    """One safety flag on one record. ``key`` is stable across re-evaluations: ``"{rule}:{record_id}"``."""

    rule: str
    record_id: str
    severity: str
    detail: dict[str, Any] = field(default_factory=dict, hash=False)
    key: str = ""
    #: from the protocol's ``[flags.urgent]``; not part of :meth:`as_dict` (acknowledgements hash that)
    urgent: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown flag rule {self.rule!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not self.key:
            object.__setattr__(self, "key", f"{self.rule}:{self.record_id}")

    @property
    def title_key(self) -> str:
        return f"flag.{self.rule}.title"

    @property
    def explanation_key(self) -> str:
        return f"flag.{self.rule}.explanation"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rule": self.rule, "record_id": self.record_id,
                "severity": self.severity, "detail": dict(self.detail)}


@dataclass(frozen=True)
class Baseline:
    """The participant's ALSFRS-R baseline: the last accepted self-report before dose 1 (contract §4)."""

    record_id: str
    entered_at: str
    score: AlsfrsScore

    @property
    def total(self) -> int:
        return self.score.total

    @property
    def scale(self) -> str:
        return self.score.scale

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "entered_at": self.entered_at, **self.score.as_dict()}


class FlagList(list):
    """A ``list[Flag]`` that also tells the page what the rules could not evaluate.

    ``baseline`` is the ALSFRS-R :class:`Baseline` used (or None); ``notes`` holds codes such as
    :data:`NOTE_NO_BASELINE` ("no baseline, so the drop flag is off"), each with a message key
    ``flag.note.<code>`` in ``shared/messages/flags.json``.
    """

    def __init__(self, flags: Iterable[Flag] = (), *, baseline: Baseline | None = None,
                 notes: Iterable[str] = ()) -> None:
        super().__init__(flags)
        self.baseline = baseline
        self.notes = tuple(notes)

    @property
    def by_key(self) -> dict[str, Flag]:
        return {f.key: f for f in self}


# --- helpers ---------------------------------------------------------------------------------------

def _dt(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_aware(value)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _order_key(rec: Mapping[str, Any]) -> tuple[datetime, str]:
    return _dt(rec["entered_at"]), str(rec["id"])


def _of_type(records: Iterable[Mapping[str, Any]], rtype: str) -> list[Mapping[str, Any]]:
    return sorted((r for r in records if r.get("type") == rtype), key=_order_key)


def _score(rec: Mapping[str, Any]) -> AlsfrsScore:
    return score_alsfrs_r(rec["payload"]["items"])


def _date(rec: Mapping[str, Any]) -> str:
    d = rec["payload"]["date"]
    return d if isinstance(d, str) else d.isoformat()


def _is_pre_dose(timeline: Timeline, rec: Mapping[str, Any]) -> bool:
    entered = _dt(rec["entered_at"])
    if timeline.dose1_administered_at is not None:
        return entered < timeline.dose1_administered_at
    return timeline.local_date(entered) <= timeline.day1


# --- baseline and client notice --------------------------------------------------------------------

def baseline_alsfrs(protocol: Protocol, timeline: Timeline,
                    records: Iterable[Mapping[str, Any]]) -> Baseline | None:
    """The last accepted ALSFRS-R self-report before dose 1, or None (contract §4).

    "Before dose 1" is ``entered_at`` earlier than dose 1's ``administered_at``; until dose 1 is
    confirmed, any report made on or before the planned first-dose date (participant's zone) counts,
    as in :mod:`shared.schedule`. The latest such report by ``entered_at`` (then ``id``) wins.
    """
    del protocol  # the definition needs no protocol value today; kept for a stable signature
    pre = [r for r in _of_type(records, "alsfrs_r") if _is_pre_dose(timeline, r)]
    if not pre:
        return None
    rec = pre[-1]
    return Baseline(str(rec["id"]), _iso(rec["entered_at"]), _score(rec))


def _notice_thresholds(protocol: Protocol | None) -> tuple[int, int, int]:
    if protocol is None:  # the contract's fixed values (§4 "Safety notice")
        return 3, 1, 2
    return (int(protocol.threshold("symptom_severe")), int(protocol.threshold("allergic_signs_min")),
            int(protocol.threshold("cough_choking_min")))


def _th(protocol: Protocol | None, name: str) -> int:
    flags = protocol.flags if protocol is not None else {}
    return int(flags.get(name, NOTICE_DEFAULTS[name]))


def respiratory_findings(protocol: Protocol | None, items: Mapping[str, int],
                         previous: Mapping[str, int] | None = None) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Breathing items that call for the notice and the urgent flag: ``(low, drops)`` where ``low``
    maps items 10–12 at or below ``respiratory_critical_max`` to their score and ``drops`` maps items
    ``respiratory_drop_points`` or more below the same item of ``previous`` to ``{"from", "to"}``."""
    crit, drop = _th(protocol, "respiratory_critical_max"), _th(protocol, "respiratory_drop_points")
    low = {k: items[k] for k in RESPIRATORY_ITEMS if isinstance(items.get(k), int) and items[k] <= crit}
    drops = {}
    for k in RESPIRATORY_ITEMS:
        if previous and isinstance(previous.get(k), int) and isinstance(items.get(k), int):
            if previous[k] - items[k] >= drop:
                drops[k] = {"from": previous[k], "to": items[k]}
    return low, drops


def safety_notice_needed(record: Mapping[str, Any], protocol: Protocol | None = None,
                         previous: Mapping[str, Any] | None = None) -> bool:
    """Whether the client must show the safety notice on Submit of ``record`` (contract §4).

    True for a nasal diary with any symptom at 3, ``allergic_signs`` >= 1, ``epistaxis_needed_help``
    or ``cough_choking_dosing`` >= 2, for a dose confirmation with a ``coughed_choked`` loss, and for
    an ALSFRS-R with a breathing item (10–12) at 1 or 0 or 2 or more below the same item of
    ``previous`` (the participant's previous ALSFRS-R record, if any; issue 10).
    With ``protocol`` the numbers come from its ``[flags]`` table; without, the contract's values.
    """
    payload = record.get("payload") or {}
    if record.get("type") == "alsfrs_r":
        prev_items = ((previous or {}).get("payload") or {}).get("items")
        low, drops = respiratory_findings(protocol, payload.get("items") or {}, prev_items)
        return bool(low or drops)
    severe, allergic, cough = _notice_thresholds(protocol)
    if record.get("type") == "nasal_symptoms":
        grades = payload.get("symptoms") or {}
        if any(isinstance(g, int) and g >= severe for g in grades.values()):
            return True
        if (grades.get("allergic_signs") or 0) >= allergic:
            return True
        if (grades.get("cough_choking_dosing") or 0) >= cough:
            return True
        return bool(payload.get("epistaxis_needed_help"))
    if record.get("type") == "dose_confirmation":
        return "coughed_choked" in (payload.get("loss") or [])
    return False


# --- the rules -------------------------------------------------------------------------------------

def _flag(rule: str, rec: Mapping[str, Any], detail: dict[str, Any], severity: str | None = None) -> Flag:
    return Flag(rule, str(rec["id"]), severity or RULES[rule], detail)


class _Nasal:
    """Nasal-diary rules, with the pre-dose baseline entry known."""

    def __init__(self, protocol: Protocol, timeline: Timeline, nasal: list[Mapping[str, Any]],
                 doses: list[Mapping[str, Any]]) -> None:
        self.p, self.tl, self.nasal = protocol, timeline, nasal
        self.given_doses = [d for d in doses if d["payload"].get("given") and d["payload"].get("administered_at")]
        items, _ = match_entries(protocol, timeline, [Entry.from_envelope(dict(r)) for r in nasal])
        base_ids = next((i.record_ids for i in items if i.key == "nasal:baseline"), [])
        self.baseline_id = base_ids[0] if base_ids else None
        self.baseline = next((r for r in nasal if str(r["id"]) == self.baseline_id), None)

    def context(self, rec: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        if str(rec["id"]) == self.baseline_id:
            return {"pre_dose_baseline": True}
        if self.baseline is None:
            return {"pre_dose_baseline": False, "baseline_grades": None}
        grades = self.baseline["payload"]["symptoms"]
        return {"pre_dose_baseline": False, "baseline_record_id": self.baseline_id,
                "baseline_grades": {n: grades.get(n) for n in names}}

    def flags(self, rec: Mapping[str, Any]) -> list[Flag]:
        p, out = rec["payload"], []
        grades: dict[str, int | None] = p["symptoms"]
        day = _date(rec)
        severe = int(self.p.threshold("symptom_severe"))
        high = [n for n in NASAL_SYMPTOMS if (grades.get(n) or 0) >= severe]
        if high:
            out.append(_flag("symptom_severe", rec, {
                "date": day, "threshold": severe, "symptoms": high,
                "grades": {n: grades[n] for n in high}, **self.context(rec, high)}))
        allergic_min = int(self.p.threshold("allergic_signs_min"))
        after_dose = False
        if (grades.get("allergic_signs") or 0) >= allergic_min:
            doses = self.doses_within(rec)
            if doses:
                after_dose = True
                out.append(_flag("allergic_after_dose", rec, {
                    "date": day, "threshold": allergic_min, "grade": grades["allergic_signs"],
                    "window_hours": int(self.p.threshold("allergic_window_hours")), "doses": doses,
                    **self.context(rec, ["allergic_signs"])}))
        dlt_min = int(self.p.flags.get("allergic_dlt_min", 2))
        if not after_dose and (grades.get("allergic_signs") or 0) >= dlt_min:
            window = self.in_dlt_window(rec)
            if window is not None:
                out.append(_flag("allergic_in_dlt_window", rec, {
                    "date": day, "threshold": dlt_min, "grade": grades["allergic_signs"],
                    "dlt_starts_at": _iso(window[0]), "dlt_ends_at": _iso(window[1]),
                    **self.context(rec, ["allergic_signs"])}))
        epi_min, help_ = int(self.p.threshold("epistaxis_min")), bool(p.get("epistaxis_needed_help"))
        if (grades.get("epistaxis") or 0) >= epi_min or help_:
            out.append(_flag("epistaxis", rec, {
                "date": day, "threshold": epi_min, "grade": grades.get("epistaxis"), "needed_help": help_,
                **self.context(rec, ["epistaxis"])}, "high" if help_ else "medium"))
        cough_min, cough = int(self.p.threshold("cough_choking_min")), grades.get("cough_choking_dosing")
        if cough is not None and cough >= cough_min:
            out.append(_flag("cough_choking_dosing", rec, {
                "source": "diary", "date": day, "threshold": cough_min, "grade": cough,
                **self.context(rec, ["cough_choking_dosing"])}))
        if p.get("sought_medical_care"):
            out.append(_flag("sought_medical_care", rec, {"date": day, **self.context(rec, [])}))
        return out

    def in_dlt_window(self, rec: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
        """The DLT window ``(start, end)`` when the diary day, up to its entry, overlaps it."""
        start = self.tl.dose1_administered_at
        if start is None:
            return None
        end = start + timedelta(days=self.p.dlt_window_days)
        day_start = _dt(rec["event_time"])
        latest = min(day_start + timedelta(hours=24), _dt(rec["entered_at"]))
        return (start, end) if day_start < end and latest >= start else None

    def doses_within(self, rec: Mapping[str, Any]) -> list[dict[str, Any]]:
        hours = float(self.p.threshold("allergic_window_hours"))
        day_start = _dt(rec["event_time"])
        latest = min(day_start + timedelta(hours=24), _dt(rec["entered_at"]))
        earliest = day_start - timedelta(hours=hours)
        out = []
        for d in self.given_doses:
            at = _dt(d["payload"]["administered_at"])
            if earliest <= at <= latest:
                out.append({"record_id": str(d["id"]), "dose_number": d["payload"]["dose_number"],
                            "administered_at": _iso(d["payload"]["administered_at"])})
        return out

    def second_diaries(self) -> list[Flag]:
        by_date: dict[str, list[Mapping[str, Any]]] = {}
        for r in self.nasal:  # already in (entered_at, id) order
            if str(r["id"]) != self.baseline_id:
                by_date.setdefault(_date(r), []).append(r)
        out = []
        for day, recs in by_date.items():
            for i, r in enumerate(recs[1:], start=1):
                out.append(_flag("second_diary_same_day", r, {
                    "date": day, "count": len(recs), "position": i + 1,
                    "earlier_record_ids": [str(x["id"]) for x in recs[:i]],
                    "pre_dose_baseline_record_id": self.baseline_id}))
        return out


def _dose_flags(protocol: Protocol, rec: Mapping[str, Any]) -> list[Flag]:
    del protocol
    p, out = rec["payload"], []
    if p.get("given") is False:
        out.append(_flag("dose_missed", rec, {
            "dose_number": p["dose_number"], "planned_date": _iso(p["planned_date"]),
            "missed_reason": p.get("missed_reason"), "missed_reason_text": p.get("missed_reason_text") or ""}))
    if "coughed_choked" in (p.get("loss") or []):
        lost = [s for s in ("left", "right") if (p["nostrils"][s].get("retained") is False)]
        out.append(_flag("cough_choking_dosing", rec, {
            "source": "dose", "dose_number": p["dose_number"],
            "administered_at": _iso(p.get("administered_at")), "nostrils_lost": lost}))
    return out


def _alsfrs_flags(protocol: Protocol, alsfrs: list[Mapping[str, Any]],
                  baseline: Baseline | None) -> list[Flag]:
    below = int(protocol.threshold("respiratory_item_below"))
    drop_points = int(protocol.threshold("alsfrs_drop_points"))
    fm_points = int(protocol.flags.get("fine_motor_drop_points", 3))
    swallow_max = int(protocol.flags.get("swallowing_tube_max", 1))
    out: list[Flag] = []
    base_key = (_dt(baseline.entered_at), baseline.record_id) if baseline is not None else None
    previous: Mapping[str, Any] | None = None
    for rec in alsfrs:
        score = _score(rec)
        items = rec["payload"]["items"]
        crit, drops = respiratory_findings(protocol, items, previous["payload"]["items"] if previous else None)
        if crit or drops:
            out.append(_flag("respiratory_critical", rec, {
                "threshold": _th(protocol, "respiratory_critical_max"),
                "drop_threshold": _th(protocol, "respiratory_drop_points"), "items": crit, "drops": drops,
                "previous_record_id": str(previous["id"]) if previous else None,
                "respiratory": score.respiratory}))
        if isinstance(items.get("3"), int) and items["3"] <= swallow_max and rec["payload"].get("gastrostomy") is False:
            out.append(_flag("swallowing_tube_feeding", rec, {
                "threshold": swallow_max, "item": items["3"], "gastrostomy": False}))
        low = {k: items[k] for k in RESPIRATORY_ITEMS if items[k] < below}
        if low:
            out.append(_flag("respiratory_item_low", rec, {
                "threshold": below, "items": low, "respiratory": score.respiratory, "total": score.total,
                "is_baseline": baseline is not None and str(rec["id"]) == baseline.record_id}))
        if previous is not None:
            prev_scale = _score(previous).scale
            if prev_scale != score.scale:
                out.append(_flag("alsfrs_scale_switch", rec, {
                    "from": prev_scale, "to": score.scale, "previous_record_id": str(previous["id"]),
                    "gastrostomy": rec["payload"].get("gastrostomy"),
                    "baseline_scale": baseline.scale if baseline else None}))
        if base_key is not None and _order_key(rec) > base_key:
            # totals and the fine-motor domain with whichever item 5 applies, also across a 5a/5b switch
            drop = baseline.total - score.total
            fm_drop = baseline.score.fine_motor - score.fine_motor
            if drop >= drop_points or fm_drop >= fm_points:
                out.append(_flag("alsfrs_drop", rec, {
                    "threshold": drop_points, "total": score.total, "baseline_total": baseline.total,
                    "drop": drop, "scale": score.scale, "baseline_record_id": baseline.record_id,
                    "baseline_entered_at": baseline.entered_at, "baseline_scale": baseline.scale,
                    "fine_motor": score.fine_motor, "baseline_fine_motor": baseline.score.fine_motor,
                    "fine_motor_drop": fm_drop, "fine_motor_threshold": fm_points}))
        previous = rec
    return out


def _as_baseline(value: Any) -> Baseline:
    if isinstance(value, Baseline):
        return value
    if isinstance(value, Mapping) and value.get("type") == "alsfrs_r":
        return Baseline(str(value["id"]), _iso(value["entered_at"]), _score(value))
    raise TypeError("baseline must be a Baseline or an alsfrs_r record")


def evaluate_flags(protocol: Protocol, timeline: Timeline, records: Iterable[Mapping[str, Any]],
                   baseline: Baseline | Mapping[str, Any] | None = None) -> FlagList:
    """Every safety flag raised by a participant's accepted records (see the module docstring).

    ``baseline`` defaults to :func:`baseline_alsfrs`; pass a :class:`Baseline` or an ``alsfrs_r``
    record to override it. The result is a :class:`FlagList` ordered by record (``entered_at``,
    ``id``) then rule, whose ``notes`` contain :data:`NOTE_NO_BASELINE` when there is no baseline.
    """
    recs = [r for r in records if r.get("type") in ("alsfrs_r", "nasal_symptoms", "dose_confirmation")]
    base = _as_baseline(baseline) if baseline is not None else baseline_alsfrs(protocol, timeline, recs)
    nasal, doses, alsfrs = (_of_type(recs, t) for t in ("nasal_symptoms", "dose_confirmation", "alsfrs_r"))
    flags: list[Flag] = []
    n = _Nasal(protocol, timeline, nasal, doses)
    for rec in nasal:
        flags.extend(n.flags(rec))
    flags.extend(n.second_diaries())
    for rec in doses:
        flags.extend(_dose_flags(protocol, rec))
    by_id = {str(r["id"]): r for r in doses}
    for rid, finding in dose_findings(protocol, timeline, doses).items():
        if finding.labels:
            flags.append(_flag("dose_off_schedule", by_id[rid], finding.detail()))
    flags.extend(_alsfrs_flags(protocol, alsfrs, base))
    when = {str(r["id"]): _order_key(r) for r in recs}
    urgent = protocol.flags.get("urgent") or {}
    flags = [f if not urgent.get(f.rule) else Flag(f.rule, f.record_id, f.severity, f.detail, f.key, True)
             for f in flags]
    flags.sort(key=lambda f: (when[f.record_id], _ORDER[f.rule]))
    return FlagList(flags, baseline=base, notes=() if base is not None else (NOTE_NO_BASELINE,))



# --- wording for the staff page ---------------------------------------------------------------------

def _names(kind: str, lang: str) -> dict[str, str]:
    from shared.instruments import load_instrument
    if kind == "symptom":
        inst = load_instrument("nasal_symptoms")
        return {s["name"]: inst.text(s["title"], lang) for s in inst.content["symptoms"]}
    if kind == "item":
        inst = load_instrument("alsfrs_r")
        return {i["id"]: inst.text(i["title"], lang) for i in inst.content["items"]}
    inst = load_instrument("dose_confirmation")
    return {k: inst.text(v, lang) for k, v in inst.content["missed_reasons"].items()}


def _when(value: Any) -> str:
    """``2026-03-05T09:30:00+08:00`` → ``2026-03-05 09:30 +08:00`` for reading on a page."""
    try:
        moment = _dt(value)
    except (TypeError, ValueError):
        return str(value)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _join(parts: Iterable[str], lang: str) -> str:
    return ("、" if lang == "zh-CN" else ", ").join(parts)


def describe_flag(flag: Flag, lang: str = "en") -> dict[str, Any]:
    """Title, explanation and extra sentences for a flag, in ``lang`` (messages in ``flags.json``).

    Returns ``{"title", "explanation", "extra": [str, …], "severity": label}``; the wording is meant
    to let a reviewer understand from the page alone why the flag was raised.
    """
    from shared.messages import normalize_language, t
    lang = normalize_language(lang)
    d, rule = flag.detail, flag.rule
    symptoms = _names("symptom", lang)
    params: dict[str, Any] = {k: v for k, v in d.items() if isinstance(v, (str, int, float))}
    key = flag.explanation_key
    if rule == "symptom_severe":
        params["symptoms"] = _join((f"{symptoms.get(n, n)} ({g})" for n, g in d["grades"].items()), lang)
    elif rule == "allergic_after_dose":
        params["doses"] = _join((t("flag.dose_given_at", lang, n=x["dose_number"], at=_when(x["administered_at"]))
                                 for x in d["doses"]), lang)
    elif rule == "cough_choking_dosing" and d.get("source") == "dose":
        key = f"{key}_dose"
        params["administered_at"] = _when(d["administered_at"])
    elif rule == "respiratory_item_low":
        items = _names("item", lang)
        params["items"] = _join((f"{items.get(k, k)} ({t('flag.item', lang, n=k)}) = {v}"
                                 for k, v in d["items"].items()), lang)
    elif rule == "alsfrs_drop":
        params["baseline_date"] = str(d["baseline_entered_at"])[:10]
    elif rule == "dose_missed":
        reasons = _names("reason", lang)
        reason = reasons.get(d.get("missed_reason") or "", t("flag.reason_not_given", lang))
        text = d.get("missed_reason_text")
        params["reason"] = f"{reason}: {text}" if text else reason
    elif rule == "alsfrs_scale_switch":
        params["from_scale"], params["to_scale"] = d["from"], d["to"]
    elif rule == "respiratory_critical":
        items = _names("item", lang)
        name = lambda k: f"{items.get(k, k)} ({t('flag.item', lang, n=k)})"  # noqa: E731
        params["items"] = _join([*(t("flag.respiratory_critical.low", lang, item=name(k), value=v)
                                   for k, v in d["items"].items()),
                                 *(t("flag.respiratory_critical.drop", lang, item=name(k), old=x["from"], new=x["to"])
                                   for k, x in d["drops"].items())], lang)
    elif rule == "allergic_in_dlt_window":
        params["dlt_start"], params["dlt_end"] = _when(d["dlt_starts_at"]), _when(d["dlt_ends_at"])
    elif rule == "dose_off_schedule":
        params["administered_at"] = _when(d["administered_at"])
        params["planned_day"] = "–" if d.get("planned_day") is None else d["planned_day"]
        params["min_hours"] = d.get("min_interval_hours") or "–"
        params["findings"] = _join((t(f"flag.dose_finding.{code}", lang, hours=d.get("hours_since_previous"))
                                    for code in d["labels"]), lang)
    extra: list[str] = []
    if d.get("pre_dose_baseline"):
        extra.append(t("flag.extra.pre_dose_baseline", lang))
    elif d.get("baseline_grades"):
        extra.append(t("flag.extra.baseline_grades", lang, grades=_join(
            (f"{symptoms.get(n, n)} ({'–' if g is None else g})" for n, g in d["baseline_grades"].items()), lang)))
    elif "baseline_grades" in d and rule != "sought_medical_care":
        extra.append(t("flag.extra.no_nasal_baseline", lang))
    if rule == "epistaxis" and d.get("needed_help"):
        extra.append(t("flag.extra.epistaxis_needed_help", lang))
    if rule == "respiratory_item_low" and d.get("is_baseline"):
        extra.append(t("flag.extra.respiratory_at_baseline", lang))
    if rule == "alsfrs_scale_switch":
        extra.append(t("flag.extra.scale_switch_drop", lang))
    if rule == "alsfrs_drop" and "fine_motor" in d:
        extra.append(t("flag.extra.drop_fine_motor", lang, value=d["fine_motor"], drop=d["fine_motor_drop"],
                       baseline=d["baseline_fine_motor"], threshold=d["fine_motor_threshold"]))
        if d.get("baseline_scale") and d["baseline_scale"] != d["scale"]:
            extra.append(t("flag.extra.drop_across_switch", lang, from_scale=d["baseline_scale"], to_scale=d["scale"]))
    if rule == "dose_off_schedule" and d.get("matched_dose") not in (None, d["dose_number"]):
        extra.append(t("flag.extra.dose_matches_other", lang, n=d["matched_dose"]))
    return {"title": t(flag.title_key, lang), "explanation": t(key, lang, **params), "extra": extra,
            "severity": t(f"flag.severity.{flag.severity}", lang)}


def describe_note(note: str, lang: str = "en") -> str:
    """The sentence for a :class:`FlagList` note, e.g. :data:`NOTE_NO_BASELINE`."""
    from shared.messages import t
    return t(f"flag.note.{note}", lang)
