"""Enrollment: tokens (single use, expiry, revocation), the API, the console's QR code and
`lainaamo agent enroll` against a real server."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.openapi import check

from agent.enroll import with_enrollment
from lainaamo import cli
from lainaamo.config import Settings
from server.adapters import orm
from server.entrypoints.serve import HttpServer
from server.service_layer.accounts import hash_token

pytestmark = pytest.mark.integration


def new_token(client: FlaskClient, fleet: Fleet, role: str = "it_support", **body: object) -> dict:
    response = client.post("/api/v1/enrollment-tokens", json=body, headers=fleet.headers(role))
    result = check("POST", "/enrollment-tokens", response)
    assert response.status_code == 201, result
    return result


def enroll(client: FlaskClient, **body: object) -> tuple[int, dict]:
    response = client.post("/api/v1/enroll", json=body)
    return response.status_code, check("POST", "/enroll", response)


def actions(fleet: Fleet) -> list[str]:
    with fleet.services.session_factory() as session:
        return list(session.scalars(select(orm.AuditEvent.action)))


def test_token_enrolls_one_device_once(client: FlaskClient, fleet: Fleet) -> None:
    created = new_token(client, fleet, unit="paihde", note="box 3")
    token = created["token"]
    assert token.startswith("lnm_enr_") and f"--token {token}" in created["command"]
    with fleet.services.session_factory() as session:
        row = session.scalar(select(orm.EnrollmentToken))
        assert row is not None and row.token_hash == hash_token(token) and token not in row.note
        assert row.expires_at - row.created_at == timedelta(hours=24)
    status, config = enroll(client, token=token, device_id="tab-new", serial="S1", model="Tab A9")
    assert status == 201
    assert config["device_id"] == "tab-new" and config["unit"] == "paihde"
    assert config["rebound"] is False
    assert config["mqtt"]["username"] == "tab-new"
    assert isinstance(config["mqtt"]["password"], str) and len(config["mqtt"]["password"]) >= 43
    assert config["command_public_key"]  # the tablet trusts this key for signed wipes
    assert config["mqtt"]["topic_prefix"] == "fleet/v1"
    status, again = enroll(client, token=token, device_id="tab-other")
    assert status == 401 and again["error"]["code"] == "enrollment_refused"
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-new")
        assert device is not None and device.unit is not None and device.unit.code == "paihde"
        assert device.serial == "S1" and device.lifecycle_state == "in_stock"
        assert session.get(orm.Device, "tab-other") is None
    assert {"api:enrollment_token:create", "agent:device:enroll"} <= set(actions(fleet))
    listed = client.get("/api/v1/enrollment-tokens", headers=fleet.headers("admin"))
    items = check("GET", "/enrollment-tokens", listed)["items"]
    assert items[0]["state"] == "used" and items[0]["device_id"] == "tab-new"


def test_wrong_expired_and_revoked_tokens_get_one_refusal(
    client: FlaskClient, fleet: Fleet
) -> None:
    answers = []
    answers.append(enroll(client, token="lnm_enr_nonsense", device_id="tab-x01"))
    answers.append(enroll(client, token="not-even-prefixed", device_id="tab-x01"))
    revoked = new_token(client, fleet)
    token_id = client.get("/api/v1/enrollment-tokens", headers=fleet.headers("it_support")).json[
        "items"
    ][0]["id"]
    response = client.post(
        f"/api/v1/enrollment-tokens/{token_id}/revoke", headers=fleet.headers("admin")
    )
    assert check("POST", "/enrollment-tokens/{token_id}/revoke", response)["state"] == "revoked"
    answers.append(enroll(client, token=revoked["token"], device_id="tab-x01"))
    expired = new_token(client, fleet, valid_hours=1)
    with fleet.services.session_factory() as session:
        row = session.scalar(
            select(orm.EnrollmentToken).where(
                orm.EnrollmentToken.token_hash == hash_token(expired["token"])
            )
        )
        assert row is not None
        row.expires_at = row.created_at - timedelta(seconds=1)
        session.commit()
    answers.append(enroll(client, token=expired["token"], device_id="tab-x01"))
    assert {status for status, _ in answers} == {401}
    assert len({body["error"]["message"] for _, body in answers}) == 1
    with fleet.services.session_factory() as session:
        assert session.get(orm.Device, "tab-x01") is None


def test_rebinding_and_bad_input(client: FlaskClient, fleet: Fleet) -> None:
    status, config = enroll(client, token=new_token(client, fleet)["token"], device_id="tab-001")
    assert status == 201 and config["rebound"] is True
    assert config["unit"] == "aikuissosiaalityo"  # a re-bound device keeps its unit
    token = new_token(client, fleet)["token"]
    status, body = enroll(client, token=token, device_id="x")
    assert status == 422
    status, body = enroll(client, token=token, device_id="tab-y01", model="\x00")
    assert status == 422
    assert enroll(client, token=token, device_id="tab-y01")[0] == 201  # still unused
    refused = client.post(
        "/api/v1/enrollment-tokens", json={"valid_hours": 500}, headers=fleet.headers("admin")
    )
    assert refused.status_code == 422
    check("POST", "/enrollment-tokens", refused)
    counsellor = client.post(
        "/api/v1/enrollment-tokens", json={}, headers=fleet.headers("counsellor")
    )
    assert counsellor.status_code == 403
    unknown_unit = client.post(
        "/api/v1/enrollment-tokens", json={"unit": "nope"}, headers=fleet.headers("admin")
    )
    assert unknown_unit.status_code == 422


def test_concurrent_enrollments_spend_a_token_once(client: FlaskClient, fleet: Fleet) -> None:
    token = new_token(client, fleet)["token"]
    from server.service_layer import enrollment
    from server.service_layer.enrollment import EnrollmentRefused

    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            enrollment.enroll(
                fleet.services.uow(),
                token,
                f"race-{n:02d}",
                None,
                None,
                fleet.services.clock(),
                fleet.services.settings,
            )
            outcomes.append("ok")
        except EnrollmentRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    with fleet.services.session_factory() as session:
        made = session.scalars(select(orm.Device.id).where(orm.Device.id.like("race-%"))).all()
    assert len(made) == 1


def test_console_shows_a_qr_code_and_revokes(client: FlaskClient, fleet: Fleet) -> None:
    login = fleet.logins["it_support"]
    browser = Browser(client, login.username, login.password)
    assert "Create token" in browser.text("/enrollment")
    page = browser.post("/enrollment", {"unit": "mielenterveys", "note": "", "valid_hours": "24"})
    assert page.status_code == 201
    html = page.get_data(as_text=True)
    token = re.search(r"lnm_enr_[A-Za-z0-9_-]+", html)
    assert token is not None
    assert '<img src="data:image/svg+xml' in html and 'alt="QR code' in html
    assert f"lainaamo agent enroll --server http://localhost --token {token.group(0)}" in html
    assert "lainaamo-enroll:?server=http" in html
    bad = browser.post("/enrollment", {"unit": "", "note": "", "valid_hours": "9999"})
    assert bad.status_code == 422
    with fleet.services.session_factory() as session:
        row = session.scalar(select(orm.EnrollmentToken))
        assert row is not None
        token_id = row.id
    assert browser.post(f"/enrollment/{token_id}/revoke").status_code == 302
    assert "Revoked" in browser.text("/enrollment")
    with fleet.services.session_factory() as session:
        row = session.get(orm.EnrollmentToken, token_id)
        assert row is not None and row.revoked_at is not None
    client.delete_cookie("lainaamo_session")
    counsellor = fleet.logins["counsellor"]
    assert (
        Browser(client, counsellor.username, counsellor.password).get("/enrollment").status_code
        == 403
    )


def test_agent_enrolls_against_a_running_server(
    client: FlaskClient,
    fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = HttpServer(fleet.services, "127.0.0.1", 0, threads=2)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        token = new_token(client, fleet, unit="paihde")["token"]
        state = tmp_path / "agent"
        monkeypatch.setenv("LAINAAMO_AGENT_STATE_DIR", str(state))
        monkeypatch.delenv("LAINAAMO_DEVICE_ID", raising=False)
        args = ["agent", "enroll", "--server", url, "--token", token, "--device-id", "tab-cli"]
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert "enrolled as device tab-cli" in out and "enrollment.json" in out
        saved = state / "enrollment.json"
        assert os.stat(saved).st_mode & 0o777 == 0o600
        config = json.loads(saved.read_text())
        assert config["device_id"] == "tab-cli" and config["server"] == url
        # Used once: a second run is refused, clearly and without a traceback.
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert "refused" in err and "Traceback" not in err
        settings = with_enrollment(Settings.load({}).replace(agent_state_dir=str(state)))
        assert settings.device_id == "tab-cli"
        explicit = Settings.load({}).replace(agent_state_dir=str(state), device_id="mine")
        assert with_enrollment(explicit).device_id == "mine"
    finally:
        server.stop()
    # Unreachable server: a clear message, exit 2.
    assert cli.main(["agent", "enroll", "--server", url, "--token", token]) == 2
    assert "cannot reach the server" in capsys.readouterr().err
