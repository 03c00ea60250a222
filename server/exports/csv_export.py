"""CSV export: one file per record type (current version) plus the participants, every version and
change, the audit trail, and a data dictionary describing every column of every file (EX-01, AT-08).

Files are UTF-8 with a byte-order mark and CRLF line ends, so a spreadsheet opens them directly.
Booleans are ``Y``/``N``; lists are joined with ``;``; an empty cell is "no value".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from server.exports.common import (
    META_FIELDS, Field, _txt, codes_text, csv_cell, fields_for, meta_values, payload_values, site_of,
    sorted_records, timelines, write_csv,
)
from server.exports.dataset import current_version, require_valid
from shared.vocab import RECORD_TYPES

PARTICIPANT_FIELDS: tuple[Field, ...] = (
    Field("subject", _txt("Study subject id", "受试者编号"), "text"),
    Field("site", _txt("Site code", "研究中心代码"), "text"),
    Field("status", _txt("Participation status", "参与状态"), "text"),
    Field("onset", _txt("Symptom onset (YYYY-MM or YYYY-MM-DD; a month-only onset is taken as the 15th)",
                        "症状起始时间（YYYY-MM 或 YYYY-MM-DD；仅有月份时按 15 日计）"), "text"),
    Field("first_dose_date", _txt("Planned first-dose date", "计划首次用药日期"), "date"),
    Field("day1", _txt("Study day 1: as staff confirmed it, else the date of dose 1 as given, else as planned",
                       "研究第 1 天：工作人员确认的日期；未确认时为首次实际用药日期；未用药时为计划日期"),
          "date", derivation="the day staff confirmed (day1_confirmations), else the local date of dose 1's"
                             " administered_at in the participant's zone, else first_dose_date"),
    Field("tz", _txt("Participant's time zone", "受试者所在时区"), "text"),
    Field("records", _txt("Number of accepted records", "已接收记录数"), "integer", derivation="count of records"),
)

VERSION_FIELDS: tuple[Field, ...] = (
    Field("record_id", _txt("Record id", "记录编号"), "text"),
    Field("subject", _txt("Study subject id", "受试者编号"), "text"),
    Field("type", _txt("Record type", "记录类型"), "text"),
    Field("version", _txt("Version number (1 = as entered)", "版本号（1 = 原始录入）"), "integer"),
    Field("created_at", _txt("Time of this version (UTC)", "该版本时间（UTC）"), "datetime"),
    Field("created_by_kind", _txt("Made by: device or staff", "由设备或工作人员产生"), "text"),
    Field("created_by_id", _txt("Made by (id)", "产生者编号"), "text"),
    Field("created_by_role", _txt("Role of the person who made it", "产生者角色"), "text"),
    Field("created_by_name", _txt("Printed name of the person who made it", "产生者姓名"), "text"),
    Field("requested_by", _txt("Who asked for the correction", "更正申请人"), "text"),
    Field("reason", _txt("Reason for change", "更改原因"), "text"),
    Field("field", _txt("Field changed (path in the payload); empty on version 1", "更改的字段（数据路径）；版本 1 为空"), "text"),
    Field("old", _txt("Value before", "更改前的值"), "text"),
    Field("new", _txt("Value after (version 1: the full original payload as JSON)", "更改后的值（版本 1：原始数据的完整 JSON）"), "text"),
)

AUDIT_FIELDS: tuple[Field, ...] = (
    Field("seq", _txt("Audit sequence number", "审计序号"), "integer"),
    Field("at", _txt("Server time (UTC)", "服务器时间（UTC）"), "datetime"),
    Field("actor", _txt("Who (staff account, device or system)", "执行者（工作人员账号、设备或系统）"), "text"),
    Field("action", _txt("Action", "操作"), "text"),
    Field("entity", _txt("What kind of thing", "对象类型"), "text"),
    Field("entity_id", _txt("Which one", "对象编号"), "text"),
    Field("detail", _txt("Details (JSON)", "详情（JSON）"), "text"),
)


def _file_fields() -> dict[str, tuple[Field, ...]]:
    out = {f"{t}.csv": META_FIELDS + fields_for(t) for t in RECORD_TYPES}
    out.update({"participants.csv": PARTICIPANT_FIELDS, "record_versions.csv": VERSION_FIELDS,
                "audit_trail.csv": AUDIT_FIELDS})
    return out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _change_value(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else _json(value))


class CsvWriter:
    """The CSV files written as the data comes: :meth:`add` takes a dataset of whole participants (one
    or more; successive calls in subject order), :meth:`add_audit` one audit row (in ``seq`` order),
    :meth:`finish` writes the data dictionary and returns the paths. Memory holds one chunk at a time."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.files = _file_fields()
        self._open: dict[str, tuple[Path, Any, Any]] = {}
        names = [f"{t}.csv" for t in RECORD_TYPES] + ["participants.csv", "record_versions.csv", "audit_trail.csv"]
        for name in names:
            path = self.out / name
            fh = path.open("w", encoding="utf-8-sig", newline="")
            writer = csv.writer(fh, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
            writer.writerow([csv_cell(f.name) for f in self.files[name]])
            self._open[name] = (path, fh, writer)

    def _rows(self, name: str, rows: Iterable[Iterable[Any]]) -> None:
        writer = self._open[name][2]
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])

    def add(self, dataset: Mapping[str, Any]) -> None:
        """Rows of a normalised dataset (:func:`require_valid`) holding whole participants."""
        tls, sites = timelines(dataset), site_of(dataset)
        for rtype in RECORD_TYPES:
            cols = self.files[f"{rtype}.csv"]
            self._rows(f"{rtype}.csv", ([values.get(f.name) for f in cols] for values in (
                {**meta_values(rec, tls[rec["participant"]], sites[rec["participant"]]),
                 **payload_values(rtype, current_version(rec)["payload"])}
                for rec in sorted_records(dataset, rtype))))
        counts: dict[str, int] = {}
        for rec in dataset["records"]:
            counts[rec["participant"]] = counts.get(rec["participant"], 0) + 1
        self._rows("participants.csv", (
            [p["subject"], sites[p["subject"]], p["status"], p["onset"], p["first_dose_date"],
             tls[p["subject"]].day1.isoformat(), p["tz"], counts.get(p["subject"], 0)]
            for p in sorted(dataset["participants"], key=lambda p: p["subject"])))
        self._rows("record_versions.csv", _version_rows(dataset))

    def add_audit(self, a: Mapping[str, Any]) -> None:
        self._rows("audit_trail.csv", [[a["seq"], a["at"], a["actor"], a["action"], a["entity"], a["entity_id"],
                                        a["detail"] if isinstance(a["detail"], str) else _json(a["detail"])]])

    def close(self) -> None:
        for _path, fh, _w in self._open.values():
            fh.close()

    def finish(self) -> list[Path]:
        self.close()
        written = [path for path, _fh, _w in self._open.values()]
        rows = [[fname, f.name, f.label["en"], f.label["zh-CN"], f.dtype, codes_text(f.codes, "en"),
                 codes_text(f.codes, "zh-CN"), "derived: " + f.derivation if f.derived else "collected"]
                for fname, cols in self.files.items() for f in cols]
        rows += _sdtm_dictionary_rows()
        written.append(write_csv(self.out / "data_dictionary.csv",
                                 ["file", "name", "label_en", "label_zh-CN", "type", "codes", "codes_zh-CN", "origin"],
                                 rows))
        return written


def _version_rows(dataset: Mapping[str, Any]) -> Iterator[list[Any]]:
    for rec in sorted_records(dataset):
        for v in rec["versions"]:
            by = v["created_by"]
            head = [rec["id"], rec["participant"], rec["type"], v["version"], v["created_at"], by["kind"], by["id"],
                    by.get("role"), by.get("name"), v.get("requested_by"), v.get("reason")]
            if v["version"] == 1:
                yield head + ["", "", _json(v["payload"])]
            for c in v["changes"]:
                yield head + [c["field"], _change_value(c["old"]), _change_value(c["new"])]


def csv_export(dataset: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the CSV files into ``out_dir``; returns their paths."""
    dataset = require_valid(dataset)
    writer = CsvWriter(out_dir)
    writer.add(dataset)
    for a in sorted(dataset["audit"], key=lambda a: a["seq"]):
        writer.add_audit(a)
    return writer.finish()


def _sdtm_dictionary_rows() -> list[list[Any]]:
    """The SDTM datasets' variables (``../sdtm/<name>.xpt`` and ``.csv``; define.xml has the full metadata)."""
    from server.exports.sdtm import CSV_NAMES
    from server.exports.xpt import DATASETS

    return [[f"../sdtm/{base}.xpt|.csv", v.name, v.label, f"SDTM 变量（标准英文标签）：{v.label}",
             ("decimal" if v.name in ("VISITNUM", "DFS", "QSSTRESN") else "integer") if v.numeric else
             ("datetime" if v.name.endswith("DTC") else "text"), "", "", v.origin.lower()]
            for name, base in CSV_NAMES.items() for v in DATASETS[name]["vars"]]


def probe_record(rec: Mapping[str, Any], ctx: Mapping[str, Any], _unused: Any = None) -> None:
    """Build one record's CSV row and version rows (for :mod:`server.exports.screen`)."""
    site = ctx["participant"].get("site") or ctx["dataset"]["study"]["site"]["code"]
    values = {**meta_values(rec, ctx["timeline"], site), **payload_values(rec["type"], current_version(rec)["payload"])}
    cells = [csv_cell(values.get(f.name)) for f in META_FIELDS + fields_for(rec["type"])]
    for v in rec["versions"]:
        cells += [csv_cell(v["created_at"]), _json(v["payload"])]
        cells += [_change_value(c["old"]) + _change_value(c["new"]) for c in v["changes"]]
    "".join(cells).encode("utf-8")


__all__ = ["csv_export", "CsvWriter"]
