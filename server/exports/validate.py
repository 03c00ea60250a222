"""Validation of export files against the official schemas kept beside the repository, offline.

``../shared/standards/`` (next to the repository) holds the CDISC ODM 1.3.2 XSD set and the HL7 FHIR R4
JSON schema; ``ALS_EPRO_STANDARDS`` may point elsewhere. Both are loaded once per process, with a
parser that never touches the network. :func:`standards_dir` returns None when the folder is absent
(without any of them validation is skipped and the manifest says so). A copy ships in
``server/exports/standards/``, so an installed server validates its exports too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

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
    return _reference_problems(root, _defined(root)) + _order_problems(root, _created_at(root))


_DEFINED_KINDS = ("ItemDef", "ItemGroupDef", "FormDef", "StudyEventDef", "CodeList", "User", "Location", "MethodDef",
                  "SignatureDef")
_REFS = [("ItemData", "ItemOID", "ItemDef"), ("ItemRef", "ItemOID", "ItemDef"),
         ("ItemGroupData", "ItemGroupOID", "ItemGroupDef"), ("ItemGroupRef", "ItemGroupOID", "ItemGroupDef"),
         ("FormData", "FormOID", "FormDef"), ("FormRef", "FormOID", "FormDef"),
         ("StudyEventData", "StudyEventOID", "StudyEventDef"), ("StudyEventRef", "StudyEventOID", "StudyEventDef"),
         ("CodeListRef", "CodeListOID", "CodeList"), ("UserRef", "UserOID", "User"),
         ("SignatureRef", "SignatureOID", "SignatureDef"),
         ("LocationRef", "LocationOID", "Location"), ("SiteRef", "LocationOID", "Location"),
         ("ItemRef", "MethodOID", "MethodDef")]


def _defined(root: etree._Element) -> dict[str, set[str | None]]:
    return {kind: {e.get("OID") for e in root.iter(_q(kind))} for kind in _DEFINED_KINDS}


def _created_at(root: etree._Element) -> datetime | None:
    created = root.get("CreationDateTime")
    return datetime.fromisoformat(created) if created else None


def _reference_problems(node: etree._Element, defined: Mapping[str, set[str | None]]) -> list[str]:
    problems = []
    for tag, attr, kind in _REFS:
        for e in node.iter(_q(tag)):
            value = e.get(attr)
            if value is not None and value not in defined[kind]:
                problems.append(f"{tag} {attr}={value!r} has no {kind}")
    return problems


def _order_problems(node: etree._Element, created_at: datetime | None) -> list[str]:
    problems: list[str] = []
    last: dict[tuple[str, str, str], datetime] = {}
    for form in node.iter(_q("FormData")):
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


def validate_odm_file(path: str | Path) -> list[str]:
    """:func:`validate_odm` of a file, streamed so memory does not grow with the file: libxml2 checks
    the whole document against the XSD as it is read (``iterparse(schema=…)``; it stops at the first
    error), and the reference and time-order checks run on each ``SubjectData`` as it ends — against
    the OIDs Study and AdminData define, which come before ClinicalData — after which it is dropped."""
    problems: list[str] = []
    defined: dict[str, set[str | None]] | None = None
    root = None
    created_at = None
    subject_tag, clinical_tag = _q("SubjectData"), _q("ClinicalData")
    try:
        for event, el in etree.iterparse(str(path), events=("start", "end"), schema=odm_schema(), no_network=True,
                                         resolve_entities=False, load_dtd=False, huge_tree=False):
            if event == "start":
                if root is None:
                    root, created_at = el, _created_at(el)
                elif el.tag == clinical_tag and defined is None:
                    # the parser may be ahead of its events: look only at what precedes ClinicalData
                    head = [child for child in itertools.takewhile(lambda c: c is not el, root)]
                    defined = {k: set().union(*(d[k] for d in map(_defined, head))) for k in _DEFINED_KINDS}
                    for child in head:
                        problems += _reference_problems(child, defined)
                continue
            if el.tag == subject_tag and defined is not None:
                problems += _reference_problems(el, defined) + _order_problems(el, created_at)
                el.clear()
                parent = el.getparent()
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        return problems + [f"line {exc.lineno}: {exc.msg}"]
    if defined is None and root is not None:  # no ClinicalData
        problems += odm_reference_problems(etree.ElementTree(root))
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


#: the JSON-schema keywords :func:`_compile` implements; the FHIR R4 schema uses no others that assert
#: anything (``description``, ``$schema``, ``id``, ``discriminator`` are annotations)
_ASSERTING = frozenset({"$ref", "type", "items", "properties", "additionalProperties", "pattern", "required",
                        "enum", "const", "oneOf"})
_ANNOTATIONS = frozenset({"description", "$schema", "id", "discriminator", "definitions"})

_TYPES = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    # draft 6: a float with no fraction is an integer too
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer()),
}


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema's ``enum``/``const`` have it: ``True`` is not ``1``."""
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return one is two
    return one == two


class _Compiler:
    """Compile a draft-6 schema of the FHIR schema's keywords into a plain ``check(instance) -> bool``
    once, each ``#/definitions/X`` compiled once and shared (the schema's recursion goes through a cell).
    It answers only "valid or not"; :func:`validate_fhir` asks jsonschema for the messages of a resource
    it finds invalid, so what is reported is exactly what jsonschema says."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.refs: dict[str, list[Callable[[Any], bool]]] = {}

    def ref(self, ref: str) -> Callable[[Any], bool]:
        if not ref.startswith("#/definitions/") or ref.count("/") != 2:
            raise ValueError(f"unsupported $ref {ref!r}")
        name = ref.rsplit("/", 1)[1]
        if name not in self.refs:
            cell: list[Callable[[Any], bool]] = []
            self.refs[name] = cell
            cell.append(self.compile(self.definitions[name]))
        cell = self.refs[name]
        if cell:
            return cell[0]
        return lambda x: cell[0](x)  # noqa: E731 - recursion: filled in when the definition is compiled

    def compile(self, schema: Any) -> Callable[[Any], bool]:
        if schema is True or schema == {}:
            return lambda x: True  # noqa: E731
        if schema is False:
            return lambda x: False  # noqa: E731
        if "$ref" in schema:  # draft 6: the siblings of $ref are ignored
            return self.ref(schema["$ref"])
        unknown = set(schema) - _ASSERTING - _ANNOTATIONS
        if unknown:
            raise ValueError(f"unsupported JSON-schema keywords {sorted(unknown)}")
        checks: list[Callable[[Any], bool]] = []
        if "type" in schema:
            kinds = [_TYPES[t] for t in ([schema["type"]] if isinstance(schema["type"], str) else schema["type"])]
            checks.append(lambda x: any(k(x) for k in kinds))
        if "enum" in schema:
            enums = list(schema["enum"])
            checks.append(lambda x: any(_equal(e, x) for e in enums))
        if "const" in schema:
            const = schema["const"]
            checks.append(lambda x: _equal(x, const))
        if "pattern" in schema:
            search = re.compile(schema["pattern"]).search
            checks.append(lambda x: not isinstance(x, str) or search(x) is not None)
        if "required" in schema:
            required = list(schema["required"])
            checks.append(lambda x: not isinstance(x, dict) or all(k in x for k in required))
        if "properties" in schema or "additionalProperties" in schema:
            props = {k: self.compile(v) for k, v in (schema.get("properties") or {}).items()}
            extra = schema.get("additionalProperties", True)
            other = None if extra is True or extra == {} else (False if extra is False else self.compile(extra))

            def check_object(x: Any) -> bool:
                if not isinstance(x, dict):
                    return True
                for key, value in x.items():
                    fn = props.get(key)
                    if fn is not None:
                        if not fn(value):
                            return False
                    elif other is False or (other is not None and not other(value)):
                        return False
                return True
            checks.append(check_object)
        if "items" in schema:
            items = schema["items"]
            if isinstance(items, list):
                each = [self.compile(s) for s in items]
                checks.append(lambda x: not isinstance(x, list) or all(f(v) for f, v in zip(each, x)))
            else:
                item = self.compile(items)
                checks.append(lambda x: not isinstance(x, list) or all(item(v) for v in x))
        if "oneOf" in schema:
            options = [self.compile(s) for s in schema["oneOf"]]
            checks.append(lambda x: sum(1 for f in options if f(x)) == 1)
        if len(checks) == 1:
            return checks[0]
        return lambda x: all(c(x) for c in checks)


@lru_cache(maxsize=None)
def _fhir_check(resource_type: str) -> Callable[[Any], bool]:
    """The compiled validity check of one resource type (built once per type and process)."""
    return _Compiler(fhir_schema()["definitions"]).ref(f"#/definitions/{resource_type}")


def validate_fhir_definition(name: str, value: Any) -> list[str]:
    """Errors of ``value`` against one definition of the R4 schema (e.g. ``Bundle_Entry``): what
    :func:`validate_fhir` checks for each part of a resource it is given whole."""
    if _fhir_check(name)(value):
        return []
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in _fhir_validator(name).iter_errors(value)]


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
    if not problems and _fhir_check(rtype)(resource):
        return []  # valid: jsonschema would report nothing (tests/exports/test_fhir_check.py holds them equal)
    problems += [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
                 for e in _fhir_validator(rtype).iter_errors(resource)]
    return problems
