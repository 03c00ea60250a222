"""Validation of export files against the official schemas kept beside the repository, offline.

``../shared/standards/`` (next to the repository) holds the CDISC ODM 1.3.2 XSD set and the HL7 FHIR R4
JSON schema; ``ALS_EPRO_STANDARDS`` may point elsewhere. Both are loaded once per process, with a
parser that never touches the network. :func:`standards_dir` returns None when the folder is absent
(without any of them validation is skipped and the manifest says so). A copy ships in
``server/exports/standards/``, so an installed server validates its exports too.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
ODM_XSD = "odm-1.3.2/ODM1-3-2.xsd"
FHIR_SCHEMA = "fhir-r4/fhir.schema.json"


def standards_dir() -> Path | None:
    env = os.environ.get("ALS_EPRO_STANDARDS")
    candidates = [Path(env)] if env else []
    root = Path(__file__).resolve().parents[2]
    # the team's reference copy beside the repository, then the copy shipped in this package
    candidates += [root.parent / "shared" / "standards", Path(__file__).resolve().parent / "standards"]
    for c in candidates:
        if (c / ODM_XSD).is_file() and (c / FHIR_SCHEMA).is_file():
            return c
    return None


def _require_standards() -> Path:
    found = standards_dir()
    if found is None:
        raise FileNotFoundError("standards folder not found (set ALS_EPRO_STANDARDS)")
    return found


def safe_parser() -> etree.XMLParser:
    """An XML parser that never fetches anything and does not expand entities."""
    return etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False)


@lru_cache(maxsize=1)
def odm_schema() -> etree.XMLSchema:
    path = _require_standards() / ODM_XSD
    return etree.XMLSchema(etree.parse(str(path), safe_parser()))


def validate_odm(source: str | Path | bytes | etree._ElementTree) -> list[str]:
    """XSD errors of an ODM document (empty when valid), plus reference and time-order problems."""
    try:
        if isinstance(source, etree._ElementTree):
            tree = source
        elif isinstance(source, bytes):
            tree = etree.ElementTree(etree.fromstring(source, safe_parser()))
        else:
            tree = etree.parse(str(source), safe_parser())
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    schema = odm_schema()
    problems = [] if schema.validate(tree) else [
        f"line {e.line}: {e.message}" for e in schema.error_log]  # type: ignore[attr-defined]
    return problems + odm_reference_problems(tree)


def _q(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


def odm_reference_problems(tree: etree._ElementTree) -> list[str]:
    """What the XSD cannot check: every OID reference resolves, and DateTimeStamps are in order (§2.10)."""
    root = tree.getroot()
    problems: list[str] = []
    defined = {kind: {e.get("OID") for e in root.iter(_q(kind))}
               for kind in ("ItemDef", "ItemGroupDef", "FormDef", "StudyEventDef", "CodeList", "User",
                            "Location", "MethodDef", "SignatureDef")}
    refs = [("ItemData", "ItemOID", "ItemDef"), ("ItemRef", "ItemOID", "ItemDef"),
            ("ItemGroupData", "ItemGroupOID", "ItemGroupDef"), ("ItemGroupRef", "ItemGroupOID", "ItemGroupDef"),
            ("FormData", "FormOID", "FormDef"), ("FormRef", "FormOID", "FormDef"),
            ("StudyEventData", "StudyEventOID", "StudyEventDef"), ("StudyEventRef", "StudyEventOID", "StudyEventDef"),
            ("CodeListRef", "CodeListOID", "CodeList"), ("UserRef", "UserOID", "User"),
            ("SignatureRef", "SignatureOID", "SignatureDef"),
            ("LocationRef", "LocationOID", "Location"), ("SiteRef", "LocationOID", "Location"),
            ("ItemRef", "MethodOID", "MethodDef")]
    for tag, attr, kind in refs:
        for e in root.iter(_q(tag)):
            value = e.get(attr)
            if value is not None and value not in defined[kind]:
                problems.append(f"{tag} {attr}={value!r} has no {kind}")
    created = root.get("CreationDateTime")
    created_at = datetime.fromisoformat(created) if created else None
    last: dict[tuple[str, str, str], datetime] = {}
    for form in root.iter(_q("FormData")):
        subject = form.getparent().getparent()
        key = (subject.get("SubjectKey") or "", form.get("FormOID") or "", form.get("FormRepeatKey") or "")
        for stamp in form.iterfind(f"{_q('AuditRecord')}/{_q('DateTimeStamp')}"):
            moment = datetime.fromisoformat(stamp.text or "")
            if created_at is not None and moment > created_at:
                problems.append(f"FormData {key[2]}: DateTimeStamp {stamp.text} is after the file's CreationDateTime")
            if key in last and moment < last[key]:
                problems.append(f"FormData {key[2]}: DateTimeStamps are not in increasing order")
            last[key] = moment
    return problems


# --- FHIR ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def fhir_schema() -> dict[str, Any]:
    return json.loads((_require_standards() / FHIR_SCHEMA).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _fhir_validator(resource_type: str | None):
    from jsonschema import Draft6Validator
    schema = fhir_schema()
    if resource_type is None:
        return Draft6Validator(schema)
    # the same schema, entered at one resource's definition: errors then name the offending field
    return Draft6Validator({"$ref": f"#/definitions/{resource_type}", "definitions": schema["definitions"]})


def validate_fhir(resource: dict[str, Any], *, through_root: bool = False) -> list[str]:
    """FHIR R4 JSON-schema errors of one resource (empty when valid).

    The schema's root is a ``oneOf`` over every resource definition, each pinned by a ``const``
    ``resourceType``, so validating against the resource's own definition is equivalent and about
    thirty times faster; a Bundle's entries are validated the same way, one by one, and the Bundle
    without them. ``through_root=True`` validates through the root schema exactly as the standards
    README prescribes (slow for a large Bundle; the tests use it to confirm the equivalence).
    """
    if through_root:
        return [e.message[:300] for e in _fhir_validator(None).iter_errors(resource)]
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or rtype not in fhir_schema()["discriminator"]["mapping"]:
        return [f"unknown resourceType {rtype!r}"]
    problems: list[str] = []
    if rtype == "Bundle":
        entries = resource.get("entry")
        if isinstance(entries, list):
            shell = dict(resource, entry=[{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                                          for e in entries])
            for i, e in enumerate(entries):
                if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                    problems += [f"entry/{i}/resource/{p}" for p in validate_fhir(e["resource"])]
            resource = shell
    problems += [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
                 for e in _fhir_validator(rtype).iter_errors(resource)]
    return problems
