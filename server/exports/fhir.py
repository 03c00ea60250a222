"""HL7 FHIR R4 export: Questionnaire resources for the ALSFRS-R and the nasal symptom diary, and a
Bundle (type ``collection``) of QuestionnaireResponse resources, one per record (current version).

No LOINC code exists for the ALSFRS-R (clinical.md §0, §2.5), so items carry no ``code``; answers use
local code systems under :data:`BASE` (a reserved ``.invalid`` host: a namespace, not a server) with
the score as ``itemWeight``. Chinese wording rides on the standard ``translation`` extension. Totals
and domains are ``readOnly`` items with an SDC ``calculatedExpression``. A response is ``completed``,
or ``amended`` once corrected (``meta.versionId`` = current version); the author is the device or the
staff member, the source the participant (Patient) or caregiver (RelatedPerson). Dose confirmations
are not questionnaires and are exported in the CSV, ODM and SDTM EC files instead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from server.exports.common import fields_for, payload_values, sorted_records, utc_iso
from server.exports.dataset import DEMO_MARKER, current_version, parse_time, require_valid
from shared.instruments import available_versions, load_instrument
from shared.vocab import ALSFRS_ALL_KEYS, NASAL_SYMPTOMS, NOTES_MAX

BASE = "https://als-epro.invalid/fhir"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
SLUG = {"alsfrs_r": "alsfrs-r", "nasal_symptoms": "nasal-symptoms"}
FHIR_TYPES = tuple(SLUG)
NS = uuid.UUID("5b0e6d0c-5c43-4c8a-9d4e-1f2b6a7e9c30")


def _dt(value: str) -> str:
    """A FHIR dateTime with seconds and the offset as received."""
    return parse_time(value).isoformat(timespec="seconds")


def _zh(text: Mapping[str, str]) -> dict[str, Any]:
    return {"extension": [{"url": TRANSLATION, "extension": [
        {"url": "lang", "valueCode": "zh-CN"}, {"url": "content", "valueString": text["zh-CN"]}]}]}


def _texts(obj: dict[str, Any], key: str, text: Mapping[str, str]) -> dict[str, Any]:
    obj[key] = text["en"]
    if text.get("zh-CN"):
        obj[f"_{key}"] = _zh(text)
    return obj


def questionnaire_url(record_type: str) -> str:
    return f"{BASE}/Questionnaire/{SLUG[record_type]}"


LANGS = ("en", "zh-CN")


def _record_lang(record: Mapping[str, Any]) -> str:
    parts = record["instrument_version"].split("/")
    return parts[2] if len(parts) >= 4 and parts[2] in LANGS else "en"


def _record_qversion(record: Mapping[str, Any]) -> str:
    """The Questionnaire version the record answered: source / language / wording version."""
    parts = record["instrument_version"].split("/")
    return f"{parts[1]}/{_record_lang(record)}/{parts[-1]}" if len(parts) >= 4 else record["instrument_version"]


def _in_language(node: Any, lang: str) -> Any:
    """A resource built English-first turned into ``lang``-first: every text whose ``_text`` carries the
    ``lang`` translation swaps with it (the English then rides on the translation extension)."""
    if lang == "en":
        return node
    if isinstance(node, list):
        return [_in_language(x, lang) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _in_language(v, lang) for k, v in node.items()}
    for key in list(out):
        ext = out.get(f"_{key}")
        if key.startswith("_") or not isinstance(out[key], str) or not isinstance(ext, dict):
            continue
        for e in ext.get("extension", []):
            parts = {x["url"]: x for x in e.get("extension", [])}
            if e.get("url") == TRANSLATION and parts.get("lang", {}).get("valueCode") == lang:
                english = out[key]
                out[key] = parts["content"]["valueString"]
                parts["lang"]["valueCode"] = "en"
                parts["content"]["valueString"] = english
    return out


def _option(system: str, code: Any, text: Mapping[str, str]) -> dict[str, Any]:
    coding = _texts({"system": system, "code": str(code)}, "display", text)
    return {"extension": [{"url": ITEM_WEIGHT, "valueDecimal": code}], "valueCoding": coding}


def _calculated(link: str, label: Mapping[str, str], expression: str) -> dict[str, Any]:
    item = _texts({"linkId": link, "type": "integer", "readOnly": True}, "text", label)
    item["extension"] = [{"url": CALCULATED, "valueExpression": {"language": "text/fhirpath", "expression": expression}}]
    return item


def _sum_of(links: Iterable[str]) -> str:
    ids = " | ".join(f"'{k}'" for k in links)
    return f"%resource.item.where(linkId in ({ids})).answer.value.code.toInteger().sum()"


def _alsfrs_items(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    g = content["gastrostomy_question"]
    out = [_texts({"linkId": "gastrostomy", "type": "boolean", "required": True}, "text", g["text"])]
    for it in content["items"]:
        item = _texts({"linkId": it["id"], "prefix": it["id"], "type": "choice", "required": True}, "text",
                      {k: f"{it['title'][k]}: {it['question'][k]}" for k in ("en", "zh-CN")})
        if it["gastrostomy"] is not None:
            item["enableWhen"] = [{"question": "gastrostomy", "operator": "=", "answerBoolean": it["gastrostomy"]}]
        system = f"{BASE}/CodeSystem/alsfrs-r-item-{it['id']}"
        item["answerOption"] = [_option(system, o["value"], o["text"]) for o in it["options"]]
        out.append(item)
    labels = {f.name: f.label for f in fields_for("alsfrs_r")}
    domains = {"bulbar": ("1", "2", "3"), "fine_motor": ("4", "5a", "5b", "6"), "gross_motor": ("7", "8", "9"),
               "respiratory": ("10", "11", "12")}
    for name, links in domains.items():
        out.append(_calculated(name, labels[name], _sum_of(links)))
    out.append(_calculated("total", labels["total"], _sum_of(ALSFRS_ALL_KEYS)))
    return out


def _nasal_items(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    q = content["questions"]
    out = [_texts({"linkId": "date", "type": "date", "required": True}, "text",
                  {"en": "Diary date", "zh-CN": "日记日期"})]
    system = f"{BASE}/CodeSystem/nasal-symptom-grade"
    options = [_option(system, g["value"], {k: f"{g['label'][k]} – {g['text'][k]}" for k in ("en", "zh-CN")})
               for g in content["grades"]]
    for s in content["symptoms"]:
        item = _texts({"linkId": s["name"], "type": "choice", "required": s["name"] != "cough_choking_dosing"},
                      "text", s["title"])
        item["answerOption"] = options
        out.append(item)
    out.append(_texts({"linkId": "epistaxis_needed_help", "type": "boolean", "required": True}, "text",
                      q["epistaxis_needed_help"]))
    out.append(_texts({"linkId": "sought_medical_care", "type": "boolean", "required": True}, "text",
                      q["sought_medical_care"]))
    out.append(_texts({"linkId": "notes", "type": "text", "required": False, "maxLength": NOTES_MAX}, "text", q["notes"]))
    tnss = next(f for f in fields_for("nasal_symptoms") if f.name == "tnss")
    out.append(_calculated("tnss", tnss.label, _sum_of(("rhinorrhea", "congestion", "itching", "sneezing"))))
    return out


def build_questionnaire(record_type: str, version: str | None = None, lang: str = "en") -> dict[str, Any]:
    """One Questionnaire per instrument version and language: the wording shown in ``lang``, the other
    language as the standard translation extension."""
    inst = load_instrument(record_type, version)
    c = inst.content
    title = {"alsfrs_r": {"en": "ALSFRS-R (revised ALS Functional Rating Scale), self-report",
                          "zh-CN": "ALSFRS-R（修订版肌萎缩侧索硬化功能评定量表）自评"},
             "nasal_symptoms": {"en": "Nasal symptom diary", "zh-CN": "鼻部症状日记"}}[record_type]
    q: dict[str, Any] = {
        "resourceType": "Questionnaire", "id": f"{SLUG[record_type]}-{lang}-{c['version']}",
        "url": questionnaire_url(record_type), "version": f"{c['source']}/{lang}/{c['version']}",
        "name": record_type.replace("_", " ").title().replace(" ", ""), "status": "draft" if inst.is_draft else "active",
        "subjectType": ["Patient"], "language": lang,
    }
    _texts(q, "title", title)
    _texts(q, "description", {k: f"{c['instructions'][k]} ({c['note'][k]})" if inst.is_draft else c["instructions"][k]
                              for k in ("en", "zh-CN")})
    q["item"] = _alsfrs_items(c) if record_type == "alsfrs_r" else _nasal_items(c)
    return _in_language(q, lang)


def _answer(record_type: str, link: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if link == "date":
        return {"valueDate": value}
    if link in ("notes",):
        return {"valueString": value}
    if link in ("bulbar", "fine_motor", "gross_motor", "respiratory", "total", "tnss"):
        return {"valueInteger": value}
    system = (f"{BASE}/CodeSystem/alsfrs-r-item-{link}" if record_type == "alsfrs_r"
              else f"{BASE}/CodeSystem/nasal-symptom-grade")
    return {"valueCoding": {"system": system, "code": str(value)}}


def _reference(kind: str, ident_system: str, value: str, display: str) -> dict[str, Any]:
    return {"type": kind, "identifier": {"system": ident_system, "value": value}, "display": display}


def build_response(record: Mapping[str, Any], site: str) -> dict[str, Any]:
    rtype = record["type"]
    cur = current_version(record)
    payload = cur["payload"]
    values = payload_values(rtype, payload)
    if rtype == "alsfrs_r":
        links = ["gastrostomy", *[k for k in ALSFRS_ALL_KEYS if k in payload["items"]],
                 "bulbar", "fine_motor", "gross_motor", "respiratory", "total"]
        get = {"gastrostomy": payload["gastrostomy"], **payload["items"],
               **{k: values[k] for k in ("bulbar", "fine_motor", "gross_motor", "respiratory", "total")}}
    else:
        links = ["date", *NASAL_SYMPTOMS, "epistaxis_needed_help", "sought_medical_care", "notes", "tnss"]
        get = {**values, "date": payload["date"]}
    items = [{"linkId": link, "answer": [_answer(rtype, link, get[link])]}
             for link in links if get.get(link) not in (None, "")]  # FHIR forbids empty strings
    origin = record["originator"]
    subject = _reference("Patient", f"{BASE}/sid/subject/{site}", record["participant"], record["participant"])
    caregiver = {"type": "RelatedPerson", "reference": f"urn:uuid:{caregiver_id(site, record['participant'])}",
                 "display": f"caregiver of {record['participant']}"}
    if origin["kind"] == "staff":
        author = _reference("Practitioner", f"{BASE}/sid/staff", origin["id"], origin.get("name") or origin["id"])
    elif record["respondent"] == "caregiver":
        author = caregiver
    else:
        author = subject
    source = caregiver if record["respondent"] == "caregiver" else subject
    respondent = [{"url": f"{BASE}/StructureDefinition/respondent", "valueCode": record["respondent"]}]
    if record["respondent"] == "participant_assisted":
        respondent.append({"url": f"{BASE}/StructureDefinition/answered-with-help", "valueBoolean": True})
    if origin["kind"] == "device":
        respondent.append({"url": f"{BASE}/StructureDefinition/entered-on-device", "valueReference": _reference(
            "Device", f"{BASE}/sid/device", origin["id"], f"{origin.get('role')} device {origin['id']}")})
    lang = record["instrument_version"].split("/")[2] if record["instrument_version"].count("/") >= 3 else "en"
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "id": record["id"],
        "meta": {"versionId": str(cur["version"]), "lastUpdated": utc_iso(cur["created_at"]),
                 "tag": [{"system": f"{BASE}/CodeSystem/review-label", "code": label}
                         for label in record.get("labels") or []] or None},
        "language": lang,
        "extension": [
            *respondent,
            {"url": f"{BASE}/StructureDefinition/instrument-version", "valueString": record["instrument_version"]},
            {"url": f"{BASE}/StructureDefinition/received-at", "valueInstant": utc_iso(record["received_at"])},
            {"url": f"{BASE}/StructureDefinition/server-seq", "valueInteger": record["server_seq"]},
            {"url": f"{BASE}/StructureDefinition/sha256", "valueString": record["sha256"]},
        ],
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{record['id']}"},
        "questionnaire": f"{questionnaire_url(rtype)}|{_record_qversion(record)}",
        "status": "amended" if cur["version"] > 1 else "completed",
        "subject": subject, "authored": _dt(record["entered_at"]), "author": author, "source": source,
        "item": items,
    }
    if qr["meta"]["tag"] is None:
        del qr["meta"]["tag"]
    return qr


def caregiver_id(site: str, subject: str) -> str:
    return str(uuid.uuid5(NS, f"caregiver|{site}|{subject}"))


def build_related_person(site: str, subject: str) -> dict[str, Any]:
    """The participant's caregiver, linked to the Patient (the author of a caregiver's answers)."""
    return {"resourceType": "RelatedPerson", "id": caregiver_id(site, subject),
            "identifier": [{"system": f"{BASE}/sid/caregiver-of/{site}", "value": subject}], "active": True,
            "patient": _reference("Patient", f"{BASE}/sid/subject/{site}", subject, subject),
            "relationship": [{"coding": [{"system": f"{BASE}/CodeSystem/relationship", "code": "caregiver",
                                          "display": "Caregiver"}],
                              "text": "Caregiver", "_text": _zh({"zh-CN": "照护者"})}]}


def _bundle_shell(dataset: Mapping[str, Any], entries: Any) -> dict[str, Any]:
    site = dataset["study"]["site"]["code"]
    stamp = utc_iso(dataset["generated_at"])
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid5(NS, f"{dataset['study']['protocol_id']}|{site}|{stamp}")),
        "identifier": {"system": f"{BASE}/sid/export", "value": f"{dataset['study']['protocol_id']}-{site}-{stamp}"},
        "type": "collection", "timestamp": stamp, "entry": entries,
    }
    if dataset["study"].get("demo"):
        bundle["meta"] = {"tag": [{"system": f"{BASE}/CodeSystem/data-kind", "code": "demo", "display": DEMO_MARKER}]}
    return bundle


def build_bundle(dataset: Mapping[str, Any]) -> dict[str, Any]:
    site = dataset["study"]["site"]["code"]
    carers = sorted({r["participant"] for r in dataset["records"]
                     if r["type"] in FHIR_TYPES and r["respondent"] == "caregiver"})
    entries = [{"fullUrl": f"urn:uuid:{caregiver_id(site, s)}", "resource": build_related_person(site, s)}
               for s in carers]
    entries += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": build_response(r, site)}
                for t in FHIR_TYPES for r in sorted_records(dataset, t)]
    return _bundle_shell(dataset, entries)


ENTRIES = "\x00entries\x00"   # where the streamed entries go in the Bundle's JSON text


class FhirWriter:
    """The FHIR files written as the data comes: :meth:`add` takes a normalised dataset of whole
    participants (successive calls in subject order); each QuestionnaireResponse is written to a spool
    file per type as it is built (and checked against the R4 schema when ``validate``), and
    :meth:`finish` writes the Questionnaires and the Bundle — the same JSON text as dumping
    :func:`build_bundle` of the whole dataset — without holding the entries in memory."""

    def __init__(self, out_dir: str | Path, head: Mapping[str, Any], *, validate: bool = False) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.head = head
        self.validate = validate
        self.carers: list[str] = []
        self.used: dict[str, set[str]] = {t: set() for t in FHIR_TYPES}
        self.parts = {t: tempfile.TemporaryFile("w+", encoding="utf-8") for t in FHIR_TYPES}
        self.count = {t: 0 for t in FHIR_TYPES}
        self.problems: list[tuple[str | None, int, str]] = []   # (type or None for a carer, index, problem)

    def _check(self, kind: str | None, index: int, entry: Mapping[str, Any]) -> None:
        """The entry as :func:`validate_fhir` checks it inside the whole Bundle: its resource, and the
        entry without it against ``Bundle_Entry``."""
        if self.validate:
            from server.exports.validate import validate_fhir, validate_fhir_definition
            shell = {k: v for k, v in entry.items() if k != "resource"}
            self.problems += [(kind, index, f"resource/{p}") for p in validate_fhir(dict(entry["resource"]))]
            self.problems += [(kind, index, p) for p in validate_fhir_definition("Bundle_Entry", shell)]

    def add(self, dataset: Mapping[str, Any]) -> None:
        site = dataset["study"]["site"]["code"]
        self.carers += sorted({r["participant"] for r in dataset["records"]
                               if r["type"] in FHIR_TYPES and r["respondent"] == "caregiver"})
        for t in FHIR_TYPES:
            self.used[t] |= {r["instrument_version"].split("/")[-1] for r in dataset["records"] if r["type"] == t}
            part = self.parts[t]
            for r in sorted_records(dataset, t):
                entry = {"fullUrl": f"urn:uuid:{r['id']}", "resource": build_response(r, site)}
                self._check(t, self.count[t], entry)
                part.write((",\n" if self.count[t] else "") + _entry_text(entry))
                self.count[t] += 1

    def close(self) -> None:
        for part in self.parts.values():
            part.close()

    def finish(self) -> list[Path]:
        written = []
        for rtype in FHIR_TYPES:
            known = set(available_versions(rtype))
            for version in sorted((self.used[rtype] & known) | {load_instrument(rtype).version}):
                for lang in LANGS:
                    q = build_questionnaire(rtype, version, lang)
                    written.append(_write(self.out / f"Questionnaire-{q['id']}.json", q))
        site = self.head["study"]["site"]["code"]
        carers = sorted(set(self.carers))
        shell = _bundle_shell(self.head, ENTRIES)
        before, after = (json.dumps(shell, ensure_ascii=False, indent=2, sort_keys=False) + "\n").split(
            json.dumps(ENTRIES), 1)
        path = self.out / "QuestionnaireResponse-bundle.json"
        with path.open("w", encoding="utf-8") as fh:
            fh.write(before)
            n = len(carers) + sum(self.count.values())
            fh.write("[\n" if n else "[]")
            first = True
            for i, s in enumerate(carers):
                entry = {"fullUrl": f"urn:uuid:{caregiver_id(site, s)}", "resource": build_related_person(site, s)}
                self._check(None, i, entry)
                fh.write(("" if first else ",\n") + _entry_text(entry))
                first = False
            for t in FHIR_TYPES:
                part = self.parts[t]
                if self.count[t]:
                    fh.write("" if first else ",\n")
                    first = False
                    part.seek(0)
                    shutil.copyfileobj(part, fh)
                part.close()
            fh.write("\n  ]" if n else "")
            fh.write(after)
        if self.validate:  # the Bundle itself, its entries checked one by one above
            from server.exports.validate import validate_fhir
            self.problems += [("Bundle", 0, p) for p in validate_fhir(dict(shell, entry=[]))]
        written.append(path)
        return written

    def problem_lines(self) -> list[str]:
        offsets = {None: 0}
        start = len(set(self.carers))
        for t in FHIR_TYPES:
            offsets[t] = start
            start += self.count[t]
        out = []
        for kind, index, p in self.problems:
            if kind == "Bundle":
                out.append(f"QuestionnaireResponse-bundle.json: {p}")
            else:
                out.append(f"QuestionnaireResponse-bundle.json: entry/{offsets[kind] + index}/{p}")
        return out


_STRING = json.encoder.encode_basestring   # what json.dumps(ensure_ascii=False) writes for a string


def pretty_json(value: Any, indent: str = "") -> str:
    """``json.dumps(value, ensure_ascii=False, indent=2)`` of JSON data (string keys), the lines after
    the first starting with ``indent``: the same text, several times faster (``json.dumps`` with an
    indent runs its pure-Python encoder; strings and numbers here go through its C parts)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        return "{\n" + ",\n".join(f"{inner}{_STRING(k)}: {pretty_json(v, inner)}" for k, v in value.items()) \
            + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + pretty_json(v, inner) for v in value) + "\n" + indent + "]"
    if isinstance(value, str):
        return _STRING(value)
    return json.dumps(value)


def _entry_text(entry: Mapping[str, Any]) -> str:
    """One Bundle entry as :func:`json.dumps` with ``indent=2`` writes it inside the Bundle."""
    return "    " + pretty_json(dict(entry), "    ")


def fhir_export(dataset: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``Questionnaire-<name>-<version>.json`` files and ``QuestionnaireResponse-bundle.json``."""
    dataset = require_valid(dataset)
    writer = FhirWriter(out_dir, dataset)
    writer.add(dataset)
    return writer.finish()


def probe_record(rec: Mapping[str, Any], ctx: Mapping[str, Any], _unused: Any = None) -> None:
    """Build one record's QuestionnaireResponse and check it against the R4 schema when at hand (for
    :mod:`server.exports.screen`)."""
    if rec["type"] not in FHIR_TYPES:
        return
    site = ctx["dataset"]["study"]["site"]["code"]
    qr = build_response(rec, site)
    json.dumps(qr, ensure_ascii=False)
    from server.exports.validate import standards_dir, validate_fhir
    if standards_dir() is not None:
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            return
        problems = validate_fhir(qr)
        if problems:
            raise ValueError("not valid FHIR R4: " + "; ".join(problems[:3]))


def _write(path: Path, resource: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(resource, ensure_ascii=False, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


__all__ = ["fhir_export", "FhirWriter", "build_questionnaire", "build_bundle", "build_response"]
