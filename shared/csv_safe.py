"""The one CSV-injection defuse every spreadsheet CSV the server writes goes through (OWASP CSV Injection).

A spreadsheet runs a cell as a formula when its text starts with ``=``, ``+``, ``-``, ``@`` (and, in
some spreadsheets, ``|`` for DDE and ``%``), also after leading white space, a tab, a carriage return
or a line feed, and also with the full-width forms ``＝ ＋ － ＠`` that some spreadsheets fold to ASCII.
OWASP's guidance: prefix such a cell with a single quote, and quote every cell so a separator inside it
cannot start a new one (``csv.writer`` with ``QUOTE_ALL``). Numbers (``int``/``float``) are written as
numbers and never prefixed. Analysis files (SDTM CSV and XPT, ODM, FHIR) stay verbatim: only the
spreadsheet CSVs (the CSV export, the review files, the staff audit CSV download) are defused.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable

#: characters that start a formula in a spreadsheet, after any leading white space
FORMULA_CHARS = frozenset("=+-@|%\uff1d\uff0b\uff0d\uff20\ufe62\ufe63\uff05\uff5c")
#: a cell starting with one of these is suspect even before looking further (OWASP lists tab and CR)
CONTROL_START = ("\t", "\r", "\n")


def needs_defuse(text: str) -> bool:
    """True when a spreadsheet could read ``text`` as a formula (or DDE command)."""
    if not text:
        return False
    if text.startswith(CONTROL_START):
        return True
    stripped = text.lstrip()  # every Unicode white space, incl. U+3000 and NBSP
    return bool(stripped) and stripped[0] in FORMULA_CHARS


def defuse(text: str) -> str:
    """``text`` made inert for a spreadsheet: prefixed with ``'`` when it could start a formula."""
    return "'" + text if needs_defuse(text) else text


def spreadsheet_cell(value: Any) -> Any:
    """A cell value for a spreadsheet CSV: text defused, numbers as they are, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return value
    return defuse(str(value))


def spreadsheet_csv(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """CSV text (CRLF line ends) with every cell of every row and of the header defused and quoted."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([spreadsheet_cell(h) for h in header])
    for row in rows:
        writer.writerow([spreadsheet_cell(v) for v in row])
    return buf.getvalue()


__all__ = ["FORMULA_CHARS", "needs_defuse", "defuse", "spreadsheet_cell", "spreadsheet_csv"]
