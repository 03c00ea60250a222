"""Free text that a spreadsheet would run as a formula is defused in CSV files, kept verbatim elsewhere."""

import csv

from server.exports.common import csv_cell, write_csv


def test_formula_text_is_prefixed_and_numbers_are_not():
    assert csv_cell("=HYPERLINK(\"http://x\",\"click\")") == "'=HYPERLINK(\"http://x\",\"click\")"
    for start in ("+1", "-cmd", "@SUM(A1)", "\tx"):
        assert csv_cell(start) == "'" + start
    assert csv_cell(-3) == "-3" and csv_cell(-0.5) == "-0.5"
    assert csv_cell("鼻子痒") == "鼻子痒" and csv_cell(None) == "" and csv_cell(True) == "Y"


def test_written_file_holds_the_defused_cell(tmp_path):
    path = write_csv(tmp_path / "x.csv", ["note", "day"], [["=1+1", -2]])
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[1] == ["'=1+1", "-2"]
