"""The export dataset: the one plain dict every export function reads (no Flask, no database).

The server builds it from its store for one site (``als-epro-server export --site CODE``); the export
functions in this package only read it. Shape (``TypedDict`` definitions below)::

    {
      "study": {"protocol_id": "NCT06598202", "protocol_version": "draft-1",
                "site": {"code": "BJ01", "name": "..."}, "demo": false},
      "generated_at": "2026-04-01T02:00:00Z",          # UTC, after every timestamp in the data
      "generated_by": "investigator@site.example",     # who ran the export (staff id or e-mail)
      "software_version": "0.1.0",
      "participants": [{"subject": "P-001", "site": "BJ01", "status": "enrolled",
                        "onset": "2025-06" | "2025-06-10", "first_dose_date": "2026-03-02",
                        "tz": "Asia/Shanghai", "enrolled_at": "<UTC>", "enrolled_by": <Actor>}],   # last two optional
      "records": [{
          "id": "<uuid>", "type": "alsfrs_r" | "nasal_symptoms" | "dose_confirmation",
          "participant": "P-001", "respondent": "participant" | "caregiver" | "participant_assisted",
          "instrument_version": "alsfrs-r/cedarbaum-1999/zh-CN/draft-1", "schema_version": 1,
          "event_time": "<as received>", "entered_at": "<as received>",
          "received_at": "<server UTC>", "server_seq": 17, "sha256": "<of the first version received>",
          "originator": {"kind": "device" | "staff", "id": "D-7", "role": "participant", "name": None},
          "labels": ["late", ...],
          "versions": [
            {"version": 1, "payload": {...as received...}, "created_at": "<= received_at>",
             "created_by": <originator>, "requested_by": None, "reason": None, "changes": []},
            {"version": 2, "payload": {...whole corrected payload...}, "created_at": "<server UTC>",
             "created_by": {"kind": "staff", "id": "coord@site", "role": "coordinator", "name": "..."},
             "requested_by": "participant, by phone", "reason": "pressed the wrong answer",
             "changes": [{"field": "symptoms.epistaxis", "old": 3, "new": 2}]}]}],
      "audit": [{"seq": 1, "at": "<UTC>", "actor": "coord@site", "action": "record.correct",
                 "entity": "record", "entity_id": "<uuid>", "detail": {...} | "text"}]
    }

Rules the builder must keep (checked by :func:`check_dataset`, which every export runs first):

- versions are numbered 1, 2, … in order; version 1 is the payload as received; every later version
  holds the whole payload and has a non-empty ``reason``; ``changes`` equal
  :func:`diff_payloads` of the previous and this version's payload in effect (use it to build them). A
  change ``field`` is a dotted path inside the payload (``items.5a``, ``symptoms.epistaxis``,
  ``nostrils.left.retained``, ``loss``); a leading ``payload.`` is accepted, and a change may set a
  whole object (``nostrils.left``);
- ``created_by`` and ``originator`` are :class:`Actor` dicts (or ``"kind:id"`` strings); for version 1
  ``created_by`` is the originator, i.e. the device with ``role`` participant or caregiver;
- no key anywhere names an arm, cohort, dose level, concentration or product (:data:`FORBIDDEN_KEYS`):
  the exports refuse such a dataset (masking, BL-01).
"""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from typing import Any, Iterable, Literal, Mapping, NotRequired, TypedDict

from shared.schedule import Timeline
from shared.schemas.fields import parse_aware


class Site(TypedDict):
    code: str
    name: str


class StudyInfo(TypedDict):
    protocol_id: str
    protocol_version: str
    site: Site
    demo: bool


class Participant(TypedDict):
    subject: str
    site: str
    status: str                  # e.g. "enrolled", "withdrawn"
    onset: str                   # "YYYY-MM" or "YYYY-MM-DD"
    first_dose_date: str         # "YYYY-MM-DD", planned (dose 1 as given comes from the dose records)
    tz: str                      # IANA zone, e.g. "Asia/Shanghai"
    enrolled_at: NotRequired[str]          # UTC; the ODM subject's AuditRecord (else the first receipt)
    enrolled_by: NotRequired["Actor"]      # staff who enrolled (else the system user)
    day1_confirmed: NotRequired[str]       # "YYYY-MM-DD": study day 1 as staff confirmed it (issue 10 §2)


class Actor(TypedDict):
    """Who made data: a device (for the participant or a caregiver), a staff member, the command line or
    a system job. A string ``"kind:id"`` (the store's ``str(Actor)``) is accepted wherever an Actor is."""

    kind: Literal["device", "staff", "cli", "system"]
    id: str
    role: str                    # device: participant | caregiver; staff: investigator | coordinator | ...
    name: NotRequired[str | None]


class Change(TypedDict):
    field: str
    old: Any
    new: Any


class Version(TypedDict):
    version: int
    payload: dict[str, Any]
    created_at: str
    created_by: Actor
    requested_by: str | None
    reason: str | None
    changes: list[Change]


class Record(TypedDict):
    id: str
    type: str
    participant: str
    respondent: str
    instrument_version: str
    schema_version: int
    event_time: str
    entered_at: str
    received_at: str
    server_seq: int
    sha256: str
    originator: Actor
    labels: list[str]
    versions: list[Version]


class AuditEntry(TypedDict):
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: Any


class ExportDataset(TypedDict):
    study: StudyInfo
    generated_at: str
    generated_by: str
    software_version: str
    participants: list[Participant]
    records: list[Record]
    audit: list[AuditEntry]


#: key names that would carry allocation or product information (masking): never in a dataset
FORBIDDEN_KEYS = frozenset({
    "arm", "arms", "cohort", "cohort_id", "dose_level", "doselevel", "concentration", "product",
    "product_name", "treatment", "treatment_arm", "allocation", "randomisation", "randomization",
    "kit_arm", "part",
})

DEMO_MARKER = "DEMO — synthetic data"


# --- payload paths ----------------------------------------------------------------------------------

def payload_paths(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a payload to ``{"items.5a": 3, "nostrils.left.given": True, "loss": [...]}``."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(payload_paths(value, f"{path}."))
        else:
            out[path] = value
    return out


def normalize_field(name: str) -> str:
    return name[len("payload."):] if name.startswith("payload.") else name


def diff_payloads(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """The field changes from ``old`` to ``new`` (a path missing on one side has value None)."""
    a, b = payload_paths(old), payload_paths(new)
    return [Change(field=k, old=a.get(k), new=b.get(k))
            for k in sorted(set(a) | set(b), key=_path_order) if a.get(k) != b.get(k) or (k in a) != (k in b)]


def _path_order(path: str) -> list[tuple[int, int | str]]:
    return [(0, int(m.group(1)), m.group(2)) if (m := re.fullmatch(r"(\d+)(\w*)", p)) else (1, 0, p)
            for p in path.split(".")]


def with_path(payload: Mapping[str, Any], field: str, value: Any) -> dict[str, Any]:
    """A copy of ``payload`` with the dotted ``field`` set to ``value`` (None removes an item score)."""
    out = copy.deepcopy(dict(payload))
    parts = normalize_field(field).split(".")
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None and parts[0] == "items":
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out


def _change_leaves(changes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{leaf path: new value}`` of a change list, objects set whole expanded to their leaves."""
    out: dict[str, Any] = {}
    for c in changes:
        field = normalize_field(str(c["field"]))
        old, new = c.get("old"), c.get("new")
        if isinstance(new, Mapping) or isinstance(old, Mapping):
            a = payload_paths(old, f"{field}.") if isinstance(old, Mapping) else {}
            b = payload_paths(new, f"{field}.") if isinstance(new, Mapping) else {}
            out.update({k: b.get(k) for k in set(a) | set(b) if a.get(k) != b.get(k) or (k in a) != (k in b)})
        else:
            out[field] = new
    return out


def as_actor(value: Any) -> Actor:
    """An :class:`Actor` dict from a dict or a ``"kind:id"`` string; ValueError otherwise."""
    if isinstance(value, Mapping) and value.get("kind") and value.get("id") is not None:
        return Actor(kind=value["kind"], id=str(value["id"]), role=str(value.get("role") or value["kind"]),
                     name=value.get("name"))
    if isinstance(value, str) and value:
        kind, _, ident = value.partition(":")
        return Actor(kind=kind, id=ident or kind, role=kind, name=None)  # type: ignore[typeddict-item]
    raise ValueError(f"not an actor: {value!r}")


# --- record access ----------------------------------------------------------------------------------

def current_version(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return max(record["versions"], key=lambda v: v["version"])


def current_envelope(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as an envelope dict with its current payload (what :func:`shared.flags.evaluate_flags` reads)."""
    env = {k: v for k, v in record.items() if k != "versions"}
    env["payload"] = copy.deepcopy(current_version(record)["payload"])
    return env


def parse_time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else parse_aware(value)


def participant_timeline(participant: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> Timeline:
    """The participant's :class:`Timeline`: planned first dose, zone, dose 1 as given, and study day 1 as
    staff confirmed it (``day1_confirmed``; without it day 1 is dose 1's local date, else the plan)."""
    dose1 = [current_version(r)["payload"] for r in records
             if r["participant"] == participant["subject"] and r["type"] == "dose_confirmation"]
    given = sorted(parse_time(p["administered_at"]) for p in dose1
                   if p.get("dose_number") == 1 and p.get("given") and p.get("administered_at"))
    confirmed = participant.get("day1_confirmed")
    return Timeline(date.fromisoformat(participant["first_dose_date"]), participant.get("tz") or "Asia/Shanghai",
                    given[0] if given else None, date.fromisoformat(confirmed) if confirmed else None)


def records_by_participant(dataset: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {p["subject"]: [] for p in dataset["participants"]}
    for r in sorted(dataset["records"], key=lambda r: (r["server_seq"], r["id"])):
        out.setdefault(r["participant"], []).append(r)
    return out


def draft_instrument_versions(dataset: Mapping[str, Any]) -> list[str]:
    """The distinct ``instrument_version`` values that end in ``draft-N`` (contract §4)."""
    return sorted({r["instrument_version"] for r in dataset["records"]
                   if re.search(r"draft-\d+$", r["instrument_version"])})


# --- checks ------------------------------------------------------------------------------------------

def _forbidden_keys(obj: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            here = f"{path}.{key}" if path else str(key)
            if str(key).lower() in FORBIDDEN_KEYS:
                found.append(here)
            found.extend(_forbidden_keys(value, here))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found.extend(_forbidden_keys(value, f"{path}[{i}]"))
    return found


_TOP = ("study", "generated_at", "generated_by", "software_version", "participants", "records", "audit")
_RECORD = ("id", "type", "participant", "respondent", "instrument_version", "schema_version", "event_time",
           "entered_at", "received_at", "server_seq", "sha256", "originator", "labels", "versions")


def check_dataset(dataset: Mapping[str, Any]) -> list[str]:
    """Problems that make a dataset unfit for export (empty list when fine)."""
    problems = [f"missing key {k!r}" for k in _TOP if k not in dataset]
    if problems:
        return problems
    problems += [f"masking: key {p!r} is not allowed in an export" for p in _forbidden_keys(dataset)]
    try:
        generated = parse_time(dataset["generated_at"])
    except (TypeError, ValueError):
        return problems + ["generated_at must be an ISO 8601 time with an offset"]
    subjects = {p["subject"] for p in dataset["participants"]}
    seen: set[str] = set()
    for r in dataset["records"]:
        rid = r.get("id", "?")
        missing = [k for k in _RECORD if k not in r]
        if missing:
            problems.append(f"record {rid}: missing {', '.join(missing)}")
            continue
        if rid in seen:
            problems.append(f"record {rid}: listed twice")
        seen.add(rid)
        if r["participant"] not in subjects:
            problems.append(f"record {rid}: participant {r['participant']!r} is not in participants")
        versions = r["versions"]
        try:
            as_actor(r["originator"])
            for v in versions:
                as_actor(v["created_by"])
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"record {rid}: {exc}")
            continue
        if [v["version"] for v in versions] != list(range(1, len(versions) + 1)):
            problems.append(f"record {rid}: versions must be numbered 1..n in order")
            continue
        if parse_time(r["received_at"]) > generated:
            problems.append(f"record {rid}: received after generated_at")
        for prev, v in zip(versions, versions[1:]):
            if not (v.get("reason") or "").strip():
                problems.append(f"record {rid} v{v['version']}: a correction needs a reason")
            want = {c["field"]: c["new"] for c in diff_payloads(prev["payload"], v["payload"])}
            if _change_leaves(v["changes"]) != want:
                problems.append(f"record {rid} v{v['version']}: changes do not match the payloads")
            if parse_time(v["created_at"]) > generated:
                problems.append(f"record {rid} v{v['version']}: created after generated_at")
    return problems


class DatasetError(ValueError):
    """Raised by the exports for a dataset that :func:`check_dataset` finds unfit."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def require_valid(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Check the dataset (:class:`DatasetError` if unfit) and return a normalised deep copy: actors as
    :class:`Actor` dicts, change fields without a ``payload.`` prefix, versions in order."""
    problems = check_dataset(dataset)
    if problems:
        raise DatasetError(problems)
    out = copy.deepcopy(dict(dataset))
    for r in out["records"]:
        r["originator"] = as_actor(r["originator"])
        r["versions"] = sorted(r["versions"], key=lambda v: v["version"])
        for v in r["versions"]:
            v["created_by"] = as_actor(v["created_by"])
            v["changes"] = [{**c, "field": normalize_field(str(c["field"]))} for c in v.get("changes") or []]
    for p in out["participants"]:
        if p.get("enrolled_by"):
            p["enrolled_by"] = as_actor(p["enrolled_by"])
    return out
