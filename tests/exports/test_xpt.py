"""SDTM as SAS XPORT v5: every .xpt read back with pandas.read_sas (an independent reader) holds every
value of the dataset rows, exactly; define.xml is valid Define-XML 2.0 and describes every file."""

from __future__ import annotations

import math
from pathlib import Path

import odmlib
import pandas as pd
import pytest
from lxml import etree

from server.exports.dataset import require_valid
from server.exports.sdtm import CSV_NAMES, subject_rows, trial_summary
from server.exports.xpt import DATASETS, columns
from tests.exports.conftest import read_csv

DEFINE_XSD = Path(odmlib.__file__).parent / "schemas" / "define" / "2.0" / "define2-0-0.xsd"
ODM = "{http://www.cdisc.org/ns/odm/v1.3}"
DEF = "{http://www.cdisc.org/ns/def/v2.0}"


def expected_rows(ds) -> dict[str, list[dict]]:
    """The rows as the SDTM builder makes them, straight from the dataset (no file involved)."""
    ds = require_valid(ds)
    out: dict[str, list[dict]] = {k: [] for k in CSV_NAMES}
    for p in sorted(ds["participants"], key=lambda p: p["subject"]):
        got = subject_rows(ds, p, [r for r in ds["records"] if r["participant"] == p["subject"]])
        out["QS"] += got.qs
        out["SUPPQS"] += got.suppqs
        out["EC"] += got.ec
        out["SUPPEC"] += got.suppec
        out["DFS"].append(got.dfs)
    out["TS"] = trial_summary(ds)
    return out


#: pandas.read_sas reads an IBM zero as the smallest IBM float (pandas-dev/pandas#50670, open); the
#: bytes in the file are all zero (pyreadstat writes a true IBM zero), so that value means 0 here
PANDAS_IBM_ZERO = 5.397605346934028e-79


def _numeric(name: str, column: str) -> bool:
    return next(v.numeric for v in DATASETS[name]["vars"] if v.name == column)


def same(name: str, column: str, got, want) -> bool:
    if _numeric(name, column):
        if want in (None, ""):
            return isinstance(got, float) and math.isnan(got)
        return (0.0 if got == PANDAS_IBM_ZERO else float(got)) == float(want)
    return got == ("" if want is None else str(want))


def same_csv(name: str, column: str, got: str, want) -> bool:
    if want is None:
        return got == ""
    return float(got) == float(want) if _numeric(name, column) else got == str(want)


@pytest.mark.parametrize("name", list(CSV_NAMES))
def test_every_xpt_value_reads_back_with_pandas(exported, name):
    ds, out, _ = exported
    path = out / "sdtm" / f"{CSV_NAMES[name]}.xpt"
    assert path.read_bytes()[:80].startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD"), "SAS XPORT v5"
    frame = pd.read_sas(path, format="xport", encoding="utf-8")
    want = expected_rows(ds)[name]
    assert list(frame.columns) == columns(name)
    assert len(frame) == len(want) and len(want) > 0
    mismatches = [(i, c, frame.iloc[i][c], row.get(c)) for i, row in enumerate(want) for c in columns(name)
                  if not same(name, c, frame.iloc[i][c], row.get(c))]
    assert mismatches == []
    # the CSV twin carries the same values, verbatim
    csv_rows = read_csv(out / "sdtm" / f"{CSV_NAMES[name]}.csv")
    assert len(csv_rows) == len(want)
    bad = [(i, c, got[c], row.get(c)) for i, (row, got) in enumerate(zip(want, csv_rows)) for c in columns(name)
           if not same_csv(name, c, got[c], row.get(c))]
    assert bad == []


def test_xpt_limits_hold(exported):
    _, out, _ = exported
    for name, base in CSV_NAMES.items():
        frame = pd.read_sas(out / "sdtm" / f"{base}.xpt", format="xport", encoding="utf-8")
        assert all(len(c) <= 8 for c in frame.columns)
        for c in frame.columns:
            if frame[c].dtype == object:
                assert max((len(str(v).encode("utf-8")) for v in frame[c]), default=0) <= 200, (name, c)


def test_long_free_text_continues_in_numbered_qualifiers(tmp_path):
    from server.exports import sdtm_export
    from tests.exports.factories import make_dataset

    ds = make_dataset()
    missed = next(r for r in ds["records"] if r["type"] == "dose_confirmation"
                  and not r["versions"][-1]["payload"]["given"])
    text = "发烧不舒服" * 30 + "=end"  # 450+ bytes of UTF-8: three pieces
    for v in missed["versions"]:
        v["payload"]["missed_reason_text"] = text
    sdtm_export(ds, tmp_path)
    supp = pd.read_sas(tmp_path / "suppec.xpt", format="xport", encoding="utf-8")
    mine = supp[supp["QNAM"].str.startswith("ECREAST")]
    pieces = {}
    for _, r in mine.iterrows():
        pieces.setdefault(r["IDVARVAL"], []).append((r["QNAM"], r["QVAL"]))
    for parts in pieces.values():
        assert [q for q, _ in parts] == ["ECREASTX", "ECREAST1", "ECREAST2"]
        assert "".join(v for _, v in parts) == text, "verbatim: no apostrophe in an analysis file"


def test_same_data_same_bytes(tmp_path):
    from server.exports import sdtm_export
    from tests.exports.factories import make_dataset

    sdtm_export(make_dataset(), tmp_path / "a")
    sdtm_export(make_dataset(), tmp_path / "b")
    for base in CSV_NAMES.values():
        assert (tmp_path / "a" / f"{base}.xpt").read_bytes() == (tmp_path / "b" / f"{base}.xpt").read_bytes()


def test_define_xml_is_valid_define_2_0_and_describes_every_file(exported):
    _, out, _ = exported
    schema = etree.XMLSchema(etree.parse(str(DEFINE_XSD)))
    doc = etree.parse(str(out / "sdtm" / "define.xml"))
    assert schema.validate(doc), [e.message for e in schema.error_log][:5]
    mdv = doc.getroot().find(f"{ODM}Study/{ODM}MetaDataVersion")
    assert mdv.get(f"{DEF}DefineVersion") == "2.0.0"
    groups = {g.get("Name"): g for g in mdv.iter(f"{ODM}ItemGroupDef")}
    assert set(groups) == set(CSV_NAMES)
    items = {i.get("OID"): i for i in mdv.iter(f"{ODM}ItemDef")}
    for name, base in CSV_NAMES.items():
        g = groups[name]
        assert g.find(f"{DEF}leaf").get("{http://www.w3.org/1999/xlink}href") == f"{base}.xpt"
        assert (out / "sdtm" / f"{base}.xpt").is_file()
        refs = [r.get("ItemOID") for r in g.iter(f"{ODM}ItemRef")]
        assert [items[r].get("Name") for r in refs] == columns(name)
        frame = pd.read_sas(out / "sdtm" / f"{base}.xpt", format="xport", encoding="utf-8")
        for r in refs:
            item = items[r]
            if item.get("DataType") == "text":
                longest = max((len(str(v).encode("utf-8")) for v in frame[item.get("Name")]), default=1)
                assert int(item.get("Length")) >= longest, item.get("Name")
    codes = {c.get("CodedValue") for c in mdv.iter(f"{ODM}CodeListItem")}
    qs = pd.read_sas(out / "sdtm" / "qs.xpt", format="xport", encoding="utf-8")
    assert set(qs["QSTESTCD"]) <= codes


def test_define_xml_reads_with_odmlib(exported):
    import odmlib.define_loader as DL
    import odmlib.loader as LD

    _, out, _ = exported
    loader = LD.ODMLoader(DL.XMLDefineLoader(model_package="define_2_0"))
    loader.open_odm_document(str(out / "sdtm" / "define.xml"))
    mdv = loader.root().Study.MetaDataVersion
    assert [g.Name for g in mdv.ItemGroupDef] == list(CSV_NAMES)
    assert {i.Name for i in mdv.ItemDef} >= set(columns("QS")) | set(columns("EC")) | set(columns("DFS"))
