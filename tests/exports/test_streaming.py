"""A site export holds one participant at a time (issue 13): memory does not grow with the study.

The export reads a :class:`server.exports.Source` chunk by chunk. These tests count the record objects
alive while the export asks for the next participant — with every record tracked, including the
copies the screen and the writers make — so an export that kept earlier participants (a list of rows,
a tree, a DataFrame of records) fails here without any timing. The streamed files are the same bytes
as those of the whole-dataset path, and the database reader is lazy.
"""

from __future__ import annotations

import copy
import gc
import inspect
import weakref
from datetime import date, datetime, timezone

from server.exports import Source, dataset_source, export_all
from server.exports.screen import HeldBack
from tests.exports.factories import make_dataset, participant_records, stored

REFS: list[weakref.ref] = []


def live() -> int:
    gc.collect()
    return sum(1 for r in REFS if r() is not None)


class Rec(dict):
    """A record dict that is counted while alive; ``copy.deepcopy`` keeps the class, so copies count too."""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls, *args, **kwargs)
        REFS.append(weakref.ref(obj))
        return obj

    def __deepcopy__(self, memo):
        out = Rec()
        memo[id(self)] = out
        for k, v in self.items():
            out[copy.deepcopy(k, memo)] = copy.deepcopy(v, memo)
        return out


def _study(n: int) -> dict:
    ds = make_dataset(generated_at=datetime(2026, 6, 1, 2, 0, tzinfo=timezone.utc))
    ds["participants"], ds["records"], ds["audit"] = [], [], []
    seq = 0
    for i in range(n):
        subject = f"P-{i + 1:03d}"
        first = date(2026, 3, 2 + i % 20)
        ds["participants"].append({"subject": subject, "site": "BJ01", "status": "enrolled", "onset": "2025-06",
                                   "first_dose_date": first.isoformat(), "tz": "Asia/Shanghai"})
        for env in participant_records(subject, first, seed=f"s{i}", respondent="caregiver" if i % 3 == 0 else "participant"):
            seq += 1
            rec = stored(env, seq, device=f"D-{i:03d}")
            ds["records"].append(rec)
            ds["audit"].append({"seq": seq, "at": rec["received_at"], "actor": f"device:D-{i:03d}",
                                "action": "record.accept", "entity": "record", "entity_id": rec["id"], "detail": {}})
    return ds


def _counting_source(ds: dict, seen: list[int]) -> Source:
    """The dataset as a Source whose records are built only when asked for, counting live records then."""
    plain = dataset_source(ds)

    def chunks():
        for participant, records in plain.chunks:
            seen.append(live())
            yield participant, [Rec(copy.deepcopy(r)) for r in records]
        seen.append(live())

    return Source(plain.head, chunks(), plain.audit)


def test_an_export_holds_one_participant_at_a_time(tmp_path):
    ds = _study(12)
    per_participant = max(sum(1 for r in ds["records"] if r["participant"] == p["subject"]) for p in ds["participants"])
    seen: list[int] = []
    streamed = export_all(_counting_source(ds, seen), tmp_path / "streamed")
    assert streamed["counts"]["participants"] == 12 and streamed["counts"]["records_total"] == len(ds["records"])
    assert len(seen) == 13 and max(seen) > 0, "the export must have read the records through the source"
    # the chunk just written (and its screened copy) may still be alive; earlier participants may not
    assert max(seen) <= 2 * per_participant, (seen, per_participant)
    assert len(ds["records"]) > 5 * per_participant


def test_the_streamed_files_are_those_of_the_whole_dataset(tmp_path):
    ds = _study(5)
    whole = export_all(copy.deepcopy(ds), tmp_path / "whole")
    streamed = export_all(dataset_source(copy.deepcopy(ds)), tmp_path / "streamed")
    assert whole["files"] == streamed["files"]
    assert whole == streamed


def test_what_the_reader_holds_back_while_streaming_is_reported(tmp_path):
    ds = _study(2)
    plain = dataset_source(ds)
    held: list[HeldBack] = []

    def chunks():
        for participant, records in plain.chunks:
            held.append(HeldBack("record", f"bad-{participant['subject']}", participant["subject"], "stored row",
                                 "cannot be decoded"))
            yield participant, records

    manifest = export_all(Source(plain.head, chunks(), plain.audit, held), tmp_path / "e", formats=("csv",))
    assert manifest["held_back"]["count"] == 2
    assert [i.split(":")[0] for i in manifest["held_back"]["items"]] == ["record bad-P-001 of P-001",
                                                                         "record bad-P-002 of P-002"]


def test_the_database_reader_is_lazy(tmp_path):
    from server.db import open_db
    from server.exports.build import site_source
    from server.migrations import migrate
    from shared.protocol import load_protocol
    from tests.server.helpers import seed

    db = open_db(tmp_path / "s.sqlite")
    migrate(db)
    seed(db)
    source = site_source(db, "BJ01", generated_by="test", protocol=load_protocol())
    assert inspect.isgenerator(source.chunks) and inspect.isgenerator(source.audit)
    assert source.unique_ids


def test_pretty_json_is_json_dumps_with_an_indent(exported):
    import json

    from server.exports.fhir import pretty_json

    _, out, _ = exported
    bundle = json.loads((out / "fhir" / "QuestionnaireResponse-bundle.json").read_text(encoding="utf-8"))
    tricky = {"a": [], "b": {}, "c": [1, 2.5, -0.0, 1e-7, True, False, None], "d": "引号 \" \\ \n \t \u0001 \u2028",
              "e": [{"f": [[], [{}]]}], "g": 10 ** 20, "h": 3.0}
    for value in (bundle, tricky, [], {}, "x", 1, None):
        assert pretty_json(value) == json.dumps(value, ensure_ascii=False, indent=2)


def test_ibm_doubles_are_those_pyreadstat_writes(tmp_path):
    import pandas as pd
    import pyreadstat

    from server.exports.xpt import _OBS_HEADER, ibm_double

    values = [0.0, 0.01, 1.01, 101.01, -3.5, 1 / 3, 1e-10, 123456.789, 48.0, 0.5, 2.0 ** 60, -7.25, 9.99, float("nan")]
    path = tmp_path / "n.xpt"
    pyreadstat.write_xport(pd.DataFrame({"N": pd.Series(values, dtype="float64")}), str(path), table_name="N",
                           file_format_version=5)
    raw = path.read_bytes()
    obs = raw[raw.index(_OBS_HEADER) + 80:]
    assert obs[:8 * len(values)] == b"".join(ibm_double(v) for v in values)


def test_the_streamed_odm_validation_catches_what_the_whole_tree_one_does(exported, tmp_path):
    from server.exports.validate import validate_odm, validate_odm_file

    _, out, _ = exported
    odm = next((out / "odm").glob("*_odm.xml"))
    assert validate_odm_file(odm) == [] == validate_odm(odm)
    text = odm.read_text(encoding="utf-8")
    broken = {
        "schema": text.replace("<SiteRef ", "<SiteReference ", 1),
        "reference": text[:(at := text.index("<ClinicalData"))]
        + text[at:].replace('ItemOID="IT.RECORD.RECORD_ID"', 'ItemOID="IT.RECORD.NO_SUCH_ITEM"', 1),
    }
    for name, body in broken.items():
        path = tmp_path / f"{name}.xml"
        path.write_text(body, encoding="utf-8")
        streamed, whole = validate_odm_file(path), validate_odm(path)
        assert streamed and whole, name
        if name == "reference":
            assert streamed == whole == ["ItemData ItemOID='IT.RECORD.NO_SUCH_ITEM' has no ItemDef"]
        else:
            assert "SiteReference" in streamed[0] and streamed[0].startswith("line ")
