"""CSV cells: nothing a spreadsheet would run, and our own exports read back unchanged."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from server.service_layer.spreadsheet import (
    FORMULA_STARTS,
    csv_lines,
    guard_cell,
    runs_as_formula,
    unguard_cell,
)

cells = st.text() | st.sampled_from(FORMULA_STARTS).flatmap(
    lambda start: st.text().map(lambda rest: start + rest)
)
quoted = st.tuples(st.text(alphabet="'", max_size=3), cells).map("".join)


@given(cells | quoted)
def test_a_guarded_cell_never_runs_and_reads_back_as_it_was(value: str) -> None:
    guarded = guard_cell(value)
    assert not runs_as_formula(guarded)
    assert unguard_cell(guarded) == value


def test_formulas_are_quoted_and_numbers_are_not() -> None:
    assert guard_cell("=1+1") == "'=1+1"
    assert guard_cell("-2+3") == "'-2+3"
    assert guard_cell("@SUM(A1)") == "'@SUM(A1)"
    assert guard_cell("\t=1") == "'\t=1"
    assert guard_cell("\uff1d1") == "'\uff1d1"
    assert guard_cell("-42") == "-42" and guard_cell("+2.5") == "+2.5"
    assert guard_cell("plain") == "plain" and guard_cell(None) == ""


@given(st.lists(st.lists(cells, max_size=4), max_size=450))
def test_csv_lines_guards_every_cell_of_every_row(rows: list[list[str]]) -> None:
    text = "".join(csv_lines(rows, bom=False))
    read = list(csv.reader(io.StringIO(text, newline="")))
    assert len(read) == len(rows)
    for row in read:
        assert not any(runs_as_formula(cell) for cell in row)
