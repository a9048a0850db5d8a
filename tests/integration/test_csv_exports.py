"""No CSV the server produces makes a spreadsheet run a formula (issue 14, point 6a).

Every CSV endpoint is found by walking the URL map as every role and keeping the answers of
type text/csv, so a new export is checked the day it is added. The data holds values that
spreadsheets would run (asset tags, serials, models, unit codes and names); no cell of any
export may start like a formula, unless it is a plain number.
"""

from __future__ import annotations

import csv
import io

import pytest
from flask.testing import FlaskClient
from support.console import Browser
from support.fleet import Fleet

from server.service_layer import accounts

pytestmark = pytest.mark.integration

# The starts spreadsheets run (OWASP's list, a line feed, full-width forms): written out
# here rather than imported, so that the test does not trust the code it checks.
RUNS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
HOSTILE = {
    "asset_tag": '=HYPERLINK("https://evil.example/","Open")',
    "serial": "+SUM(1;2)",
    "model": "-2+3+cmd|' /C calc'!A0",
}
HOSTILE_UNIT = ("@evil", "=cmd|' /C calc'!A0")
MORE_TAGS = ("@SUM(1)", "\uff1d1+1", "'=already quoted", "-42", "+358 15 000")


def _is_plain_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return cell.lstrip("+-").replace(".", "", 1).isdigit()


def _seed(fleet: Fleet, client: FlaskClient) -> None:
    accounts.add_unit(fleet.services.uow(), "esavo", *HOSTILE_UNIT)
    it = fleet.headers("it_support")
    body = {"device_id": "csv-1", "unit": HOSTILE_UNIT[0], **HOSTILE}
    assert client.post("/api/v1/devices", json=body, headers=it).status_code == 201
    for number, tag in enumerate(MORE_TAGS, start=2):
        body = {"device_id": f"csv-{number}", "asset_tag": tag, "serial": tag, "model": tag}
        assert client.post("/api/v1/devices", json=body, headers=it).status_code == 201


def test_no_csv_export_holds_a_cell_a_spreadsheet_would_run(
    fleet: Fleet, client: FlaskClient
) -> None:
    _seed(fleet, client)
    app = client.application
    app.config.update(EVENTS_STREAM_DURATION_S=0, FLEET_LIVE_DURATION_S=0)
    exports: dict[str, str] = {}
    for role in ("admin", "it_support", "counsellor"):
        login = fleet.logins[role]
        browser = Browser(app.test_client(), login.username, login.password)
        for rule in app.url_map.iter_rules():
            if "GET" not in (rule.methods or ()) or rule.arguments or rule.endpoint == "metrics":
                continue
            response = browser.get(rule.rule)
            if response.mimetype == "text/csv":
                exports[f"{rule.endpoint} as {role}"] = response.get_data().decode("utf-8-sig")
            response.close()
    found = {name.split(" ")[0] for name in exports}
    assert {"console.devices_export", "console.reports_csv"} <= found
    for name, text in exports.items():
        for row in csv.reader(io.StringIO(text, newline="")):
            for cell in row:
                assert not cell.startswith(RUNS) or _is_plain_number(cell), (name, cell)
    devices = exports["console.devices_export as it_support"]
    assert "'" + HOSTILE["asset_tag"].replace('"', '""') in devices  # kept, as text
    assert "'@evil" in devices and ",-42," in devices
    assert "'" + HOSTILE_UNIT[1] in exports["console.reports_csv as admin"]
