"""Issue 19.8: a device CSV as a Finnish Excel writes it imports — semicolons, a byte-order
mark, Windows-1252, units by name — and an unknown unit is refused with the valid ones listed."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from werkzeug.test import TestResponse

from server.adapters import orm
from server.service_layer import fleet_import

pytestmark = pytest.mark.integration


def browser(fleet: Fleet, client: FlaskClient) -> Browser:
    login = fleet.logins["it_support"]
    return Browser(client, login.username, login.password)


def upload(b: Browser, content: bytes) -> TestResponse:
    return b.post(
        "/devices/import",
        {"file": (io.BytesIO(content), "laitteet.csv")},
        content_type="multipart/form-data",
    )


def post_csv(b: Browser, path: str, content: bytes) -> TestResponse:
    """What fleet.js sends: the CSV as the body, the CSRF token in a header."""
    return b.client.post(
        path, data=content, content_type="text/csv", headers={"X-CSRF-Token": b.csrf}
    )


def units_of(fleet: Fleet, *ids: str) -> dict[str, str | None]:
    with fleet.services.session_factory() as s:
        found = s.execute(
            select(orm.Device.id, orm.Unit.code)
            .join(orm.Unit, orm.Device.unit_id == orm.Unit.id, isouter=True)
            .where(orm.Device.id.in_(ids))
        ).all()
        return {device: unit for device, unit in found}


EXCEL = (
    "\ufeffDevice_ID;asset_tag;unit;serial;model\r\n"
    "fi-001;FI-1;Päihdepalvelut;S1;Tab A9\r\n"
    "fi-002;FI-2;MIELENTERVEYSPALVELUT;S2;Tab A9\r\n"
    "fi-003;FI-3;aikuissosiaalityo;S3;\r\n"
)


def test_a_semicolon_csv_with_a_bom_and_unit_names_imports(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    check = post_csv(b, "/devices/import/validate", EXCEL.encode("utf-8"))
    assert check.status_code == 200 and check.get_json() == {"rows": 3, "errors": [], "ok": True}
    chunk = post_csv(b, "/devices/import/chunk?first_row=2", EXCEL.encode("utf-8"))
    assert chunk.status_code == 201 and chunk.get_json() == {"created": 3}
    assert units_of(fleet, "fi-001", "fi-002", "fi-003") == {
        "fi-001": "paihde",
        "fi-002": "mielenterveys",
        "fi-003": "aikuissosiaalityo",
    }


def test_an_older_excels_windows_1252_file_imports_without_javascript(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    text = "device_id;asset_tag;unit;serial;model\r\nfi-010;FI-10;Päihdepalvelut;S;M\r\n"
    assert upload(b, text.encode("cp1252")).status_code == 302
    assert units_of(fleet, "fi-010") == {"fi-010": "paihde"}
    refused = upload(b, b"device_id,asset_tag\r\n\x81\x8d,x\r\n")  # neither UTF-8 nor cp1252
    assert refused.status_code == 422
    assert "CSV UTF-8" in refused.get_data(as_text=True)


def test_an_unknown_unit_is_refused_with_the_valid_units_listed(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    text = "device_id;asset_tag;unit\nfi-020;FI-20;Kotihoito\nfi-021;FI-21;paihde\n"
    check = post_csv(b, "/devices/import/validate", text.encode())
    assert check.status_code == 200 and check.get_json()["ok"] is False
    (problem,) = check.get_json()["errors"]
    assert problem["row"] == 2 and problem["field"] == "unit"
    assert problem["message"] == (
        "There is no unit “Kotihoito”. Give a unit's code or name: "
        "Aikuissosiaalityö (aikuissosiaalityo), Mielenterveyspalvelut (mielenterveys), "
        "Päihdepalvelut (paihde)."
    )
    page = upload(b, text.encode())
    assert page.status_code == 422
    assert "There is no unit “Kotihoito”" in page.get_data(as_text=True)
    assert units_of(fleet, "fi-021") == {}  # all or nothing
    chunk = post_csv(b, "/devices/import/chunk?first_row=10", text.encode())
    assert chunk.status_code == 422
    (detail,) = chunk.get_json()["error"]["details"]
    assert detail["row"] == 10 and "Päihdepalvelut (paihde)" in detail["message"]
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fi"
    finnish = post_csv(b, "/devices/import/validate", text.encode()).get_json()["errors"][0]
    assert finnish["message"].startswith("Yksikköä ”Kotihoito” ei ole.")


def test_the_separator_is_read_from_the_header() -> None:
    assert fleet_import.separator("device_id;asset_tag;unit\nx,1;y;z\n") == ";"
    assert fleet_import.separator("device_id,asset_tag,model\nx;1,y,Tab; 10\n") == ","
    normal = fleet_import.normalise("\ufeffDEVICE_ID ; Asset_Tag\nx;'=1\n")
    assert normal == "device_id,asset_tag\nx,=1\n"
