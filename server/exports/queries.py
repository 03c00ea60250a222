"""Data clarification queries in an export (issue 12): ``queries.csv`` (one row per message of every
query of the site) and ODM annotations on the queried items.

:func:`write_query_files` is the one call ``build.run_site_export`` makes (before the manifest is
rewritten, so the files are listed and hashed). The site export has its ODM writer place the
annotations as it writes each subject (``export_all(odm_annotations=odm_annotations(db, site_id))``,
:class:`server.exports.odm.OdmWriter` calls :func:`annotate_odm` on each subject's tree) and asks
:func:`write_query_files` for ``queries.csv`` only; called with ``annotate=True`` it annotates the ODM
files already in the folder and checks them against the ODM 1.3.2 schema again.

Queries hold staff questions and answers about records; the database holds no arm or dose level, so
neither can appear here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from lxml import etree
from sqlite_utils import Database

QUERIES_CSV = "queries.csv"
QUERY_COLUMNS = ["query_id", "subject", "record_id", "record_type", "field", "query_state", "raised_at",
                 "message_no", "action", "at", "staff_email", "staff_role", "text", "correction_version"]


def _odm_item_name(field: str | None) -> str | None:
    """``symptoms.epistaxis`` → ``epistaxis``, ``items.5a`` → ``item_5a`` (the ODM writer's item names)."""
    if not field:
        return None
    head, _, last = field.rpartition(".")
    return f"item_{last}" if head == "items" else last


def query_rows(db: Database, site_id: int) -> list[list[Any]]:
    from server.store.queries import queries_for_export

    rows = []
    for q in queries_for_export(db, site_id):
        for n, m in enumerate(q["thread"], 1):
            rows.append([q["id"], q["subject"], q["record_id"], q["record_type"], q["field"] or "", q["state"],
                         q["raised_at"], n, m["action"], m["at"], m["staff_email"], m["staff_role"], m["body"],
                         m["correction_version"] or ""])
    return rows


def odm_annotations(db: Database, site_id: int) -> list[dict[str, Any]]:
    """One annotation per query: ``{"record_id", "item" (ODM item name or None), "sponsor_or_site", "comment"}``."""
    from server.store.queries import queries_for_export

    out = []
    for q in queries_for_export(db, site_id):
        parts = [f"{m['action']} by {m['staff_role']} {m['staff_email']} at {m['at']}"
                 + (f": {m['body']}" if m["body"] else "")
                 + (f" (corrected: version {m['correction_version']})" if m["correction_version"] else "")
                 for m in q["thread"]]
        out.append({"record_id": q["record_id"], "item": _odm_item_name(q["field"]),
                    "sponsor_or_site": "Sponsor" if q["thread"] and q["thread"][0]["staff_role"] == "monitor" else "Site",
                    "comment": f"Query {q['id']} ({q['state']}) on {q['field'] or 'the whole entry'}. " + " | ".join(parts)})
    return out


def annotate_odm(tree: etree._ElementTree, annotations: Iterable[Mapping[str, Any]]) -> int:
    """Add an ``Annotation`` (with a ``Comment``) per query to the record's first FormData, on the queried
    ``ItemData`` when the item is there (else on the FormData). Returns how many were placed."""
    from server.exports.odm import item_oid
    from server.exports.validate import ODM_NS

    def q(tag: str) -> str:
        return f"{{{ODM_NS}}}{tag}"

    forms: dict[str, etree._Element] = {}
    for form in tree.getroot().iter(q("FormData")):
        forms.setdefault(form.get("FormRepeatKey"), form)
    placed = 0
    seq: dict[int, int] = {}
    for a in annotations:
        form = forms.get(a["record_id"])
        if form is None:
            continue
        target = None
        if a.get("item"):
            rtype = form.get("FormOID", "").removeprefix("F.").lower()
            want = item_oid(rtype, a["item"])
            target = next((i for i in form.iter(q("ItemData")) if i.get("ItemOID") == want), None)
        if target is None:
            target = form
        seq[id(target)] = seq.get(id(target), 0) + 1
        ann = etree.Element(q("Annotation"), {"SeqNum": str(seq[id(target)])})
        comment = etree.SubElement(ann, q("Comment"), {"SponsorOrSite": a["sponsor_or_site"]})
        comment.text = a["comment"]
        if target is form:       # FormData: (AuditRecord?, Signature?, ArchiveLayoutRef?, Annotation*, ItemGroupData*)
            first_group = form.find(q("ItemGroupData"))
            if first_group is not None:
                first_group.addprevious(ann)
            else:
                form.append(ann)
        else:                    # ItemData: (AuditRecord?, Signature?, MeasurementUnitRef?, Annotation*)
            target.append(ann)
        placed += 1
    return placed


def write_query_files(db: Database, site_id: int, out_dir: Path, *, annotate: bool = True) -> list[Path]:
    """``queries.csv`` in the export folder, and (``annotate``) the annotations in its ODM files; the
    paths to list. :func:`server.exports.build.run_site_export` has the ODM writer place the
    annotations as it writes (``export_all(odm_annotations=…)``) and passes ``annotate=False``."""
    from server.exports.build import _csv_bytes
    from server.exports.validate import safe_parser, validate_odm

    out_dir = Path(out_dir)
    path = out_dir / QUERIES_CSV
    path.write_bytes(_csv_bytes(QUERY_COLUMNS, query_rows(db, site_id)))  # every cell defused there
    annotations = odm_annotations(db, site_id) if annotate else []
    if annotations:
        for odm in sorted(out_dir.rglob("*_odm*.xml")):
            tree = etree.parse(str(odm), safe_parser())
            if annotate_odm(tree, annotations):
                problems = validate_odm(tree)
                if problems:
                    raise ValueError(f"{odm.name} with query annotations is not valid ODM: {problems[:3]}")
                odm.write_bytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True))
    return [path]
