"""SAS XPORT v5 (.xpt) files of the SDTM datasets (pyreadstat) and their Define-XML 2.0 description.

XPORT v5, the transport format FDA and PMDA take: dataset and variable names ≤ 8 characters, labels
≤ 40, character values ≤ 200 bytes (longer SUPP text continues in QNAM1, QNAM2 …), numbers as IBM
doubles. Text is written UTF-8 (Chinese free text in SUPPEC QVAL stays readable with
``pandas.read_sas(path, encoding="utf-8")``); values are verbatim, never an apostrophe added.

``define.xml`` (Define-XML 2.0.0 on ODM 1.3.2) lists each dataset (``ItemGroupDef`` with ``def:leaf``
to its .xpt), each variable (``ItemDef`` with DataType, Length, origin, label), the sponsor-defined
QSTESTCD code list with decodes, and derivation methods for derived rows.
"""

from __future__ import annotations

import math
import pickle
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from lxml import etree

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True)
class Var:
    name: str
    label: str
    numeric: bool = False
    origin: str = "Collected"        # Collected | Derived | Assigned | Protocol


def _v(name: str, label: str, numeric: bool = False, origin: str = "Collected") -> Var:
    assert len(name) <= 8 and len(label) <= 40, name
    return Var(name, label, numeric, origin)


_ID = [_v("STUDYID", "Study Identifier", origin="Assigned"), _v("DOMAIN", "Domain Abbreviation", origin="Assigned"),
       _v("USUBJID", "Unique Subject Identifier", origin="Assigned")]
_VISIT = [_v("VISITNUM", "Visit Number", True, "Derived"), _v("VISIT", "Visit Name", origin="Derived"),
          _v("EPOCH", "Epoch", origin="Derived")]
DATASETS: dict[str, dict[str, Any]] = {
    "QS": {"label": "Questionnaires", "class": "FINDINGS", "structure": "One record per question per response",
           "keys": ("STUDYID", "USUBJID", "QSCAT", "QSTESTCD", "VISITNUM", "QSDTC"), "vars": [
        *_ID, _v("QSSEQ", "Sequence Number", True, "Derived"), _v("QSGRPID", "Group ID"),
        _v("QSSPID", "Sponsor-Defined Identifier"), _v("QSTESTCD", "Question Short Name"),
        _v("QSTEST", "Question Name"), _v("QSCAT", "Category of Question", origin="Assigned"),
        _v("QSORRES", "Finding in Original Units"), _v("QSSTRESC", "Character Result/Finding in Std Format"),
        _v("QSSTRESN", "Numeric Finding in Standard Units", True), _v("QSSTAT", "Completion Status"),
        _v("QSREASND", "Reason Not Performed"), _v("QSBLFL", "Baseline Flag", origin="Derived"),
        _v("QSDRVFL", "Derived Flag", origin="Derived"), _v("QSEVAL", "Evaluator"), *_VISIT,
        _v("QSDTC", "Date/Time of Finding"), _v("QSDY", "Study Day of Finding", True, "Derived")]},
    "EC": {"label": "Exposure as Collected", "class": "INTERVENTIONS",
           "structure": "One record per nostril per dose confirmation", "keys": ("STUDYID", "USUBJID", "ECSTDTC", "ECLAT"),
           "vars": [
        *_ID, _v("ECSEQ", "Sequence Number", True, "Derived"), _v("ECGRPID", "Group ID"),
        _v("ECSPID", "Sponsor-Defined Identifier"), _v("ECTRT", "Name of Treatment", origin="Assigned"),
        _v("ECMOOD", "Mode", origin="Assigned"), _v("ECPRESP", "Pre-Specified", origin="Assigned"),
        _v("ECOCCUR", "Occurrence"), _v("ECREASOC", "Reason for Occur Value"), _v("ECDOSE", "Dose", True),
        _v("ECDOSTXT", "Dose Description"), _v("ECDOSU", "Dose Units", origin="Assigned"),
        _v("ECROUTE", "Route of Administration", origin="Assigned"), _v("ECLAT", "Laterality"), *_VISIT,
        _v("ECSTDTC", "Start Date/Time of Treatment"), _v("ECENDTC", "End Date/Time of Treatment"),
        _v("ECSTDY", "Study Day of Start of Treatment", True, "Derived"),
        _v("ECENDY", "Study Day of End of Treatment", True, "Derived")]},
    "SUPPQS": {"label": "Supplemental Qualifiers for QS", "class": "RELATIONSHIP",
               "structure": "One record per supplemental qualifier per response", "keys": ("STUDYID", "USUBJID", "IDVARVAL", "QNAM")},
    "SUPPEC": {"label": "Supplemental Qualifiers for EC", "class": "RELATIONSHIP",
               "structure": "One record per supplemental qualifier per EC record", "keys": ("STUDYID", "USUBJID", "IDVARVAL", "QNAM")},
    "TS": {"label": "Trial Summary", "class": "TRIAL DESIGN", "structure": "One record per trial summary parameter",
           "keys": ("STUDYID", "TSPARMCD"), "vars": [
        _v("STUDYID", "Study Identifier", origin="Assigned"), _v("DOMAIN", "Domain Abbreviation", origin="Assigned"),
        _v("TSSEQ", "Sequence Number", True, "Assigned"), _v("TSPARMCD", "Trial Summary Parameter Short Name", origin="Protocol"),
        _v("TSPARM", "Trial Summary Parameter", origin="Protocol"), _v("TSVAL", "Parameter Value", origin="Protocol")]},
    "DFS": {"label": "Subject-Level ALSFRS-R Progression (dFS)", "class": "SPECIAL PURPOSE",
            "structure": "One record per subject", "keys": ("STUDYID", "USUBJID"), "vars": [
        _v("STUDYID", "Study Identifier", origin="Assigned"), _v("USUBJID", "Unique Subject Identifier", origin="Assigned"),
        _v("SUBJID", "Subject Identifier for the Study"), _v("SITEID", "Study Site Identifier", origin="Assigned"),
        _v("REGID", "Registry Identifier (NCT)", origin="Protocol"), _v("ONSETDTC", "Date of Symptom Onset"),
        _v("RFSTDTC", "First Dose Date/Time (Dose 1 as Given)", origin="Derived"),
        _v("BLDTC", "Date/Time of Baseline ALSFRS-R", origin="Derived"),
        _v("BLTOTAL", "Baseline ALSFRS-R Total", True, "Derived"),
        _v("DFS", "Delta FS (48-total)/months since onset", True, "Derived"),
        _v("DFSU", "Delta FS Unit", origin="Assigned"), _v("DFSREAS", "Reason Delta FS Not Computed", origin="Derived")]},
}
_SUPP_VARS = [_v("STUDYID", "Study Identifier", origin="Assigned"), _v("RDOMAIN", "Related Domain Abbreviation", origin="Assigned"),
              _v("USUBJID", "Unique Subject Identifier", origin="Assigned"), _v("IDVAR", "Identifying Variable", origin="Assigned"),
              _v("IDVARVAL", "Identifying Variable Value", origin="Assigned"), _v("QNAM", "Qualifier Variable Name", origin="Assigned"),
              _v("QLABEL", "Qualifier Variable Label", origin="Assigned"), _v("QVAL", "Data Value"),
              _v("QORIG", "Origin", origin="Assigned")]
DATASETS["SUPPQS"]["vars"] = _SUPP_VARS
DATASETS["SUPPEC"]["vars"] = _SUPP_VARS


def columns(dataset: str) -> list[str]:
    return [v.name for v in DATASETS[dataset]["vars"]]


def frame(dataset: str, rows: Iterable[Mapping[str, Any]]):
    """A pandas DataFrame of the rows in the dataset's column order: numbers float (NaN when empty),
    text str ('' when empty)."""
    import pandas as pd

    out: dict[str, list[Any]] = {v.name: [] for v in DATASETS[dataset]["vars"]}
    numeric = {v.name for v in DATASETS[dataset]["vars"] if v.numeric}
    for row in rows:
        for name, values in out.items():
            value = row.get(name)
            if name in numeric:
                values.append(float("nan") if value in (None, "") else float(value))
            else:
                values.append("" if value is None else str(value))
    return pd.DataFrame({name: pd.Series(values, dtype="float64" if name in numeric else "object")
                         for name, values in out.items()})


def lengths(df) -> dict[str, int]:
    """Byte length of each text column (at least 1), as the XPT and define.xml declare it."""
    out = {}
    for name in df.columns:
        if df[name].dtype == object:
            out[name] = max([1, *(len(str(v).encode("utf-8")) for v in df[name])])
    return out


_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")


def write_xpt(path: Path, dataset: str, df, stamp: datetime | None = None) -> dict[str, int]:
    """Write one XPORT v5 file; returns the text column lengths. ``stamp`` (the export's generated_at)
    replaces the writer's wall-clock created/modified times in the headers, so the same data always
    gives the same bytes."""
    import pyreadstat

    meta = DATASETS[dataset]
    widths = lengths(df)
    too_long = {k: v for k, v in widths.items() if v > 200}
    if too_long:
        raise ValueError(f"{dataset}: XPORT v5 text is at most 200 bytes: {too_long}")
    pyreadstat.write_xport(df, str(path), file_label=meta["label"][:40], table_name=dataset,
                           column_labels=[v.label for v in meta["vars"]], file_format_version=5,
                           variable_format={})
    if stamp is not None:
        text = stamp.astimezone(timezone.utc).strftime("%d%b%y:%H:%M:%S").upper().encode("ascii")
        raw = path.read_bytes()
        head = raw.index(b"HEADER RECORD*******NAMESTR")
        path.write_bytes(_STAMP.sub(text, raw[:head]) + raw[head:])
    return widths


_OBS_HEADER = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"


def ibm_double(value: float) -> bytes:
    """An IEEE double as the 8-byte IBM hexadecimal float XPORT stores (exact: 56 mantissa bits hold
    IEEE's 53); NaN is SAS's missing value ``.``."""
    if value != value:
        return b"." + bytes(7)
    if value == 0:
        return bytes(8)
    sign = 0x80 if value < 0 else 0
    mantissa, exp2 = math.frexp(abs(value))     # value = mantissa * 2**exp2, 0.5 <= mantissa < 1
    exp16 = -(-exp2 // 4)                       # value = fraction * 16**exp16, 1/16 <= fraction < 1
    fraction = int(math.ldexp(mantissa, 56 - (4 * exp16 - exp2)))
    if not 0 <= exp16 + 64 <= 127:
        raise ValueError(f"{value!r} is outside the range of an XPORT number")
    return bytes([sign | (exp16 + 64)]) + fraction.to_bytes(7, "big")


class XptWriter:
    """One XPORT v5 dataset written without holding its rows: :meth:`add` spools rows (one JSON line
    each) and tracks each text column's width; :meth:`write` takes the header pyreadstat writes for
    those widths (from one row of maximal width) and appends every spooled row encoded as pyreadstat
    encodes it — text UTF-8 padded with blanks, numbers IBM doubles — so the file is byte-for-byte the
    one :func:`write_xpt` writes of the whole :func:`frame`."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.vars = DATASETS[dataset]["vars"]
        self.widths = {v.name: 1 for v in self.vars if not v.numeric}
        self.spool = tempfile.TemporaryFile()
        self.count = 0

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        batch = []
        for row in rows:
            values: list[Any] = []
            for v in self.vars:
                value = row.get(v.name)
                if v.numeric:
                    values.append(None if value in (None, "") else float(value))
                else:
                    text = "" if value is None else str(value)
                    self.widths[v.name] = max(self.widths[v.name], len(text.encode("utf-8")))
                    values.append(text)
            batch.append(values)
        if batch:
            pickle.dump(batch, self.spool, protocol=pickle.HIGHEST_PROTOCOL)
            self.count += len(batch)

    def write(self, path: Path, stamp: datetime | None = None) -> dict[str, int]:
        """Write the file; returns the text column widths (as :func:`write_xpt`)."""
        import pandas as pd

        widest = pd.DataFrame({v.name: pd.Series([float("nan")] if v.numeric else ["x" * self.widths[v.name]],
                                                 dtype="float64" if v.numeric else "object") for v in self.vars})
        widths = write_xpt(path, self.dataset, widest, stamp)
        if widths != self.widths:
            raise AssertionError(f"{self.dataset}: pyreadstat sized the columns {widths}, not {self.widths}")
        raw = path.read_bytes()
        head = raw[:raw.index(_OBS_HEADER) + 80]
        size = 0
        with path.open("wb") as fh:
            fh.write(head)
            self.spool.seek(0)
            layout = [None if v.numeric else self.widths[v.name] for v in self.vars]
            while True:
                try:
                    batch = pickle.load(self.spool)
                except EOFError:
                    break
                out = bytearray()
                for values in batch:
                    for width, value in zip(layout, values):
                        if width is None:
                            out += ibm_double(float("nan") if value is None else value)
                        else:
                            out += value.encode("utf-8").ljust(width, b" ")
                fh.write(out)
                size += len(out)
            if size % 80:
                fh.write(b" " * (80 - size % 80))
        self.spool.close()
        return widths


# --- Define-XML 2.0 -------------------------------------------------------------------------------------

def _e(parent, tag: str, attrib: Mapping[str, Any] | None = None, text: str | None = None, ns: str = ODM_NS):
    attrs = {k: str(v) for k, v in (attrib or {}).items() if v is not None}
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _desc(parent, text: str) -> None:
    _e(_e(parent, "Description"), "TranslatedText", {XML_LANG: "en"}, text)


def define_xml(path: Path, *, studyid: str, regid: str, title: str, created: str, files: Mapping[str, str],
               widths: Mapping[str, Mapping[str, int]], testcodes: Iterable[tuple[str, str]],
               methods: Mapping[str, str]) -> Path:
    """Write ``define.xml`` for the datasets in ``files`` (``{"QS": "qs.xpt", …}``)."""
    root = etree.Element(f"{{{ODM_NS}}}ODM", {
        "FileType": "Snapshot", "FileOID": f"DEFINE.{studyid}", "CreationDateTime": created, "ODMVersion": "1.3.2",
        "Originator": "ALS ePRO", "SourceSystem": "ALS ePRO"},
        nsmap={None: ODM_NS, "def": DEF_NS, "xlink": XLINK_NS})
    study = _e(root, "Study", {"OID": studyid})
    gv = _e(study, "GlobalVariables")
    _e(gv, "StudyName", text=studyid)
    _e(gv, "StudyDescription", text=f"{title} (registry {regid})")
    _e(gv, "ProtocolName", text=studyid)
    mdv = _e(study, "MetaDataVersion", {"OID": f"MDV.{studyid}.SDTMIG.3.3", "Name": f"{studyid} SDTM",
                                        "Description": "SDTM-style tabulation of ALS ePRO data; QS codes are sponsor-defined",
                                        f"{{{DEF_NS}}}DefineVersion": "2.0.0",
                                        f"{{{DEF_NS}}}StandardName": "SDTM-IG", f"{{{DEF_NS}}}StandardVersion": "3.3"})
    items: dict[str, tuple[Var, int | None]] = {}
    for name, href in files.items():
        meta = DATASETS[name]
        ig = _e(mdv, "ItemGroupDef", {
            "OID": f"IG.{name}", "Name": name, "Repeating": "No" if name in ("TS", "DFS") else "Yes",
            "IsReferenceData": "Yes" if name == "TS" else "No", "SASDatasetName": name,
            "Domain": name if not name.startswith("SUPP") else name, "Purpose": "Tabulation",
            f"{{{DEF_NS}}}Structure": meta["structure"], f"{{{DEF_NS}}}Class": meta["class"],
            f"{{{DEF_NS}}}ArchiveLocationID": f"LF.{name}"})
        _desc(ig, meta["label"])
        for i, v in enumerate(meta["vars"], start=1):
            oid = f"IT.{name}.{v.name}"
            key = meta["keys"].index(v.name) + 1 if v.name in meta["keys"] else None
            _e(ig, "ItemRef", {"ItemOID": oid, "OrderNumber": i, "Mandatory": "Yes" if key else "No",
                               "KeySequence": key, "MethodOID": f"MT.{name}.{v.name}" if f"{name}.{v.name}" in methods else None})
            items[oid] = (v, None if v.numeric else widths.get(name, {}).get(v.name, 1))
        leaf = _e(ig, "leaf", {"ID": f"LF.{name}", f"{{{XLINK_NS}}}href": href}, ns=DEF_NS)
        _e(leaf, "title", text=href, ns=DEF_NS)
    for oid, (v, length) in items.items():
        dtype = "float" if v.numeric else ("datetime" if v.name.endswith("DTC") else "text")
        attrs = {"OID": oid, "Name": v.name, "SASFieldName": v.name, "DataType": dtype,
                 "Length": length if dtype == "text" else (8 if v.numeric else None)}
        if dtype == "float":
            attrs["SignificantDigits"] = 4
        idef = _e(mdv, "ItemDef", attrs)
        _desc(idef, v.label)
        if v.name == "QSTESTCD":
            _e(idef, "CodeListRef", {"CodeListOID": "CL.QSTESTCD"})
        _e(idef, "Origin", {"Type": v.origin}, ns=DEF_NS)
    cl = _e(mdv, "CodeList", {"OID": "CL.QSTESTCD", "Name": "QSTESTCD (sponsor-defined)", "DataType": "text"})
    for code, decode in testcodes:
        item = _e(cl, "CodeListItem", {"CodedValue": code})
        _e(_e(item, "Decode"), "TranslatedText", {XML_LANG: "en"}, decode)
    for key, text in methods.items():
        md = _e(mdv, "MethodDef", {"OID": f"MT.{key}", "Name": f"Derive {key}", "Type": "Computation"})
        _desc(md, text)
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
    return path


__all__ = ["DATASETS", "columns", "frame", "write_xpt", "define_xml", "lengths"]
