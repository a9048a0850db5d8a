"""The console's device page: facts, chart, desired vs reported, commands, wipes, loans, audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet, report_applied
from support.svg_charts import (
    NS,
    assert_accessible,
    assert_inside,
    charts_in,
    no_data,
    plot_edges,
    points,
    visible_markers,
    visible_title,
    x_ticks,
)

from lainaamo.protocol import EnforcementReport
from server.adapters import orm
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.domain.policy import MESSAGES
from server.service_layer import loans
from server.service_layer.accounts import principal_of
from server.service_layer.device_page import HistoryPoint, online_bands

pytestmark = pytest.mark.integration


def browser(fleet: Fleet, client: FlaskClient, role: str) -> Browser:
    login = fleet.logins[role]
    return Browser(client, login.username, login.password)


def commands(fleet: Fleet, device_id: str) -> list[orm.CommandRow]:
    with fleet.services.session_factory() as session:
        return list(
            session.scalars(select(orm.CommandRow).where(orm.CommandRow.device_id == device_id))
        )


def add_reports(fleet: Fleet, device_id: str, count: int) -> None:
    now = datetime.now(UTC)
    with fleet.services.session_factory() as session:
        for i in range(count):
            at = now - timedelta(minutes=count - i)
            session.add(
                orm.StatusReport(
                    device_id=device_id,
                    boot=1,
                    seq=i,
                    reported_at=at,
                    received_at=at,
                    reason="periodic",
                    battery_pct=80 - i,
                    charging=False,
                    storage_free_mb=1000,
                    network="wifi",
                    signal_pct=70,
                    uptime_s=60 * i,
                    locked=False,
                    kiosk=False,
                    desired_version=1,
                )
            )
        status = session.get(orm.DeviceStatus, device_id)
        assert status is not None
        status.online, status.status_interval_s, status.battery_pct = True, 60, 80 - count + 1
        status.reported_at = status.last_seen_at = now
        status.locked, status.kiosk, status.desired_version = False, False, 0
        session.commit()


@pytest.mark.parametrize("role", ["it_support", "admin"])
def test_page_shows_facts_chart_tables(fleet: Fleet, client: FlaskClient, role: str) -> None:
    add_reports(fleet, "tab-001", 5)
    page = browser(fleet, client, role).text("/devices/tab-001")
    assert page.count("<h1>") == 1
    assert "ESAVO-0001" in page and "R90000001" in page
    assert '<svg class="chart"' in page and "<polyline" in page and 'class="band' in page
    assert "Battery over the last 7 days" in page
    assert "<details>" in page and "<caption>" in page
    assert page.count("<tr><td>") >= 5  # the report rows
    assert "Differs" in page  # the policy locks an in-stock tablet; it reports unlocked
    # IT support may start remote support from here; administrators may not (by default).
    assert ('action="/support"' in page) == (role == "it_support")
    for label in ("Lock", "Ring", "Restart", "Sync now", "Send message"):
        assert f">{label}<" in page
    assert "Not locked by IT support." in page and ">Unlock<" not in page
    assert ("Wipe…" in page) == (role == "it_support")
    assert "Tablet added" in page and "(API)" in page  # the audit trail, in words


@pytest.mark.parametrize("days", [1, 7, 30])
def test_chart_spans_the_whole_window(fleet: Fleet, client: FlaskClient, days: int) -> None:
    """Two minutes of reports sit at the right edge of a window of 1, 7 or 30 days; its
    labels stay on the canvas (issue 19: they were spread over the width, labels far off)."""
    add_reports(fleet, "tab-001", 2)
    page = browser(fleet, client, "it_support").text(f"/devices/tab-001?days={days}")
    (chart,) = charts_in(page)
    assert_inside(page[page.index('<svg class="chart"') : page.index("</svg>") + 6])
    assert_accessible(chart)
    title = f"Battery over the last {days} days" if days > 1 else "Battery over the last day"
    assert visible_title(chart) == title
    left, right, _bottom = plot_edges(chart)
    ticks = x_ticks(chart)
    assert len(ticks) >= 7
    assert ticks[0] == pytest.approx(left, abs=0.1) and ticks[-1] == pytest.approx(right, abs=0.1)
    xs = [float(p.split(",")[0]) for p in chart.find(f"{NS}polyline").attrib["points"].split()]
    assert all(x > right - 3 for x in xs)
    assert len(points(chart)) == 2 and len(visible_markers(chart)) == 2
    assert not no_data(chart)


def test_chart_without_reports_says_so(fleet: Fleet, client: FlaskClient) -> None:
    page = browser(fleet, client, "it_support").text("/devices/tab-002?days=7")
    (chart,) = charts_in(page)
    assert no_data(chart) and not points(chart)
    assert "No status reports in this window." in "".join(chart.itertext())


def test_other_organisation_and_counsellor_are_refused(fleet: Fleet, client: FlaskClient) -> None:
    it = browser(fleet, client, "it_support")
    assert it.get("/devices/no-such-device").status_code == 404
    with fleet.services.session_factory() as session:
        org = orm.Organisation(code="other", name="Other")
        session.add(org)
        session.flush()
        session.add(
            orm.Device(
                id="other-001",
                organisation_id=org.id,
                asset_tag="O1",
                status=orm.DeviceStatus(device_id="other-001", online=False),
            )
        )
        session.commit()
    assert it.get("/devices/other-001").status_code == 404
    assert it.post("/devices/other-001/commands", {"name": "ring"}).status_code == 404
    assert commands(fleet, "other-001") == []
    client.delete_cookie("lainaamo_session")
    counsellor = browser(fleet, client, "counsellor")
    assert counsellor.get("/devices/tab-001").status_code == 403
    assert counsellor.post("/devices/tab-001/commands", {"name": "ring"}).status_code == 403
    assert commands(fleet, "tab-001") == []


def test_buttons_issue_commands(fleet: Fleet, client: FlaskClient) -> None:
    it = browser(fleet, client, "it_support")
    for name in ("lock", "unlock", "ring", "reboot", "sync"):
        response = it.post("/devices/tab-002/commands", {"name": name})
        assert response.status_code == 302, name
    response = it.post("/devices/tab-002/commands", {"name": "message", "text": "Soita meille"})
    assert response.status_code == 302
    rows = commands(fleet, "tab-002")
    assert sorted(r.name for r in rows) == sorted(
        ["lock", "unlock", "ring", "reboot", "sync", "message"]
    )
    assert next(r for r in rows if r.name == "message").args == {"text": "Soita meille"}
    page = it.text("/devices/tab-002")
    assert "queued" in page and "Soita meille" in page
    empty = it.post("/devices/tab-002/commands", {"name": "message", "text": " "})
    assert empty.status_code == 422 and "a message needs text" in empty.get_data(as_text=True)
    bad = it.post("/devices/tab-002/commands", {"name": "format-c"})
    assert bad.status_code == 422
    assert len(commands(fleet, "tab-002")) == 6


def test_a_lock_from_the_device_page_shows_who_when_why_until_unlocked(
    fleet: Fleet, client: FlaskClient
) -> None:
    it = browser(fleet, client, "it_support")
    refused = it.post("/devices/tab-002/lock", {"reason": "hetu 010203A123B"})
    assert refused.status_code == 422 and "Not locked by IT support." in refused.text
    assert it.post("/devices/tab-002/lock", {"reason": "laturi puuttuu"}).status_code == 302
    page = it.text("/devices/tab-002")
    username = fleet.logins["it_support"].username
    assert f"Locked by {username} since" in page and "Reason: laturi puuttuu" in page
    assert ">Unlock<" in page and 'action="/devices/tab-002/unlock"' in page
    assert "Locked by staff" in page  # the audit trail, in words
    with fleet.services.session_factory() as session:
        row = session.get(orm.DesiredStateRow, "tab-002")
        assert row is not None and row.policy["message"] == MESSAGES["locked"]
        assert "laturi" not in str(row.policy)
    twice = it.post("/devices/tab-002/lock", {})
    assert twice.status_code == 409 and "already locked" in twice.text
    assert commands(fleet, "tab-002") == []  # a staff lock, not a one-shot command
    assert it.post("/devices/tab-002/unlock", {"reason": "palautettu"}).status_code == 302
    page = it.text("/devices/tab-002")
    assert "Not locked by IT support." in page and "Staff lock lifted" in page
    assert "palautettu" in page
    assert it.post("/devices/tab-002/unlock", {}).status_code == 409
    client.delete_cookie("lainaamo_session")
    counsellor = browser(fleet, client, "counsellor")
    assert counsellor.post("/devices/tab-001/lock", {}).status_code == 403
    assert counsellor.post("/devices/tab-001/unlock", {}).status_code == 403


def test_in_sync_needs_the_reported_lock_to_match_not_only_the_version(
    fleet: Fleet, client: FlaskClient
) -> None:
    """The issue's device page said "In sync" beside "Locked: Differs"."""
    it = browser(fleet, client, "it_support")
    with fleet.services.session_factory() as session:
        row = session.get(orm.DesiredStateRow, "tab-003")
        status = session.get(orm.DeviceStatus, "tab-003")
        assert row is not None and status is not None and row.policy["mode"] == "locked"
        # The version the tablet applied locks it, and it says it enforces every key of it,
        # yet it reports itself unlocked.
        report_applied(status, row.version)
        status.locked, status.kiosk = False, False
        status.reported_at = fleet.services.clock()
        session.commit()
    page = it.text("/devices/tab-003")
    assert "In sync" not in page and "Differs from the policy:" in page
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, "tab-003")
        assert status is not None
        status.locked = True
        session.commit()
    page = it.text("/devices/tab-003")
    assert "In sync" in page and "Differs" not in page
    assert enforcement_table(page) == [
        ("mode", "Enforced"),
        ("message", "Enforced"),
        ("support_phone", "Enforced"),
    ]


def enforcement_table(page: str) -> list[tuple[str, str]]:
    """The rows of "What the tablet enforces": (key, what the page says of it)."""
    table = page[page.index('<table id="enforcement">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r'<tr data-key="([^"]+)">.*?<td>(.*?)</td>', table, re.DOTALL)
    return [(key, " ".join(re.sub(r"<[^>]+>", " ", cell).split())) for key, cell in rows]


def test_the_page_shows_what_the_tablet_enforces_key_by_key(
    fleet: Fleet, client: FlaskClient
) -> None:
    """The server believes only what the tablet reports (docs/protocol.md §9)."""
    it = browser(fleet, client, "it_support")

    def reports(version_step: int, enforcement: EnforcementReport | None) -> str:
        with fleet.services.session_factory() as session:
            row = session.get(orm.DesiredStateRow, "tab-003")
            status = session.get(orm.DeviceStatus, "tab-003")
            assert row is not None and status is not None
            report_applied(status, row.version + version_step, enforcement)
            status.locked, status.reported_at = True, fleet.services.clock()
            session.commit()
        return it.text("/devices/tab-003")

    # Applied, but its agent says nothing of what it enforces (an older agent).
    page = reports(0, None)
    assert "Enforcement not reported:" in page and "In sync" not in page
    assert {state for _key, state in enforcement_table(page)} == {"Not reported"}
    # Applied, but it cannot show a message and failed to show the phone number.
    page = reports(0, EnforcementReport(("message",), {"support_phone": "no dialer app"}))
    assert "Not enforced:" in page and "In sync" not in page
    assert enforcement_table(page) == [
        ("mode", "Enforced"),
        ("message", "Cannot enforce"),
        ("support_phone", "Failed no dialer app"),
    ]
    assert "Message <code>message</code>" in page  # the key's name beside its label
    # A newer version it has not applied: what it said of the older one no longer counts.
    page = reports(-1, EnforcementReport())
    assert "In drift:" in page
    assert {state for _key, state in enforcement_table(page)} == {"Not applied yet"}
    # In Finnish and Swedish too.
    reports(0, EnforcementReport(("message",), {"support_phone": "no dialer app"}))
    for language, words in (
        ("fi", ("Ei voimassa:", "Ei tuettu", "Epäonnistui", "Voimassa")),
        ("sv", ("Inte verkställd:", "Stöds inte", "Misslyckades", "Verkställd")),
    ):
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        page = it.text("/devices/tab-003")
        assert all(word in page for word in words), language
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"


def test_wipe_needs_the_retyped_device_id(fleet: Fleet, client: FlaskClient) -> None:
    it = browser(fleet, client, "it_support")
    form = it.text("/devices/tab-003/wipe")
    assert "Type the device id tab-003 to confirm" in form
    for confirm in (None, "", "tab-004"):
        data = {"name": "wipe"} | ({"confirm": confirm} if confirm is not None else {})
        response = it.post("/devices/tab-003/commands", data)
        assert response.status_code == 422
        assert "confirm by repeating its device id" in response.get_data(as_text=True)
    assert commands(fleet, "tab-003") == []
    response = it.post("/devices/tab-003/commands", {"name": "wipe", "confirm": "tab-003"})
    assert response.status_code == 302
    assert [r.name for r in commands(fleet, "tab-003")] == ["wipe"]
    client.delete_cookie("lainaamo_session")
    admin = browser(fleet, client, "admin")
    assert admin.get("/devices/tab-003/wipe").status_code == 403
    refused = admin.post("/devices/tab-003/commands", {"name": "wipe", "confirm": "tab-003"})
    assert refused.status_code == 403
    assert len(commands(fleet, "tab-003")) == 1


def test_manual_wipe_and_loan_history(fleet: Fleet, client: FlaskClient) -> None:
    now = datetime.now(UTC)
    with fleet.services.session_factory() as session:
        user = session.scalar(select(orm.User).where(orm.User.role == "it_support"))
        assert user is not None
        it_principal = principal_of(user)
    uow = fleet.services.uow
    loan = loans.request_loan(uow(), it_principal, RequestLoan("aikuissosiaalityo", "ASK-77"), now)
    loans.act(uow(), it_principal, LoanStep(loan, LoanAction.ASSIGN, device_id="tab-001"), now)
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-001")
        assert device is not None
        device.lifecycle_state = "awaiting_wipe"
        session.commit()
    it = browser(fleet, client, "it_support")
    page = it.text("/devices/tab-001")
    assert "ASK-77" in page and "Record manual wipe" in page
    with fleet.services.session_factory() as session:
        viewed = session.scalars(
            select(orm.AuditEvent.subject_id).where(orm.AuditEvent.action == "console:loan:view")
        ).all()
    assert str(loan) in viewed
    refused = it.post("/devices/tab-001/manual-wipe", {"confirm": "tab-002", "reason": "reset"})
    assert refused.status_code == 422
    done = it.post("/devices/tab-001/manual-wipe", {"confirm": "tab-001", "reason": "reset"})
    assert done.status_code == 302
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-001")
        assert device is not None and device.lifecycle_state == "in_stock"
        assert device.wipe_method == "manual"


def test_online_bands_join_close_reports() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def point(minutes: int) -> HistoryPoint:
        return HistoryPoint(t0 + timedelta(minutes=minutes), 50, False, "wifi", False)

    points = [point(0), point(1), point(2), point(30), point(31)]
    bands = online_bands(points, 60, 3.0, True, t0 + timedelta(minutes=32))
    assert bands == [
        (t0, t0 + timedelta(minutes=2)),
        (t0 + timedelta(minutes=30), t0 + timedelta(minutes=32)),
    ]
