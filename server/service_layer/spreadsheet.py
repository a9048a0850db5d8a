"""The one way the server writes CSV: every cell a spreadsheet would run is made text.

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` (or
with a tab or line break before one) as a formula, and some take the full-width forms too:
an asset tag `=HYPERLINK("https://evil.example", "Open")` would become a link, or worse, on
the screen of whoever opens the export. Such a cell gets a leading apostrophe, the
spreadsheets' own "this is text" mark, which they do not show; importing one of our exports
(`unguard_cell`) takes it away again. A plain number ("-3", "+2.5") is no formula and stays
a number.

Every CSV the server produces goes through `csv_lines`, so no export can forget a column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

# The starts of a cell that spreadsheets read as a formula (OWASP's list, a line feed, and
# the full-width forms some spreadsheets fold into the ASCII ones).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
BATCH_ROWS = 200  # rows per chunk of text: memory stays flat for any number of rows


def runs_as_formula(cell: str) -> bool:
    """Whether a spreadsheet would run this cell as a formula."""
    return cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell)


def _quoted(text: str) -> bool:
    # Text that would run, and text that would look like such text once guarded ("'=x"),
    # so that `unguard_cell` gives back exactly what was guarded.
    return runs_as_formula(text.lstrip("'"))


def guard_cell(value: object) -> str:
    """The cell as text a spreadsheet shows but never runs."""
    text = "" if value is None else str(value)
    return "'" + text if _quoted(text) else text


def unguard_cell(cell: str) -> str:
    """The value `guard_cell` was given (a cell of one of our exports, read back in)."""
    return cell[1:] if cell.startswith("'") and _quoted(cell) else cell


def csv_lines(
    rows: Iterable[Iterable[object]], *, bom: bool = True, delimiter: str = ","
) -> Iterator[str]:
    """CSV text (CRLF lines) of `rows`, every cell guarded, a few hundred rows at a time.

    `bom`: start with a byte order mark, so that spreadsheets read the file as UTF-8.
    `delimiter`: `;` for a spreadsheet in a locale whose decimal mark is a comma (Finnish Excel).
    """
    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=delimiter)
    for number, row in enumerate(rows, start=1):
        writer.writerow([guard_cell(cell) for cell in row])
        if number % BATCH_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
