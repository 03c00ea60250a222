"""When the client shows the safety notice after Submit (contract §4), and what it names.

The notice is due on an entry with a symptom at 3, ``allergic_signs`` ≥ 1, ``epistaxis_needed_help``,
``cough_choking_dosing`` ≥ 2 or a ``coughed_choked`` loss. ``shared.flags.safety_notice_needed`` is the
team's one definition once it exists; until then :func:`_local_needed` implements the same conditions.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from shared.vocab import NASAL_SYMPTOMS


def safety_findings(record: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """What the person reported that calls for the notice: (message key, params); ``symptom`` is a
    symptom code the screen words from the instrument file."""
    payload = record.get("payload") or {}
    out: list[tuple[str, dict[str, Any]]] = []
    if record.get("type") == "nasal_symptoms":
        symptoms = payload.get("symptoms") or {}
        for name in NASAL_SYMPTOMS:
            grade = symptoms.get(name)
            if grade is None:
                continue
            if grade >= 3:
                out.append(("safety.finding.severe", {"symptom": name}))
            elif name == "allergic_signs" and grade >= 1:
                out.append(("safety.finding.allergic", {}))
            elif name == "cough_choking_dosing" and grade >= 2:
                out.append(("safety.finding.cough_choking", {}))
        if payload.get("epistaxis_needed_help"):
            out.append(("safety.finding.epistaxis_help", {}))
    elif record.get("type") == "dose_confirmation":
        if "coughed_choked" in (payload.get("loss") or []):
            out.append(("safety.finding.dose_coughed_choked", {}))
    return out


def _local_needed(record: Mapping[str, Any]) -> bool:
    return bool(safety_findings(record))


def _shared_rule() -> Callable[[Mapping[str, Any]], bool] | None:
    try:
        from shared.flags import safety_notice_needed  # type: ignore[attr-defined]
    except ImportError:
        return None
    return safety_notice_needed


def safety_notice_needed(record: Mapping[str, Any]) -> bool:
    rule = _shared_rule()
    return bool(rule(record)) if rule is not None else _local_needed(record)
