"""CDISC ODM 1.3.2 XML export that validates against the official schema (``validate.validate_odm``).

Layout (clinical.md §2.4)::

    ODM (FileType Transactional | Snapshot)
      Study NCT06598202 / MetaDataVersion: one StudyEventDef per protocol visit (SE.BASELINE, SE.DAY001 …,
        SE.UNSCHEDULED), three repeating FormDefs
        (F.ALSFRS_R, F.NASAL_SYMPTOMS, F.DOSE_CONFIRMATION), each with the item group IG.RECORD (who,
        when, device, hash) and its own item group; ItemDefs with both languages, CodeLists with the
        instrument anchors, MethodDefs for derived scores (total, domains, TNSS, ECOCCUR, laterality)
      AdminData: Users (devices by role, staff by name and role, the export's author) and Locations
        (the site and each device)
      ClinicalData / SubjectData (SiteRef) / StudyEventData per visit / FormData (FormRepeatKey = record id),
        with a Signature (SignatureDef SD.INVESTIGATOR_REVIEW) on each version an investigator signed

**Transactional** (default) keeps the whole history: each record is a ``FormData`` with
``TransactionType="Insert"`` holding version 1 (the values as entered), followed by one ``FormData``
``TransactionType="Update"`` per correction holding only the items that changed (``Insert``/``Remove`` on
an item that appears or disappears, e.g. 5a → 5b). Every such element carries an ``AuditRecord``:

- ``UserRef``: the originator (device user "participant/caregiver via device D") for version 1, the
  staff member for a correction; ``LocationRef``: the device, or the site for staff;
- ``DateTimeStamp`` (UTC): for version 1 the device's ``entered_at`` — when the data entry was
  performed (ODM §3.1.4.1.2.2) — or ``received_at`` if the device clock put entry after receipt
  (clock drift); for a correction its server time. Raw ``entered_at``, ``event_time`` and
  ``received_at`` are also items of ``IG.RECORD``;
- ``ReasonForChange`` for corrections (with who asked for it); ``SourceID`` names the record id,
  version, server sequence and sha256.

**Snapshot** carries only the current values, with no TransactionType and no AuditRecord (ODM §2.9).
Subjects are inserted with the enrolment's time and actor when the dataset gives them
(``enrolled_at``/``enrolled_by``), otherwise with the system user at the first receipt.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from lxml import etree

from server.exports.common import (
    FORM_TITLES, META_FIELDS, Field, csv_value, fields_for, payload_values, site_of, utc_iso,
)
from server.exports.dataset import DEMO_MARKER, draft_instrument_versions, parse_time, require_valid
from server.exports.sdtm import qs_testcd
from server.exports.visits import Visit, protocol_for, protocol_visits
from server.exports.validate import ODM_NS
from shared.instruments import load_instrument
from shared.vocab import RECORD_TYPES

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DTYPE = {"integer": "integer", "text": "text", "boolean": "boolean", "date": "date", "datetime": "datetime"}
#: envelope metadata carried in IG.RECORD (fixed at receipt; the current version is in the item group)
RECORD_ITEMS = ("record_id", "respondent", "originator_kind", "originator_id", "originator_role",
                "instrument_version", "schema_version", "event_time", "entered_at", "received_at",
                "server_seq", "sha256", "labels")
SYSTEM_USER = "USR.SYSTEM"


def _el(parent: etree._Element | None, tag: str, attrib: Mapping[str, Any] | None = None,
        text: str | None = None) -> etree._Element:
    attrs = {k: str(v) for k, v in (attrib or {}).items() if v is not None}
    e = etree.Element(f"{{{ODM_NS}}}{tag}", attrs, nsmap={None: ODM_NS}) if parent is None \
        else etree.SubElement(parent, f"{{{ODM_NS}}}{tag}", attrs)
    if text is not None:
        e.text = text
    return e


def _translated(parent: etree._Element, tag: str, text: Mapping[str, str]) -> etree._Element:
    holder = _el(parent, tag)
    for lang in ("en", "zh-CN"):
        if text.get(lang):
            _el(holder, "TranslatedText", {XML_LANG: lang}, text[lang])
    return holder


@lru_cache(maxsize=4096)
def _oid(*parts: str) -> str:
    return ".".join(re.sub(r"[^A-Za-z0-9_\-]", "_", p).upper() for p in parts)


def item_oid(record_type: str | None, name: str) -> str:
    return _oid("IT", record_type or "RECORD", name)


def _form_oid(rtype: str) -> str:
    return _oid("F", rtype)


def _group_oid(rtype: str | None) -> str:
    return _oid("IG", rtype or "RECORD")


def _codelist_oid(rtype: str | None, f: Field) -> str:
    return _oid("CL", f.codelist) if f.codelist else _oid("CL", rtype or "RECORD", f.name)


def _user_oid(actor: Mapping[str, Any]) -> str:
    return "USR." + re.sub(r"[^A-Za-z0-9_.@\-]", "_", f"{actor['kind']}.{actor['id']}")


def _location_oid(actor: Mapping[str, Any], site: str) -> str:
    return f"LOC.DEVICE.{actor['id']}" if actor["kind"] == "device" else f"LOC.SITE.{site}"


def _value(f: Field, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return csv_value(value)


# --- metadata ----------------------------------------------------------------------------------------------

def _record_fields() -> list[Field]:
    by_name = {f.name: f for f in META_FIELDS}
    return [by_name[n] for n in RECORD_ITEMS]


def _metadata(study: etree._Element, dataset: Mapping[str, Any], mdv_oid: str, note: str) -> None:
    s = dataset["study"]
    gv = _el(study, "GlobalVariables")
    _el(gv, "StudyName", text=s["protocol_id"])
    desc = f"ALS ePRO patient-reported data, site {s['site']['code']}"
    _el(gv, "StudyDescription", text=f"{desc}. {DEMO_MARKER}." if s.get("demo") else desc)
    _el(gv, "ProtocolName", text=f"{s['protocol_id']} ({s['protocol_version']})")
    mdv = _el(study, "MetaDataVersion", {"OID": mdv_oid, "Name": f"Protocol {s['protocol_version']}",
                                         "Description": note or None})
    proto = _el(mdv, "Protocol")
    events = _event_defs(dataset)
    for i, v in enumerate(events, start=1):
        _el(proto, "StudyEventRef", {"StudyEventOID": v.oid, "OrderNumber": i, "Mandatory": "No"})
    for v in events:
        sed = _el(mdv, "StudyEventDef", {"OID": v.oid, "Name": v.name, "Repeating": "No" if v.planned else "Yes",
                                         "Type": "Scheduled" if v.planned else "Unscheduled"})
        _translated(sed, "Description", {"en": f"{v.name} (VISITNUM {v.num_text})" if v.planned else
                                         "Entry that fills no planned item (VISITNUM: the visit before + 0.01)"})
        for i, rtype in enumerate(RECORD_TYPES, start=1):
            _el(sed, "FormRef", {"FormOID": _form_oid(rtype), "OrderNumber": i, "Mandatory": "No"})
    for rtype in RECORD_TYPES:
        fd = _el(mdv, "FormDef", {"OID": _form_oid(rtype), "Name": FORM_TITLES[rtype]["en"], "Repeating": "Yes"})
        _translated(fd, "Description", FORM_TITLES[rtype])
        _el(fd, "ItemGroupRef", {"ItemGroupOID": _group_oid(None), "Mandatory": "Yes", "OrderNumber": 1})
        _el(fd, "ItemGroupRef", {"ItemGroupOID": _group_oid(rtype), "Mandatory": "Yes", "OrderNumber": 2})
    groups: list[tuple[str | None, list[Field]]] = [(None, _record_fields())]
    groups += [(rtype, list(fields_for(rtype))) for rtype in RECORD_TYPES]
    for rtype, fields in groups:
        name = "Record metadata" if rtype is None else FORM_TITLES[rtype]["en"]
        ig = _el(mdv, "ItemGroupDef", {"OID": _group_oid(rtype), "Name": name, "Repeating": "No",
                                       "Domain": None if rtype is None else ("EC" if rtype == "dose_confirmation" else "QS")})
        for i, f in enumerate(fields, start=1):
            _el(ig, "ItemRef", {"ItemOID": item_oid(rtype, f.name), "OrderNumber": i,
                                "Mandatory": "Yes" if f.name == "record_id" else "No",
                                "MethodOID": _oid("MT", rtype or "RECORD", f.name) if f.derived else None})
    codelists: dict[str, tuple[str | None, Field]] = {}
    proact = {i["id"]: i["proact"] for i in load_instrument("alsfrs_r").content["items"]}
    for rtype, fields in groups:
        for f in fields:
            idef = _el(mdv, "ItemDef", {"OID": item_oid(rtype, f.name), "Name": f.name, "DataType": DTYPE[f.dtype],
                                        "Origin": "Derived" if f.derived else "CRF"})
            _translated(idef, "Description", f.label)
            if (asked := wording(rtype, f.name)) is not None:
                _translated(idef, "Question", asked)
            if f.codes:
                cl = _codelist_oid(rtype, f)
                codelists.setdefault(cl, (rtype, f))
                _el(idef, "CodeListRef", {"CodeListOID": cl})
            if rtype is not None and (code := qs_testcd(rtype, f.name)):
                _el(idef, "Alias", {"Context": "SDTM QSTESTCD (sponsor-defined)", "Name": code})
            if rtype == "alsfrs_r" and f.name.startswith("item_") and f.name[5:] in proact:
                _el(idef, "Alias", {"Context": "PRO-ACT", "Name": proact[f.name[5:]]})
    for cl_oid, (rtype, f) in codelists.items():
        cl = _el(mdv, "CodeList", {"OID": cl_oid, "Name": f.codelist or f.name,
                                   "DataType": "integer" if f.dtype == "integer" else "text"})
        for code, text in f.codes:
            item = _el(cl, "CodeListItem", {"CodedValue": code})
            _translated(item, "Decode", text)
    for rtype, fields in groups:
        for f in fields:
            if f.derived:
                md = _el(mdv, "MethodDef", {"OID": _oid("MT", rtype or "RECORD", f.name), "Name": f"Derive {f.name}",
                                            "Type": "Computation"})
                _translated(md, "Description", {"en": f.derivation})


def wording(record_type: str | None, name: str) -> dict[str, str] | None:
    """The question as the participant saw it (both languages, from the instrument file); None for a
    derived value or record metadata, which nobody was asked."""
    if record_type is None:
        return None
    c = load_instrument(record_type).content
    if record_type == "alsfrs_r":
        if name == "gastrostomy":
            return dict(c["gastrostomy_question"]["text"])
        if name == "item_respondent":
            return dict(c["respondent_question"]["text"])
        items = {i["id"]: i for i in c["items"]}
        if name.startswith("item_") and name[5:] in items:
            it = items[name[5:]]
            return {k: f"{it['title'][k]}: {it['question'][k]}" for k in ("en", "zh-CN")}
        return None
    if record_type == "nasal_symptoms":
        sym = {x["name"]: x for x in c["symptoms"]}
        if name in sym:
            x = sym[name]
            return {k: f"{x['title'][k]}: {x['help'][k]}" for k in ("en", "zh-CN")}
        if name in c["questions"]:
            return dict(c["questions"][name])
        return {"en": "Diary date", "zh-CN": "日记日期"} if name == "date" else None
    f = c["fields"]
    if name == "dose_number":
        return {k: v.replace("{n}", "N") for k, v in f["dose_number"].items()}
    for side in ("left", "right"):
        for part, key in (("given", "nostril_given"), ("volume", "volume"), ("retained", "retained")):
            if name == f"{side}_{part}":
                return {k: f"{f[side][k]}: {f[key][k]}" for k in ("en", "zh-CN")}
    return dict(f[name]) if name in f and isinstance(f[name], dict) and "en" in f[name] else None


def _event_defs(dataset: Mapping[str, Any]) -> list[Visit]:
    visits = list(protocol_visits(protocol_for(dataset["study"]["protocol_id"])))
    return visits + [Visit(-1.0, "Unscheduled", None, planned=False)]


def _drafts_note(drafts: list[str]) -> str:
    if not drafts:
        return ""
    return "Draft instrument wording, not yet sponsor-approved: " + ", ".join(drafts)


# --- admin data ----------------------------------------------------------------------------------------------

def _record_actors(dataset: Mapping[str, Any], out: dict[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    for r in dataset["records"]:
        out.setdefault(_user_oid(r["originator"]), {**r["originator"], "subject": r["participant"]})
        for v in r["versions"]:
            out.setdefault(_user_oid(v["created_by"]), {**v["created_by"], "subject": r["participant"]})
    return out


def _enrolment_actors(dataset: Mapping[str, Any], out: dict[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    for p in dataset["participants"]:
        if p.get("enrolled_by"):
            actor = p["enrolled_by"]
            out.setdefault(_user_oid(actor), actor)
    return out


def _signer_actors(signoffs: Iterable[Mapping[str, Any]], out: dict[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    for so in signoffs:
        out.setdefault(_user_oid(so["signer"]), {**so["signer"], "name": so["signer"].get("name") or so["printed_name"]})
    return out


def _actors(dataset: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out = _enrolment_actors(dataset, _record_actors(dataset, {}))
    return _signer_actors(dataset.get("signoffs") or [], out)


def _admin(root: etree._Element, dataset: Mapping[str, Any], mdv_oid: str, site: str, effective: str,
           actors: Mapping[str, Mapping[str, Any]]) -> None:
    admin = _el(root, "AdminData", {"StudyOID": dataset["study"]["protocol_id"]})
    for oid, a in sorted(actors.items()):
        staff = a["kind"] == "staff"
        user = _el(admin, "User", {"OID": oid, "UserType": "Investigator" if a.get("role") == "investigator" else "Other"})
        _el(user, "LoginName", text=str(a["id"]))
        label = (f"{a.get('role') or 'staff'}: {a.get('name') or a['id']}" if staff
                 else f"{a.get('role') or 'participant'} of {a.get('subject', '?')} via device {a['id']}")
        _el(user, "DisplayName", text=label)
        if staff and a.get("name"):
            _el(user, "FullName", text=str(a["name"]))
        _el(user, "LocationRef", {"LocationOID": _location_oid(a, site)})
    system = _el(admin, "User", {"OID": SYSTEM_USER, "UserType": "Other"})
    _el(system, "LoginName", text="als-epro-server")
    _el(system, "DisplayName", text=f"ALS ePRO server (export by {dataset['generated_by']})")
    _el(system, "LocationRef", {"LocationOID": f"LOC.SITE.{site}"})
    locations = {f"LOC.SITE.{site}": ("Site", dataset["study"]["site"]["name"])}
    for a in actors.values():
        if a["kind"] == "device":
            locations.setdefault(_location_oid(a, site), ("Other", f"Device {a['id']}"))
    for oid, (ltype, name) in sorted(locations.items()):
        loc = _el(admin, "Location", {"OID": oid, "Name": name, "LocationType": ltype})
        _el(loc, "MetaDataVersionRef", {"StudyOID": dataset["study"]["protocol_id"],
                                        "MetaDataVersionOID": mdv_oid, "EffectiveDate": effective})
    meanings = sorted({so["meaning"] for so in dataset.get("signoffs") or []})
    sd = _el(admin, "SignatureDef", {"OID": SIGNATURE_DEF, "Methodology": "Electronic"})
    _el(sd, "Meaning", text=" / ".join(meanings) or "Investigator review of the participant's entries for a period")
    _el(sd, "LegalReason", text="21 CFR Part 11 electronic signature (§11.50, §11.70): the investigator's review "
                                 "sign-off; printed name, date-time and meaning are bound to the record versions signed")


# --- clinical data -------------------------------------------------------------------------------------------

def _audit(parent: etree._Element, user: str, location: str, when: str, reason: str | None, source: str) -> None:
    ar = _el(parent, "AuditRecord", {"EditPoint": "Monitoring", "UsedImputationMethod": "No"})
    _el(ar, "UserRef", {"UserOID": user})
    _el(ar, "LocationRef", {"LocationOID": location})
    _el(ar, "DateTimeStamp", text=when)
    if reason:
        _el(ar, "ReasonForChange", text=reason)
    _el(ar, "SourceID", text=source)


def _items(group: etree._Element, rtype: str | None, fields: Iterable[Field], values: Mapping[str, Any],
           transaction: Mapping[str, str] | None = None) -> None:
    for f in fields:
        value = values.get(f.name)
        tt = (transaction or {}).get(f.name)
        if value is None and tt != "Remove":
            continue
        _el(group, "ItemData", {"ItemOID": item_oid(rtype, f.name), "TransactionType": tt,
                                "Value": None if value is None else _value(f, value)})


def _entry_stamp(rec: Mapping[str, Any]) -> str:
    entered, received = parse_time(rec["entered_at"]), parse_time(rec["received_at"])
    return utc_iso(min(entered, received))


def _record_meta(rec: Mapping[str, Any]) -> dict[str, Any]:
    o = rec["originator"]
    return {"record_id": rec["id"], "respondent": rec["respondent"], "originator_kind": o["kind"],
            "originator_id": o["id"], "originator_role": o.get("role"), "instrument_version": rec["instrument_version"],
            "schema_version": rec["schema_version"], "event_time": rec["event_time"], "entered_at": rec["entered_at"],
            "received_at": rec["received_at"], "server_seq": rec["server_seq"], "sha256": rec["sha256"],
            "labels": list(rec.get("labels") or []) or None}


SIGNATURE_DEF = "SD.INVESTIGATOR_REVIEW"


def _signature(form: etree._Element, signoff: Mapping[str, Any] | None, site: str, record_id: str,
               version: int) -> None:
    """An ODM Signature (after the AuditRecord): the investigator's sign-off covering this version
    (``ID`` = ``SIG.<sign-off id>.<record id>.V<version>``, unique in the file as xs:ID requires)."""
    if signoff is None:
        return
    sig = _el(form, "Signature", {"ID": f"SIG.{signoff['id']}.{record_id}.V{version}"})
    _el(sig, "UserRef", {"UserOID": _user_oid(signoff["signer"])})
    _el(sig, "LocationRef", {"LocationOID": f"LOC.SITE.{site}"})
    _el(sig, "SignatureRef", {"SignatureOID": SIGNATURE_DEF})
    _el(sig, "DateTimeStamp", text=utc_iso(signoff["signed_at"]))


def signed_versions(dataset: Mapping[str, Any]) -> dict[tuple[str, int], Mapping[str, Any]]:
    """``{(record id, version): the latest sign-off covering it}``."""
    out: dict[tuple[str, int], Mapping[str, Any]] = {}
    for so in sorted(dataset.get("signoffs") or [], key=lambda x: (parse_time(x["signed_at"]), x["id"])):
        for c in so["covered"]:
            out[(c["record_id"], int(c["version"]))] = so
    return out


def _forms(event: etree._Element, rec: Mapping[str, Any], site: str, transactional: bool,
           signed: Mapping[tuple[str, int], Mapping[str, Any]] | None = None) -> None:
    rtype, fields = rec["type"], fields_for(rec["type"])
    signed = signed or {}
    versions = sorted(rec["versions"], key=lambda v: v["version"])
    first = versions[0] if transactional else versions[-1]
    form = _el(event, "FormData", {"FormOID": _form_oid(rtype), "FormRepeatKey": rec["id"],
                                   "TransactionType": "Insert" if transactional else None})
    if transactional:
        origin = rec["originator"]
        _audit(form, _user_oid(origin), _location_oid(origin, site), _entry_stamp(rec), None,
               f"record {rec['id']} version 1 (as entered on {rec['entered_at']}); received {rec['received_at']}, "
               f"server_seq {rec['server_seq']}, sha256 {rec['sha256']}")
    _signature(form, signed.get((rec["id"], first["version"])), site, rec["id"], first["version"])
    _items(_el(form, "ItemGroupData", {"ItemGroupOID": _group_oid(None)}), None, _record_fields(), _record_meta(rec))
    _items(_el(form, "ItemGroupData", {"ItemGroupOID": _group_oid(rtype)}), rtype, fields,
           payload_values(rtype, first["payload"]))
    if not transactional:
        return
    previous = payload_values(rtype, first["payload"])
    for v in versions[1:]:
        current = payload_values(rtype, v["payload"])
        changed = [f for f in fields if current.get(f.name) != previous.get(f.name)]
        upd = _el(event, "FormData", {"FormOID": _form_oid(rtype), "FormRepeatKey": rec["id"], "TransactionType": "Update"})
        by = v["created_by"]
        reason = v.get("reason") or ""
        if v.get("requested_by"):
            reason = f"{reason} (requested by {v['requested_by']})"
        fields_changed = ", ".join(c["field"] for c in v["changes"])
        _audit(upd, _user_oid(by), _location_oid(by, site), utc_iso(v["created_at"]), reason,
               f"record {rec['id']} version {v['version']}; changed: {fields_changed}")
        _signature(upd, signed.get((rec["id"], v["version"])), site, rec["id"], v["version"])
        tt = {f.name: ("Insert" if previous.get(f.name) is None else "Remove" if current.get(f.name) is None
                       else "Update") for f in changed}
        _items(_el(upd, "ItemGroupData", {"ItemGroupOID": _group_oid(rtype)}), rtype, changed, current, tt)
        previous = current


def _subject_events(dataset: Mapping[str, Any], p: Mapping[str, Any],
                    recs: list[Mapping[str, Any]]) -> list[tuple[Visit, list[Mapping[str, Any]]]]:
    """The participant's records grouped by protocol visit (schedule order; unscheduled by number)."""
    from server.exports.sdtm import Subject

    visits = Subject(dataset, p, recs).visits
    groups: dict[tuple[float, str], tuple[Visit, list[Mapping[str, Any]]]] = {}
    for r in recs:
        v = visits[r["id"]]
        groups.setdefault((v.num, v.oid), (v, []))[1].append(r)
    return [groups[k] for k in sorted(groups)]


def _clinical(root: etree._Element, dataset: Mapping[str, Any], mdv_oid: str, transactional: bool) -> None:
    study_oid = dataset["study"]["protocol_id"]
    clinical = _el(root, "ClinicalData", {"StudyOID": study_oid, "MetaDataVersionOID": mdv_oid})
    sites = site_of(dataset)
    signed = signed_versions(dataset)
    if not transactional:  # a snapshot carries only signatures of the current versions
        current = {(r["id"], max(v["version"] for v in r["versions"])) for r in dataset["records"]}
        signed = {k: v for k, v in signed.items() if k in current}
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    for r in sorted(dataset["records"], key=lambda r: (r["server_seq"], r["id"])):
        by_subject.setdefault(r["participant"], []).append(r)
    for p in sorted(dataset["participants"], key=lambda p: p["subject"]):
        recs, site = by_subject.get(p["subject"], []), sites[p["subject"]]
        subject = _el(clinical, "SubjectData", {"SubjectKey": p["subject"],
                                                "TransactionType": "Insert" if transactional else None})
        if transactional:
            enrolled_by = p.get("enrolled_by")
            when = p.get("enrolled_at") or (min(r["received_at"] for r in recs) if recs else dataset["generated_at"])
            _audit(subject, _user_oid(enrolled_by) if enrolled_by else SYSTEM_USER, f"LOC.SITE.{site}", utc_iso(when),
                   None, f"participant {p['subject']} enrolled at site {site}")
        _el(subject, "SiteRef", {"LocationOID": f"LOC.SITE.{site}"})
        for visit, group in _subject_events(dataset, p, recs):
            event = _el(subject, "StudyEventData", {"StudyEventOID": visit.oid,
                                                    "StudyEventRepeatKey": None if visit.planned else visit.num_text})
            for rec in group:
                _forms(event, rec, site, transactional, signed)


def probe_record(rec: Mapping[str, Any], ctx: Mapping[str, Any], _unused: Any = None) -> None:
    """Write one record's ODM forms (both file types) and serialise them (for :mod:`server.exports.screen`)."""
    site = ctx["participant"].get("site") or ctx["dataset"]["study"]["site"]["code"]
    event = _el(None, "StudyEventData", {"StudyEventOID": "SE.PROBE"})
    _forms(event, rec, site, True)
    _forms(event, rec, site, False)
    etree.tostring(event)


def _root(dataset: Mapping[str, Any], file_type: str, drafts: list[str], actors: Mapping[str, Mapping[str, Any]],
          first_received: datetime | None) -> etree._Element:
    """The ODM element with Study and AdminData (ClinicalData is added by the caller)."""
    s = dataset["study"]
    created = utc_iso(dataset["generated_at"])
    mdv_oid = _oid("MDV", s["protocol_version"])
    site = s["site"]["code"]
    parts = [f"ALS ePRO export of site {site} ({s['site']['name']}), {file_type.lower()}",
             f"generated by {dataset['generated_by']} with ALS ePRO {dataset['software_version']}"]
    if s.get("demo"):
        parts.insert(0, DEMO_MARKER)
    if note := _drafts_note(drafts):
        parts.append(note)
    root = _el(None, "ODM", {
        "Description": ". ".join(parts) + ".", "FileType": file_type, "Granularity": "SingleSite",
        "FileOID": f"ALS-EPRO.{s['protocol_id']}.{site}.{created.replace('-', '').replace(':', '')}.{file_type}",
        "CreationDateTime": created, "AsOfDateTime": created if file_type == "Transactional" else None,
        "ODMVersion": "1.3.2", "Originator": "ALS ePRO", "SourceSystem": "ALS ePRO",
        "SourceSystemVersion": dataset["software_version"]})
    _metadata(_el(root, "Study", {"OID": s["protocol_id"]}), dataset, mdv_oid, note)
    effective = first_received or parse_time(dataset["generated_at"])
    _admin(root, dataset, mdv_oid, site, effective.date().isoformat(), actors)
    return root


def _check_file_type(file_type: str) -> None:
    if file_type not in ("Transactional", "Snapshot"):
        raise ValueError("file_type must be Transactional or Snapshot")


def build_odm(dataset: Mapping[str, Any], *, file_type: str = "Transactional") -> etree._ElementTree:
    """The ODM document as an lxml tree (see the module docstring)."""
    _check_file_type(file_type)
    dataset = require_valid(dataset)
    stamps = [parse_time(r["received_at"]) for r in dataset["records"]]
    root = _root(dataset, file_type, draft_instrument_versions(dataset), _actors(dataset), min(stamps) if stamps else None)
    _clinical(root, dataset, _oid("MDV", dataset["study"]["protocol_version"]), file_type == "Transactional")
    return etree.ElementTree(root)


def odm_path(out_dir: str | Path, study: Mapping[str, Any], file_type: str) -> Path:
    suffix = "" if file_type == "Transactional" else "_snapshot"
    return Path(out_dir) / f"{study['protocol_id']}_{study['site']['code']}_odm{suffix}.xml"


class OdmWriter:
    """One ODM file written as the data comes: :meth:`add` takes a normalised dataset of whole
    participants (successive calls in subject order) and writes their SubjectData — pretty-printed at
    the depth they have in the file, with the data queries' annotations (``annotations``: the
    :func:`server.exports.queries.odm_annotations` list) — to a spool file; :meth:`finish` writes
    the file: Study and AdminData (which need every actor, so they come last), then the spooled
    ClinicalData. The bytes are those of :func:`build_odm` of the whole dataset, annotated."""

    def __init__(self, out_dir: str | Path, head: Mapping[str, Any], *, file_type: str = "Transactional",
                 annotations: Iterable[Mapping[str, Any]] = ()) -> None:
        _check_file_type(file_type)
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.head = head
        self.file_type = file_type
        self.mdv_oid = _oid("MDV", head["study"]["protocol_version"])
        self.signoffs: dict[str, list[Mapping[str, Any]]] = {}
        for so in head.get("signoffs") or []:
            self.signoffs.setdefault(so["subject"], []).append(so)
        self.annotations: dict[str, list[Mapping[str, Any]]] = {}
        for a in annotations:
            self.annotations.setdefault(a["record_id"], []).append(a)
        self.record_actors: dict[str, Mapping[str, Any]] = {}
        self.enrolment_actors: dict[str, Mapping[str, Any]] = {}
        self.versions: set[str] = set()
        self.first_received: datetime | None = None
        self.subjects = 0
        self.annotated = 0
        self.part = tempfile.TemporaryFile()

    def add(self, dataset: Mapping[str, Any]) -> None:
        if not dataset["participants"]:
            return
        _record_actors(dataset, self.record_actors)
        _enrolment_actors(dataset, self.enrolment_actors)
        self.versions |= {r["instrument_version"] for r in dataset["records"]}
        for r in dataset["records"]:
            moment = parse_time(r["received_at"])
            if self.first_received is None or moment < self.first_received:
                self.first_received = moment
        subjects = {p["subject"] for p in dataset["participants"]}
        chunk = {**dataset, "signoffs": [so for s in sorted(subjects) for so in self.signoffs.get(s, [])]}
        holder = _el(None, "ODM")
        _clinical(holder, chunk, self.mdv_oid, self.file_type == "Transactional")
        notes = [a for r in dataset["records"] for a in self.annotations.get(r["id"], [])]
        if notes:
            from server.exports.queries import annotate_odm
            self.annotated += annotate_odm(etree.ElementTree(holder), notes)
        text = etree.tostring(holder, encoding="UTF-8", pretty_print=True)
        start = text.index(b">\n", text.index(b"<ClinicalData")) + 2
        self.part.write(text[start:text.rindex(b"  </ClinicalData>")])
        self.subjects += len(subjects)

    def close(self) -> None:
        self.part.close()

    def finish(self) -> list[Path]:
        actors = _signer_actors(self.head.get("signoffs") or [], {**self.record_actors, **{
            k: v for k, v in self.enrolment_actors.items() if k not in self.record_actors}})
        drafts = sorted(v for v in self.versions if re.search(r"draft-\d+$", v))
        root = _root(self.head, self.file_type, drafts, actors, self.first_received)
        _el(root, "ClinicalData", {"StudyOID": self.head["study"]["protocol_id"], "MetaDataVersionOID": self.mdv_oid})
        text = etree.tostring(etree.ElementTree(root), xml_declaration=True, encoding="UTF-8", pretty_print=True)
        at = text.rindex(b"<ClinicalData")
        close = text.index(b"/>", at)
        path = odm_path(self.out, self.head["study"], self.file_type)
        with path.open("wb") as fh:
            if not self.subjects:
                fh.write(text)
            else:
                fh.write(text[:close] + b">\n")
                self.part.seek(0)
                shutil.copyfileobj(self.part, fh)
                fh.write(b"  </ClinicalData>" + text[close + 2:])
        self.part.close()
        return [path]


def odm_export(dataset: Mapping[str, Any], out_dir: str | Path, *, file_type: str = "Transactional") -> list[Path]:
    """Write ``<protocol>_<site>_odm.xml`` (or ``…_odm_snapshot.xml``) into ``out_dir``; returns its path."""
    dataset = require_valid(dataset)
    writer = OdmWriter(out_dir, dataset, file_type=file_type)
    writer.add(dataset)
    return writer.finish()


def record_history(tree: etree._ElementTree, record_id: str) -> list[dict[str, Any]]:
    """Read back one record's transactions from an ODM tree: [{"transaction", "user", "when", "reason", "values"}]."""
    out = []
    q = lambda t: f"{{{ODM_NS}}}{t}"  # noqa: E731
    for form in tree.getroot().iter(q("FormData")):
        if form.get("FormRepeatKey") != record_id:
            continue
        ar = form.find(q("AuditRecord"))
        values = {i.get("ItemOID"): (i.get("Value"), i.get("TransactionType")) for i in form.iter(q("ItemData"))}
        out.append({"transaction": form.get("TransactionType"),
                    "user": ar.find(q("UserRef")).get("UserOID") if ar is not None else None,
                    "when": ar.findtext(q("DateTimeStamp")) if ar is not None else None,
                    "reason": ar.findtext(q("ReasonForChange")) if ar is not None else None,
                    "values": values})
    return out

