"""When the client shows the safety notice after Submit (contract §4), and what it names.

``shared.flags.safety_notice_needed`` is the team's one definition of *when*; :func:`safety_findings`
says *what* the person reported, in words, with the same thresholds (the protocol's ``[flags]``).
"""

from __future__ import annotations

from typing import Any, Mapping

from shared.flags import respiratory_findings, safety_notice_needed as _needed
from shared.protocol import Protocol
from shared.vocab import NASAL_SYMPTOMS


_KEYS = ("symptom_severe", "allergic_signs_min", "cough_choking_min")


def _usable(protocol: Protocol | None) -> Protocol | None:
    """The protocol when its ``[flags]`` name all three thresholds, else None (the contract's values)."""
    return protocol if protocol is not None and all(k in protocol.flags for k in _KEYS) else None


def _thresholds(protocol: Protocol | None) -> tuple[int, int, int]:
    flags = protocol.flags if protocol is not None else {}
    return (int(flags.get("symptom_severe", 3)), int(flags.get("allergic_signs_min", 1)),
            int(flags.get("cough_choking_min", 2)))


def previous_alsfrs(store: Any, envelope: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ALSFRS-R entry made on this computer just before ``envelope`` (for the breathing drop rule)."""
    if envelope.get("type") != "alsfrs_r":
        return None
    from shared.schemas.fields import parse_aware

    def key(env: Mapping[str, Any]) -> tuple:
        return parse_aware(env["entered_at"]), env.get("device_seq") or 0

    mine = key(envelope)
    earlier = [e.envelope for e in store.outbox.entries(store.device_id or "")
               if e.envelope.get("type") == "alsfrs_r" and e.envelope.get("id") != envelope.get("id")
               and key(e.envelope) < mine]
    return max(earlier, key=key, default=None)


def safety_findings(record: Mapping[str, Any], protocol: Protocol | None = None,
                    previous: Mapping[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """What the person reported that calls for the notice: (message key, params); ``symptom`` is a
    symptom code and ``item`` an ALSFRS-R item key, which the screen words from the instrument file."""
    severe, allergic, cough = _thresholds(_usable(protocol))
    payload = record.get("payload") or {}
    out: list[tuple[str, dict[str, Any]]] = []
    if record.get("type") == "alsfrs_r":
        prev_items = ((previous or {}).get("payload") or {}).get("items")
        low, drops = respiratory_findings(protocol, payload.get("items") or {}, prev_items)
        out += [("safety.finding.breathing_low", {"item": k}) for k in low]
        out += [("safety.finding.breathing_drop", {"item": k}) for k in drops if k not in low]
        return out
    if record.get("type") == "nasal_symptoms":
        symptoms = payload.get("symptoms") or {}
        for name in NASAL_SYMPTOMS:
            grade = symptoms.get(name)
            if grade is None:
                continue
            if grade >= severe:
                out.append(("safety.finding.severe", {"symptom": name}))
            elif name == "allergic_signs" and grade >= allergic:
                out.append(("safety.finding.allergic", {}))
            elif name == "cough_choking_dosing" and grade >= cough:
                out.append(("safety.finding.cough_choking", {}))
        if payload.get("epistaxis_needed_help"):
            out.append(("safety.finding.epistaxis_help", {}))
    elif record.get("type") == "dose_confirmation":
        if "coughed_choked" in (payload.get("loss") or []):
            out.append(("safety.finding.dose_coughed_choked", {}))
    return out


def safety_notice_needed(record: Mapping[str, Any], protocol: Protocol | None = None,
                         previous: Mapping[str, Any] | None = None) -> bool:
    return bool(_needed(record, _usable(protocol), previous))
