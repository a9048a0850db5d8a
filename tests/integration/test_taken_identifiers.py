"""An identifier taken in another organisation is answered like any taken one (issue 14, 6b).

Device ids (they are MQTT identities) and user names are unique across organisations, so a
new device or user cannot take one that another organisation uses; the answer must not say
more than for one taken in one's own organisation: the same status, the same text, nothing
of the other organisation. That holds for the API's create and import, the console's import,
enrollment, the console's new-user form, and for the race where someone registers the
identifier between our check and our insert.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, insert
from sqlalchemy.orm import Session
from support.console import Browser
from support.fleet import Fleet

from server.adapters import orm
from server.domain.commands import AddUser, CreateDevice
from server.domain.model import Principal, Role
from server.service_layer import accounts, devices

pytestmark = pytest.mark.integration

THEIRS = ("their-1", "THEIR-TAG", "Salainen yksikkö")  # device id, asset tag, unit name
OURS = "tab-001"
THEIR_USER = "kayttaja@toinen.example"


def _other_organisation(fleet: Fleet) -> int:
    """A second organisation with a user and a device in a unit, made as its staff would."""
    uow = fleet.services.uow
    org_id = accounts.add_organisation(uow(), "toinen", "Toinen hyvinvointialue")
    accounts.add_unit(uow(), "toinen", "salainen", THEIRS[2])
    accounts.add_user(uow(), AddUser("toinen", THEIR_USER, "it_support", (), "x" * 12))
    it = Principal(0, "it@toinen", org_id, Role.IT_SUPPORT, frozenset())
    devices.create_device(uow(), it, CreateDevice(THEIRS[0], THEIRS[1], unit="salainen"))
    return org_id


def _same_answer(ours: Any, theirs: Any) -> None:
    """Two answers equal but for the device id they repeat; theirs tells nothing of them."""
    assert ours.status_code == theirs.status_code
    assert ours.get_data(as_text=True).replace(OURS, "ID") == theirs.get_data(as_text=True).replace(
        THEIRS[0], "ID"
    )
    for secret in ("toinen", "Toinen", THEIRS[1], THEIRS[2], "salainen"):
        assert secret not in theirs.get_data(as_text=True)


def test_the_api_answers_a_foreign_id_like_one_of_our_own(
    fleet: Fleet, client: FlaskClient
) -> None:
    _other_organisation(fleet)
    it = fleet.headers("it_support")
    answers = [
        client.post("/api/v1/devices", json={"device_id": d, "asset_tag": "NEW-1"}, headers=it)
        for d in (OURS, THEIRS[0])
    ]
    _same_answer(*answers)
    assert answers[1].status_code == 409
    assert answers[1].get_json()["error"]["message"] == (
        "device id their-1 is taken; choose another one"
    )
    imports = [
        client.post(
            "/api/v1/devices/import",
            data=f"device_id,asset_tag\n{d},NEW-2\n",
            headers={**it, "Content-Type": "text/csv"},
        )
        for d in (OURS, THEIRS[0])
    ]
    _same_answer(*imports)
    assert imports[1].status_code == 422


def test_the_console_import_answers_a_foreign_id_like_one_of_our_own(
    fleet: Fleet, client: FlaskClient
) -> None:
    _other_organisation(fleet)
    login = fleet.logins["it_support"]
    browser = Browser(client, login.username, login.password)
    for path in ("/devices/import/validate", "/devices/import/chunk"):
        answers = [
            browser.client.post(
                path,
                data=f"device_id,asset_tag\n{d},NEW-3\n",
                content_type="text/csv",
                headers={"X-CSRF-Token": browser.csrf},
            )
            for d in (OURS, THEIRS[0])
        ]
        _same_answer(*answers)
    uploads = [
        browser.post(
            "/devices/import",
            data={"file": (io.BytesIO(f"device_id,asset_tag\n{d},NEW-4\n".encode()), "d.csv")},
            content_type="multipart/form-data",
        )
        for d in (OURS, THEIRS[0])
    ]
    assert uploads[0].status_code == uploads[1].status_code == 422
    assert THEIRS[1] not in uploads[1].get_data(as_text=True)


def test_enrollment_answers_a_foreign_id_like_the_api(fleet: Fleet, client: FlaskClient) -> None:
    _other_organisation(fleet)
    it = fleet.headers("it_support")
    token = client.post("/api/v1/enrollment-tokens", json={}, headers=it).get_json()["token"]
    enrolled = client.post("/api/v1/enroll", json={"token": token, "device_id": THEIRS[0]})
    created = client.post(
        "/api/v1/devices", json={"device_id": THEIRS[0], "asset_tag": "NEW-5"}, headers=it
    )
    assert enrolled.status_code == created.status_code == 409
    assert enrolled.get_json() == created.get_json()


@contextmanager
def registered_meanwhile(fleet: Fleet, model: Any, key: str, **row: object) -> Iterator[None]:
    """Insert `row` from another connection just before the next flush that adds a `model`
    with the same `key`: the race between our check and our insert."""
    done: list[bool] = []

    def before_flush(session: Session, _context: object, _instances: object) -> None:
        adding = any(isinstance(o, model) and getattr(o, key) == row[key] for o in session.new)
        if adding and not done:
            done.append(True)
            with fleet.services.engine.begin() as other:
                other.execute(insert(model).values(**row))

    factory = fleet.services.session_factory
    event.listen(factory, "before_flush", before_flush)
    try:
        yield
    finally:
        event.remove(factory, "before_flush", before_flush)
    assert done, "the race was not run"


@pytest.mark.parametrize("whose", ["ours", "theirs"])
def test_an_id_registered_meanwhile_is_a_409_like_any_taken_id(
    fleet: Fleet, client: FlaskClient, whose: str
) -> None:
    other = _other_organisation(fleet)
    it = fleet.headers("it_support")
    with fleet.services.session_factory() as session:
        ours = session.get(orm.Device, OURS)
        assert ours is not None
        organisation = ours.organisation_id if whose == "ours" else other
    row = {"id": "race-1", "organisation_id": organisation, "asset_tag": "RACE-TAG"}
    with registered_meanwhile(fleet, orm.Device, "id", **row):
        raced = client.post(
            "/api/v1/devices", json={"device_id": "race-1", "asset_tag": "NEW-6"}, headers=it
        )
    assert raced.status_code == 409
    assert raced.get_json()["error"]["message"] == "device id race-1 is taken; choose another one"
    assert "RACE-TAG" not in raced.get_data(as_text=True)


def _new_user(browser: Browser, username: str) -> Any:
    form = {"username": username, "role": "it_support", "password": "Pitka-salasana-42"}
    return browser.post("/admin/users", data=form)


def test_a_user_name_of_another_organisation_is_answered_like_one_of_our_own(
    fleet: Fleet, client: FlaskClient
) -> None:
    _other_organisation(fleet)
    login = fleet.logins["admin"]
    browser = Browser(client, login.username, login.password)
    ours, theirs = (_new_user(browser, name) for name in (login.username, THEIR_USER))
    assert ours.status_code == theirs.status_code == 409
    assert f"user {login.username} already exists" in ours.get_data(as_text=True)
    assert f"user {THEIR_USER} already exists" in theirs.get_data(as_text=True)
    assert "toinen" not in theirs.get_data(as_text=True).replace(THEIR_USER, "")


def test_a_user_name_taken_meanwhile_is_a_409_like_any_taken_name(
    fleet: Fleet, client: FlaskClient
) -> None:
    other = _other_organisation(fleet)
    login = fleet.logins["admin"]
    browser = Browser(client, login.username, login.password)
    row = {"username": "race@toinen.example", "organisation_id": other, "role": "admin"}
    with registered_meanwhile(fleet, orm.User, "username", **row):
        raced = _new_user(browser, "race@toinen.example")
    assert raced.status_code == 409
    assert "user race@toinen.example already exists" in raced.get_data(as_text=True)
