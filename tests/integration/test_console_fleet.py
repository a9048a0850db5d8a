"""The console's fleet overview: filters, search, paging, scope, live updates, CSV out and in."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support.console import Browser
from support.fleet import ENFORCED_ALL, Fleet, report_applied
from werkzeug.test import TestResponse

from lainaamo.protocol import EnforcementReport
from server.adapters import orm
from server.domain.commands import CreateDevice
from server.domain.model import Principal, Role
from server.entrypoints.console import fleet_live
from server.entrypoints.console.core import SESSION_COOKIE
from server.service_layer import accounts, devices, fleet_import

pytestmark = pytest.mark.integration

HEADER = "device_id,asset_tag,unit,serial,model\n"


def browser(fleet: Fleet, client: FlaskClient, role: str = "it_support") -> Browser:
    login = fleet.logins[role]
    return Browser(client, login.username, login.password)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-device="([^"]+)"', html)


def it_principal(fleet: Fleet) -> Principal:
    with fleet.services.session_factory() as session:
        user = session.scalar(select(orm.User).where(orm.User.role == "it_support"))
        assert user is not None
        return accounts.principal_of(user)


def device_count(fleet: Fleet) -> int:
    with fleet.services.session_factory() as session:
        return session.scalar(select(func.count()).select_from(orm.Device)) or 0


def audit_actions(fleet: Fleet) -> list[str]:
    with fleet.services.session_factory() as session:
        return list(session.scalars(select(orm.AuditEvent.action)))


def set_status(fleet: Fleet, device_id: str, **values: object) -> None:
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, device_id)
        assert status is not None
        for name, value in values.items():
            setattr(status, name, value)
        session.commit()


def other_organisation(fleet: Fleet) -> None:
    uow = fleet.services.uow
    org_id = accounts.add_organisation(uow(), "other-region", "Other region")
    accounts.add_unit(uow(), "other-region", "aikuissosiaalityo", "Other adult social work")
    setup = Principal(0, "seed", org_id, Role.IT_SUPPORT, frozenset())
    devices.create_device(
        uow(), setup, CreateDevice("zz-other-1", "ESAVO-0001", "aikuissosiaalityo", "R90000001")
    )


def test_overview_lists_counts_and_links(fleet: Fleet, client: FlaskClient) -> None:
    html = browser(fleet, client).text("/devices")
    assert listed(html) == [f"tab-{i:03d}" for i in range(1, 10)]
    assert 'href="/devices/tab-001"' in html
    assert "9 devices match." in html
    assert "In stock" in html and 'href="/devices/import"' in html and "/devices.csv" in html
    assert 'aria-live="polite"' in html and html.count("aria-live") == 1


def test_filters_and_search_narrow_the_list(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client, "admin")
    set_status(fleet, "tab-002", online=True, battery_pct=5, reported_at=fleet.services.clock())
    assert listed(b.text("/devices?unit=mielenterveys")) == ["tab-002", "tab-005", "tab-008"]
    assert listed(b.text("/devices?online=online")) == ["tab-002"]
    assert listed(b.text("/devices?low_battery=1")) == ["tab-002"]
    assert listed(b.text("/devices?q=TAB-00")) == [f"tab-{i:03d}" for i in range(1, 10)]
    assert listed(b.text("/devices?q=esavo-0003")) == ["tab-003"]  # asset tag, any case
    assert listed(b.text("/devices?q=r90000004")) == ["tab-004"]  # serial
    assert listed(b.text("/devices?q=%25")) == []  # LIKE wildcards are literal
    assert listed(b.text("/devices?state=lost")) == []
    assert listed(b.text("/devices?state=in_stock&unit=paihde&q=-009")) == ["tab-009"]
    # Drift (domain/policy_state.py): tab-004 has not applied its desired version; tab-005
    # has, but reports its kiosk profile unsupported; tab-006 has, but does not say what it
    # enforces. The others applied theirs and report every key enforced.
    with fleet.services.session_factory() as session:
        desired = session.get(orm.DesiredStateRow, "tab-004")
        assert desired is not None and desired.version > 0
        for status in session.scalars(select(orm.DeviceStatus)):
            enforcement = {
                "tab-005": EnforcementReport(("kiosk",)),
                "tab-006": None,
            }.get(status.device_id, ENFORCED_ALL)
            report_applied(status, 0 if status.device_id == "tab-004" else 10**6, enforcement)
        session.commit()
    assert listed(b.text("/devices?drift=1")) == ["tab-004", "tab-005", "tab-006"]
    html = b.text("/devices")
    assert policy_cells(html) == {
        **dict.fromkeys(listed(html), ("ok", "Converged")),
        "tab-004": ("warn", "Not converged"),
        "tab-005": ("bad", "Not enforced"),
        "tab-006": ("warn", "Enforcement not reported"),
    }
    assert b.get("/devices?state=nonsense").status_code == 422


def policy_cells(html: str) -> dict[str, tuple[str, str]]:
    """Each listed device's policy cell: (badge tone, text)."""
    found = re.findall(
        r'<tr data-device="([^"]+)">.*?<td data-field="drift"><span class="badge (\w+)">([^<]*)<',
        html,
        re.DOTALL,
    )
    return {device: (tone, text) for device, tone, text in found}


def test_staff_locked_devices_are_marked_and_can_be_filtered(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    html = b.text("/devices")
    assert ">Staff lock</th>" in html and 'name="staff_locked"' in html
    assert "Locked by IT" not in html.split("<tbody>")[1]
    assert b.post("/devices/tab-005/lock", {"reason": "tarkistus"}).status_code == 302
    html = b.text("/devices")
    row = html.split('<tr data-device="tab-005">')[1].split("</tr>")[0]
    assert '<td data-field="lock"><span class="badge warn">Locked by IT</span></td>' in row
    assert listed(b.text("/devices?staff_locked=1")) == ["tab-005"]
    assert "1 device matches." in b.text("/devices?staff_locked=1&state=in_stock")
    # Live updates carry the marker too.
    snapshot = b.get("/devices/live.json?ids=tab-005,tab-006").get_json()["devices"]
    assert (
        snapshot["tab-005"]["lock"][0] == "Locked by IT" and snapshot["tab-006"]["lock"][0] == "–"
    )
    assert b.post("/devices/tab-005/unlock", {}).status_code == 302
    assert listed(b.text("/devices?staff_locked=1")) == []


def test_paging_with_cursor_and_total(fleet: Fleet, client: FlaskClient) -> None:
    principal = it_principal(fleet)
    for i in range(10, 61):
        devices.create_device(
            fleet.services.uow(), principal, CreateDevice(f"tab-{i:03d}", f"ESAVO-{i:04d}")
        )
    b = browser(fleet, client)
    first = b.text("/devices")
    assert len(listed(first)) == 50 and "60 devices match." in first
    next_url = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_url is not None
    second = b.text(next_url.group(1).replace("&amp;", "&"))
    assert listed(second) == [f"tab-{i:03d}" for i in range(51, 61)]
    assert 'rel="next"' not in second and 'rel="prev"' in second
    assert b.get("/devices?cursor=!!!").status_code == 422


def test_counsellor_gets_403(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client, "counsellor")
    for path in ("/devices", "/devices.csv", "/devices/live?ids=tab-001", "/devices/import"):
        assert b.get(path).status_code == 403, path
    assert post_csv(b, "/devices/import/validate", HEADER).status_code == 403
    assert post_csv(b, "/devices/import/chunk", HEADER + "x-1,X1\n").status_code == 403


def test_other_organisations_devices_never_appear(fleet: Fleet, client: FlaskClient) -> None:
    other_organisation(fleet)
    b = browser(fleet, client)
    assert "zz-other-1" not in b.text("/devices?q=zz")
    assert "zz-other-1" not in b.text("/devices?unit=aikuissosiaalityo")
    assert "zz-other-1" not in b.get("/devices.csv").get_data(as_text=True)
    snapshot = b.get("/devices/live.json?ids=zz-other-1,tab-001").get_json()
    assert list(snapshot["devices"]) == ["tab-001"]


def read_events(response: TestResponse, wanted: str, limit: int = 50) -> list[str]:
    """Chunks of a streamed response up to (and including) the first naming `wanted`."""
    seen: list[str] = []
    for chunk in response.response:
        seen.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if wanted in seen[-1] or len(seen) >= limit:
            break
    return seen


def test_live_stream_reports_a_status_change(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client)
    client.application.config[fleet_live.INTERVAL_KEY] = 0.0
    client.application.config[fleet_live.DURATION_KEY] = 5.0
    response = b.get("/devices/live?ids=tab-001,tab-002", buffered=False)
    try:
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        first = "".join(read_events(response, "event: devices"))
        assert '"tab-001"' in first and '"tab-002"' in first and "Offline" in first
        set_status(fleet, "tab-002", online=True, battery_pct=7, reported_at=fleet.services.clock())
        update = read_events(response, "event: devices")[-1]
        assert '"tab-002"' in update and '"tab-001"' not in update
        assert "7 %, low" in update and "Online" in update
    finally:
        response.close()
    # The stream slot is free again.
    slots = fleet_live.streams(client.application)
    assert slots.acquire(blocking=False)
    slots.release()


def test_live_stream_ends_in_bounded_time_and_with_the_session(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    client.application.config[fleet_live.INTERVAL_KEY] = 0.0
    client.application.config[fleet_live.DURATION_KEY] = 0.0
    ended = b.get("/devices/live?ids=tab-001").get_data(as_text=True)
    assert ended.rstrip().endswith("event: end\ndata: {}")
    client.application.config[fleet_live.DURATION_KEY] = 30.0
    response = b.get("/devices/live?ids=tab-001", buffered=False)
    try:
        read_events(response, "event: devices")
        with fleet.services.session_factory() as session:
            for row in session.scalars(select(orm.ConsoleSession)):
                row.expires_at = fleet.services.clock() - timedelta(seconds=1)
            session.commit()
        assert "event: signed_out" in read_events(response, "signed_out")[-1]
    finally:
        response.close()


def test_too_many_streams_answer_503_and_the_snapshot_still_works(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    slots = fleet_live.streams(client.application)
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        assert taken == fleet.services.settings.http_threads // 2
        assert b.get("/devices/live?ids=tab-001").status_code == 503
        snapshot = b.get("/devices/live.json?ids=tab-001")
        assert snapshot.status_code == 200
        assert snapshot.get_json()["devices"]["tab-001"]["online"] == ["Offline", "muted"]
    finally:
        for _ in range(taken):
            slots.release()


def test_csv_export_is_audited_and_round_trips(fleet: Fleet, client: FlaskClient) -> None:
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-003")
        assert device is not None
        device.model = "=HYPERLINK(1)"  # a spreadsheet formula must not run
        session.commit()
    b = browser(fleet, client)
    response = b.get("/devices.csv?unit=paihde")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    text = fleet_import.decode(response.get_data())
    lines = text.splitlines()
    assert (
        lines[0]
        == ",".join(devices.CSV_COLUMNS) + ",lifecycle_state,online,battery_pct,last_seen_at"
    )
    assert [line.split(",")[0] for line in lines[1:]] == ["tab-003", "tab-006", "tab-009"]
    assert ",'=HYPERLINK(1),in_stock,offline," in lines[1]
    assert "console:device:export" in audit_actions(fleet)
    # Through the import's validator: every row parses; the only problems are that the
    # devices exist already (it is the same fleet).
    check = fleet_import.validate_import(fleet.services.uow(), it_principal(fleet), text)
    assert check.rows == 3 and check.device_ids == ["tab-003", "tab-006", "tab-009"]
    assert {str(e["message"]) for e in check.errors} == {"already exists", "already in use"}
    commands, errors = devices.parse_csv(fleet_import.normalise(text))
    assert not errors and commands[0][1].model == "=HYPERLINK(1)"


def post_csv(b: Browser, path: str, content: str | bytes) -> TestResponse:
    """What fleet.js sends: the CSV as the body, the CSRF token in a header."""
    return b.client.post(
        path, data=content, content_type="text/csv", headers={"X-CSRF-Token": b.csrf}
    )


def upload(b: Browser, content: bytes, name: str = "devices.csv") -> TestResponse:
    return b.post(
        "/devices/import",
        {"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_upload_with_bad_rows_lists_them_and_imports_nothing(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    before = device_count(fleet)
    csv_text = HEADER + "new-001,NEW-1,paihde,S1,M\nnew-002,NEW-1,nowhere,S2,M\n!bad,NEW-3,,,\n"
    response = upload(b, csv_text.encode())
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Nothing was imported" in html
    for row, column in (("3", "asset_tag"), ("3", "unit"), ("4", "device_id")):
        assert re.search(rf'<td class="num">{row}</td><td>{column}</td>', html), (row, column)
    assert device_count(fleet) == before
    good = upload(b, (HEADER + "new-001,NEW-1,paihde,S1,M\n").encode())
    assert good.status_code == 302 and device_count(fleet) == before + 1


def test_garbage_uploads_give_4xx_not_500(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client)
    for content in (b"\x89PNG\r\n\x1a\n\x00\x00binary", b"", b"name,age\nx,1\n", b"\xff\xfe"):
        response = upload(b, content)
        assert 400 <= response.status_code < 500, (content, response.status_code)
        check = post_csv(b, "/devices/import/validate", content)
        assert check.status_code in (200, 422), content
        if check.status_code == 200:
            assert check.get_json()["ok"] is False and check.get_json()["errors"]
    assert b.post("/devices/import", {}).status_code == 422


def test_dry_run_then_chunked_import(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client)
    before = device_count(fleet)
    assert post_csv(b, "/devices/import/chunk", b"\x00\x01").status_code == 422
    rows = [f"chunk-{i:03d},CH-{i:03d},mielenterveys,S{i},Tab" for i in range(1, 8)]
    text = HEADER + "\n".join(rows) + "\n"
    headers = {"X-CSRF-Token": b.csrf}
    check = client.post(
        "/devices/import/validate", data=text, content_type="text/csv", headers=headers
    )
    assert check.status_code == 200
    assert check.get_json() == {"rows": 7, "errors": [], "ok": True}
    assert device_count(fleet) == before  # a dry run writes nothing
    for first in (0, 4):
        chunk = HEADER + "\n".join(rows[first : first + 4]) + "\n"
        answer = client.post(
            f"/devices/import/chunk?first_row={first + 2}",
            data=chunk,
            content_type="text/csv",
            headers=headers,
        )
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json() == {"created": len(rows[first : first + 4])}
    assert device_count(fleet) == before + 7
    assert audit_actions(fleet).count("console:device:import") == 7
    # A chunk that fails after the dry run (its devices exist now) keeps the file's row numbers.
    again = client.post(
        "/devices/import/chunk?first_row=6",
        data=HEADER + rows[4] + "\n",
        content_type="text/csv",
        headers=headers,
    )
    assert again.status_code == 422
    assert {d["row"] for d in again.get_json()["error"]["details"]} == {6}
    # Without the CSRF header nothing happens.
    assert (
        client.post("/devices/import/chunk", data=text, content_type="text/csv").status_code == 403
    )


def test_stream_requires_a_session(fleet: Fleet, client: FlaskClient) -> None:
    assert client.get("/devices/live?ids=tab-001").status_code == 401
    browser(fleet, client)
    assert client.get_cookie(SESSION_COOKIE) is not None
