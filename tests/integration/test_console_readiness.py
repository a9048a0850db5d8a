"""Counsellors see whether a tablet works where they decide (issue 19, point 5): the loan page,
the overdue worklist and the handover's device picker, which warns before lending a tablet
that is not ready and lends it only once "lend it anyway" is ticked."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from support.console import Browser
from support.fleet import Fleet, report_applied
from test_console_loans import T0, browser, loan_row, publish_agreement, request_loan

from server.adapters import orm
from server.entrypoints.console.core import LANGUAGE_COOKIE

pytestmark = pytest.mark.integration

BADGE = re.compile(r'data-readiness="(\w+)"><span aria-hidden="true">[^<]+</span> ([^<]+)</span>')


def set_status(
    fleet: Fleet,
    device: str,
    *,
    online: bool,
    seen_ago: timedelta | None,
    battery: int | None = 80,
    applied: bool = True,
    shared: bool = False,
) -> None:
    """The tablet's latest presence and status as the ingest would store them (seen_ago
    None: it never connected); `shared`: moved to the shared pool."""
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, device)
        desired = session.get(orm.DesiredStateRow, device)
        row = session.get(orm.Device, device)
        assert status is not None and desired is not None and row is not None
        if shared:
            row.unit_id = None
        if seen_ago is not None:
            status.online = online
            status.last_seen_at = status.reported_at = T0 - seen_ago
            status.status_interval_s = 60
            status.battery_pct = battery
            report_applied(status, desired.version if applied else 0)
        session.commit()


def converge(fleet: Fleet, device: str) -> None:
    """The tablet applied its current desired state (a handover changes it)."""
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, device)
        desired = session.get(orm.DesiredStateRow, device)
        assert status is not None and desired is not None
        report_applied(status, desired.version)
        session.commit()


def mixed_fleet(fleet: Fleet) -> None:
    """The counsellor's unit and the shared pool: one tablet in each readiness."""
    set_status(fleet, "tab-001", online=True, seen_ago=timedelta(minutes=1), battery=80)
    set_status(fleet, "tab-004", online=False, seen_ago=timedelta(days=3, hours=2))
    set_status(fleet, "tab-007", online=False, seen_ago=None)  # never connected
    set_status(
        fleet, "tab-002", online=True, seen_ago=timedelta(minutes=1), battery=12, shared=True
    )
    set_status(
        fleet, "tab-003", online=True, seen_ago=timedelta(minutes=1), applied=False, shared=True
    )


def badges(html: str) -> list[tuple[str, str]]:
    return BADGE.findall(html)


def picker(html: str) -> list[tuple[str, str, bool]]:
    """(device, readiness, checked) of the handover picker, in its order."""
    rows = re.findall(
        r'<input type="radio" name="device_id" value="([\w-]+)" required( checked)?>.*?'
        r'data-readiness="(\w+)"',
        html,
    )
    return [(device, state, bool(checked)) for device, checked, state in rows]


def hand_over(b: Browser, loan_id: int, device: str) -> None:
    chosen = {"device_id": device, "lend_anyway": device}
    assert b.post(f"/loans/{loan_id}/handover/device", chosen).status_code == 303
    confirm = {"agreement_version": "2026-1", "agreement_accepted": "1", "kit": ["charger"]}
    assert b.post(f"/loans/{loan_id}/handover/confirm", confirm).status_code == 303


def test_the_picker_marks_readiness_and_offers_ready_tablets_first(
    client: FlaskClient, fleet: Fleet
) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    mixed_fleet(fleet)
    loan = request_loan(b, "ASK-5001")
    html = b.text(f"/loans/{loan}/handover")
    assert picker(html) == [
        ("tab-001", "ready", True),  # the default choice is a ready one
        ("tab-002", "low_battery", False),
        ("tab-003", "not_converged", False),
        ("tab-004", "offline", False),
        ("tab-007", "offline", False),
    ]
    assert badges(html) == [
        ("ready", "Ready"),
        ("low_battery", "Low battery: 12 %"),
        ("not_converged", "Not ready: settings not applied yet"),
        ("offline", "Offline: not seen for 3 days"),
        ("offline", "Offline: never connected"),
    ]
    assert "lend_anyway" not in html  # nothing to confirm before a choice

    # A ready tablet is reserved at once.
    assert b.post(f"/loans/{loan}/handover/device", {"device_id": "tab-001"}).status_code == 303
    assert loan_row(fleet, loan).device_id == "tab-001"


@pytest.mark.parametrize(
    ("device", "why"),
    [
        ("tab-004", "Offline: not seen for 3 days"),
        ("tab-007", "Offline: never connected"),
        ("tab-002", "Low battery: 12 %"),
        ("tab-003", "Not ready: settings not applied yet"),
    ],
)
def test_a_tablet_that_is_not_ready_is_lent_only_once_confirmed(
    client: FlaskClient, fleet: Fleet, device: str, why: str
) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    mixed_fleet(fleet)
    loan = request_loan(b, "ASK-5002")

    # Chosen without the box: a warning naming the tablet and why, the choice kept, nothing
    # reserved.
    warned = b.post(f"/loans/{loan}/handover/device", {"device_id": device})
    html = warned.get_data(as_text=True)
    assert warned.status_code == 422
    assert f"{device} is not ready: {why}." in html and 'role="alert"' in html
    assert f'<input type="checkbox" name="lend_anyway" value="{device}">' in html
    assert f"Lend {device} anyway" in html
    assert [d for d, _state, checked in picker(html) if checked] == [device]
    assert loan_row(fleet, loan).state == "requested" and loan_row(fleet, loan).device_id is None

    # The box ticked for another tablet confirms nothing.
    other = {"device_id": device, "lend_anyway": "tab-001"}
    assert b.post(f"/loans/{loan}/handover/device", other).status_code == 422
    assert loan_row(fleet, loan).device_id is None

    # Ticked for this one: reserved.
    confirmed = {"device_id": device, "lend_anyway": device}
    assert b.post(f"/loans/{loan}/handover/device", confirmed).status_code == 303
    row = loan_row(fleet, loan)
    assert (row.state, row.device_id) == ("ready", device)


def test_the_api_reserves_without_asking(client: FlaskClient, fleet: Fleet) -> None:
    """The warning is the console's: the API's assign step is unchanged."""
    publish_agreement(client, fleet)
    mixed_fleet(fleet)
    b = browser(client, fleet)
    loan = request_loan(b, "ASK-5003")
    response = client.post(
        f"/api/v1/loans/{loan}/assign",
        json={"device_id": "tab-007"},
        headers=fleet.headers("counsellor"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert loan_row(fleet, loan).device_id == "tab-007"


def test_the_loan_page_and_the_worklist_show_the_tablets_readiness(
    client: FlaskClient, fleet: Fleet
) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    mixed_fleet(fleet)
    lent = {}
    for ref, device in (
        ("ASK-6001", "tab-001"),
        ("ASK-6002", "tab-004"),
        ("ASK-6003", "tab-007"),
        ("ASK-6004", "tab-002"),
    ):
        lent[device] = request_loan(b, ref)
        hand_over(b, lent[device], device)
    # The handover changed each tablet's desired state: those online have not applied it yet.
    assert badges(b.text(f"/loans/{lent['tab-001']}")) == [
        ("not_converged", "Not ready: settings not applied yet")
    ]
    for device in ("tab-001", "tab-002"):
        converge(fleet, device)

    expected = {
        "tab-001": ("ready", "Ready"),
        "tab-004": ("offline", "Offline: not seen for 3 days"),
        "tab-007": ("offline", "Offline: never connected"),
        "tab-002": ("low_battery", "Low battery: 12 %"),
    }
    for device, loan in lent.items():
        html = b.text(f"/loans/{loan}")
        assert "Tablet status" in html and badges(html) == [expected[device]], device

    # A loan without a tablet shows no readiness.
    queued = request_loan(b, "ASK-6005")
    assert "Tablet status" not in b.text(f"/loans/{queued}") and not badges(
        b.text(f"/loans/{queued}")
    )

    with fleet.services.session_factory() as session:
        for loan in lent.values():
            row = session.get(orm.Loan, loan)
            assert row is not None
            row.due_at = T0 - timedelta(days=20)
        session.get(orm.Loan, lent["tab-002"]).hold = True  # type: ignore[union-attr]
        session.commit()
    html = b.text("/worklist")
    overdue, _, held = html.partition("Overdue, on hold")
    rows = re.findall(r"<tr>\s*<td>(ASK-\d+)</td>.*?</tr>", overdue, re.S)
    assert sorted(rows) == ["ASK-6001", "ASK-6002", "ASK-6003"]
    assert "Tablet status" in overdue and sorted(badges(overdue)) == sorted(
        expected[d] for d in ("tab-001", "tab-004", "tab-007")
    )
    assert "ASK-6004" in held and badges(held) == [expected["tab-002"]]


def test_readiness_is_translated(client: FlaskClient, fleet: Fleet) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    mixed_fleet(fleet)
    loan = request_loan(b, "ASK-7001")
    client.set_cookie(LANGUAGE_COOKIE, "fi")
    fi = b.text(f"/loans/{loan}/handover")
    assert "Ei verkossa: ei nähty 3 päivään" in fi and "Akku vähissä: 12 %" in fi
    client.set_cookie(LANGUAGE_COOKIE, "sv")
    warned = b.post(f"/loans/{loan}/handover/device", {"device_id": "tab-007"})
    sv = warned.get_data(as_text=True)
    assert "tab-007 är inte klar: Frånkopplad: har aldrig varit ansluten." in sv
    assert "Låna ut tab-007 ändå" in sv
