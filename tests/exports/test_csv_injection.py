"""CSV injection (OWASP; issue 16.8): one defuse function for every spreadsheet CSV the server writes,
property-tested; leading white space, newline, tab or CR before a formula character, the DDE pipe, the
percent sign and the full-width forms are all caught; every column of every file; analysis files
(SDTM) stay verbatim."""

from __future__ import annotations

import csv
import io
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from server.exports.common import csv_cell, write_csv
from server.store.audit_search import CSV_COLUMNS, audit_csv
from shared.csv_safe import FORMULA_CHARS, defuse, needs_defuse, spreadsheet_csv

STARTS = sorted(FORMULA_CHARS)
LEADS = ["", " ", "  ", "\n", "\r\n", "\t", "\u3000", "\u00a0", " \t\n"]
HOSTILE = [lead + start + "cmd|' /C calc'!A0" for lead in LEADS for start in STARTS]


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def spreadsheet_would_run(cell: str) -> bool:
    """What a spreadsheet does with a cell: leading white space is skipped, then a formula character runs."""
    return needs_defuse(cell)


def test_formula_text_is_prefixed_and_numbers_are_not():
    assert csv_cell("=HYPERLINK(\"http://x\",\"click\")") == "'=HYPERLINK(\"http://x\",\"click\")"
    for start in ("+1", "-cmd", "@SUM(A1)", "\tx", "|calc", "%0A", " =1", "\n=1", "＝1", "＋1", "－1", "＠A1"):
        assert csv_cell(start) == "'" + start, start
    assert csv_cell(-3) == "-3" and csv_cell(-0.5) == "-0.5"
    assert csv_cell("鼻子痒") == "鼻子痒" and csv_cell(None) == "" and csv_cell(True) == "Y"
    assert csv_cell(["=a", "b"]) == "'=a;b", "a joined list is text too"


@settings(max_examples=400, deadline=None)
@given(lead=st.sampled_from(LEADS), start=st.sampled_from(STARTS + list(string.ascii_letters + "0'\"鼻")),
       rest=st.text(max_size=30))
def test_defuse_property(lead, start, rest):
    text = lead + start + rest
    out = defuse(text)
    # never a formula after defusing, and the original is recoverable (one apostrophe at most)
    assert not spreadsheet_would_run(out)
    assert out == text or out == "'" + text
    assert (out != text) == needs_defuse(text)
    if start in FORMULA_CHARS or lead.startswith(("\t", "\r", "\n")):
        assert out == "'" + text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False), st.none()),
                         min_size=1, max_size=5), min_size=1, max_size=5))
def test_every_cell_of_every_row_is_defused_and_quoted(rows):
    width = max(len(r) for r in rows)
    rows = [r + [None] * (width - len(r)) for r in rows]
    text = spreadsheet_csv([f"c{i}" for i in range(width)], rows)
    back = parsed(text)[1:]
    assert len(back) == len(rows)
    for got_row, want_row in zip(back, rows):
        for got, want in zip(got_row, want_row):
            assert not spreadsheet_would_run(got) or isinstance(want, (int, float))
            if isinstance(want, str):
                assert got in (want, "'" + want)
    again = io.StringIO()
    csv.writer(again, lineterminator="\r\n", quoting=csv.QUOTE_ALL).writerows(parsed(text))
    assert again.getvalue() == text, "every cell quoted (OWASP)"


def test_written_export_file_holds_the_defused_cells(tmp_path):
    path = write_csv(tmp_path / "x.csv", ["note", "day"], [[h, -2] for h in HOSTILE])
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    assert [r[0] for r in rows[1:]] == ["'" + h for h in HOSTILE]
    assert {r[1] for r in rows[1:]} == {"-2"}


def test_audit_csv_defuses_every_column():
    """entity_id and actor_name were missed before: every column of the staff audit download now."""
    rows = []
    for h in HOSTILE:
        rows.append({"seq": 1, "at": h, "at_local": h, "actor": h, "actor_name": h, "action": h, "entity": h,
                     "entity_id": h, "detail": h, "app_version": h, "hash": h})
    back = parsed(audit_csv(rows))
    assert back[0] == list(CSV_COLUMNS)
    for row, h in zip(back[1:], HOSTILE):
        assert row[0] == "1"
        for name, cell in zip(CSV_COLUMNS[1:], row[1:]):
            assert not spreadsheet_would_run(cell), name
            if name != "detail":  # detail is JSON-encoded first
                assert cell == "'" + h, name
