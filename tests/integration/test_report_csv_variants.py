"""The report's CSV: numbers only in the figures' columns (a withheld figure is an empty cell
named in the `withheld` column), as plain CSV and as a variant for Excel in Finnish settings
(semicolons, decimal comma, UTF-8 with a byte order mark), both offered on the report page."""

from __future__ import annotations

import csv
import io
import re

from flask.testing import FlaskClient
from support.console import Browser
from support.fleet import Fleet
from test_reports import NOW, build

from server.service_layer.reports import FIELDS

PERIOD = "start=2026-01-01&end=2026-02-01"
FIGURES = FIELDS[2:]
DECIMAL = {",": re.compile(r"[0-9]+(,[0-9])?"), ".": re.compile(r"[0-9]+(\.[0-9])?")}


def table(data: str, delimiter: str) -> list[dict[str, str]]:
    lines = list(csv.reader(io.StringIO(data), delimiter=delimiter))
    assert lines[0] == ["unit_code", "unit_name", *FIGURES, "withheld"]
    return [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]


def check_figures(rows: list[dict[str, str]], decimal: str) -> set[str]:
    """Every figure a number with `decimal` as its mark, or empty; returns the withheld ones."""
    withheld: set[str] = set()
    for row in rows:
        named = set(row["withheld"].split())
        assert named <= set(FIGURES), row
        withheld |= named
        for name in FIGURES:
            value = row[name]
            assert "<" not in value, (name, row)
            if name in named:
                assert value == "", (name, row)
            elif value:
                assert DECIMAL[decimal].fullmatch(value), (name, value)
    return withheld


def test_plain_csv_has_numbers_and_a_withheld_column(fleet: Fleet, client: FlaskClient) -> None:
    build(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    response = b.get(f"/reports.csv?{PERIOD}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    raw = response.get_data()
    assert not raw.startswith(b"\xef\xbb\xbf")
    rows = table(raw.decode("utf-8"), ",")
    withheld = check_figures(rows, ".")
    assert withheld, "the fixture withholds some counts under 5"
    by_code = {r["unit_code"]: r for r in rows}
    assert by_code["region"]["devices"] == "16"
    assert any("." in r[f] for r in rows for f in FIGURES), "some figure has decimals"


def test_excel_variant_has_semicolons_decimal_commas_and_a_bom(
    fleet: Fleet, client: FlaskClient
) -> None:
    build(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text(f"/reports?{PERIOD}")
    link = "/reports.csv?start=2026-01-01&amp;end=2026-02-01&amp;variant=excel"
    assert link in page, "the report page offers the Excel variant"
    response = b.get(f"/reports.csv?{PERIOD}&variant=excel")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "-excel.csv" in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    rows = table(text, ";")
    excel_withheld = check_figures(rows, ",")
    assert any("," in r[f] for r in rows for f in FIGURES), "some figure has a decimal comma"
    # The same figures as the plain CSV, but for the decimal mark.
    plain = table(b.get(f"/reports.csv?{PERIOD}").get_data(as_text=True), ",")
    assert excel_withheld == check_figures(plain, ".")
    for excel_row, plain_row in zip(rows, plain, strict=True):
        assert {k: v.replace(",", ".") for k, v in excel_row.items() if k in FIGURES} == {
            k: v for k, v in plain_row.items() if k in FIGURES
        }
    assert b.get(f"/reports.csv?{PERIOD}&variant=ods").status_code == 422
