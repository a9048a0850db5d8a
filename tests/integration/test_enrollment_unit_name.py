"""The console's Enrollment page names a token's unit by its name, never by its code."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from support.console import Browser
from support.fleet import Fleet

pytestmark = pytest.mark.integration


def test_the_token_list_shows_the_units_name(client: FlaskClient, fleet: Fleet) -> None:
    login = fleet.logins["it_support"]
    browser = Browser(client, login.username, login.password)
    created = browser.post(
        "/enrollment", {"unit": "mielenterveys", "note": "", "valid_hours": "24"}
    )
    assert created.status_code == 201
    browser.post("/enrollment", {"unit": "", "note": "box 2", "valid_hours": "24"})
    page = browser.text("/enrollment")
    table = page[page.index('id="list-h"') :]
    cells = re.findall(r"<tr>\s*<td>(.*?)</td>", table, re.S)
    assert cells == ["–", "Mielenterveyspalvelut"]  # newest first; the second has no unit
    assert "mielenterveys" not in table
