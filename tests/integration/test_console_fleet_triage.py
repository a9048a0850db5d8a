"""The fleet page for triage: problem tiles (counts and filters), sorting, model search, and
bulk lock, message and sync on selected devices with their audit rows and authorisation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import ENFORCED_ALL, Fleet, report_applied

from server.adapters import orm
from server.domain.commands import CreateDevice
from server.domain.fleet_triage import Problem
from server.domain.model import Principal, Role
from server.domain.readiness import ReadinessState
from server.service_layer import accounts, devices, fleet_console, loan_console
from server.service_layer.fleet_console import FleetFilter, Sort

pytestmark = pytest.mark.integration

ALL = [f"tab-{i:03d}" for i in range(1, 10)]
# What `seed_problems` leaves: each problem's devices.
EXPECTED = {
    Problem.OFFLINE: ["tab-001", "tab-002", "tab-003"],  # tab-009 is retired: not counted
    Problem.UNSEEN: ["tab-002"],  # 4 days; tab-001 1 hour; tab-009 retired
    Problem.LOW_BATTERY: ["tab-004"],  # tab-005 is as low but charging
    Problem.OUT_OF_SYNC: ["tab-006"],
    Problem.AWAITING_WIPE: ["tab-007"],
    Problem.STAFF_LOCKED: ["tab-004"],
    Problem.LOST: ["tab-008"],
}


def browser(fleet: Fleet, client: FlaskClient, role: str = "it_support") -> Browser:
    login = fleet.logins[role]
    return Browser(client, login.username, login.password)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-device="([^"]+)"', html)


def tiles(html: str) -> dict[str, int]:
    found = re.findall(
        r'data-problem="(\w+)"[^>]*>\s*<span class="value">([\d\s,\xa0]+)</span>', html
    )
    return {code: int(re.sub(r"\D", "", n)) for code, n in found}


def seed_problems(fleet: Fleet) -> None:
    """Every device online, fresh, charged and converged; then one problem each (EXPECTED)."""
    now = fleet.services.clock()
    with fleet.services.session_factory() as session:
        for status in session.scalars(select(orm.DeviceStatus)):
            status.online, status.last_seen_at, status.reported_at = True, now, now
            status.status_interval_s, status.battery_pct, status.charging = 60, 80, False
            report_applied(status, 10**6, ENFORCED_ALL)
        status_of = {s.device_id: s for s in session.scalars(select(orm.DeviceStatus))}
        device_of = {d.id: d for d in session.scalars(select(orm.Device))}
        status_of["tab-001"].online = False
        status_of["tab-001"].last_seen_at = now - timedelta(hours=1)
        status_of["tab-002"].online = False
        status_of["tab-002"].last_seen_at = now - timedelta(days=4)
        status_of["tab-003"].last_seen_at = now - timedelta(hours=1)  # online but stale
        status_of["tab-004"].battery_pct = 20  # at the threshold: low
        status_of["tab-004"].charging = None  # not said: not charging
        device_of["tab-004"].staff_locked_at = now
        status_of["tab-005"].battery_pct, status_of["tab-005"].charging = 10, True
        report_applied(status_of["tab-006"], 0)
        device_of["tab-007"].lifecycle_state = "awaiting_wipe"
        device_of["tab-008"].lifecycle_state = "lost"
        device_of["tab-009"].lifecycle_state = "retired"
        status_of["tab-009"].online = False
        status_of["tab-009"].last_seen_at = now - timedelta(days=10)
        session.commit()


def test_each_tile_counts_and_filters_exactly_its_devices(
    fleet: Fleet, client: FlaskClient
) -> None:
    seed_problems(fleet)
    b = browser(fleet, client)
    html = b.text("/devices")
    assert tiles(html) == {p.value: len(ids) for p, ids in EXPECTED.items()}
    assert "Needs attention" in html and "Offline now" in html
    for problem, ids in EXPECTED.items():
        assert f'href="/devices?problem={problem.value}"' in html
        page = b.text(f"/devices?problem={problem.value}")
        assert listed(page) == ids, problem
        assert "Showing only:" in page and 'id="active-problem"' in page
        # The tile's filter combines with the others and is removable.
        assert 'name="problem" value="' + problem.value + '"' in page
        assert re.search(r'<a href="/devices">Show all devices again', page)
    assert "Showing only:" not in html
    assert listed(b.text("/devices?problem=offline&unit=aikuissosiaalityo")) == ["tab-001"]
    assert b.get("/devices?problem=nonsense").status_code == 422


def test_counts_are_one_statement_in_scope(fleet: Fleet) -> None:
    seed_problems(fleet)
    with fleet.services.session_factory() as session:
        counsellor = session.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        assert counsellor is not None
        who = accounts.principal_of(counsellor)
        unit_ids = {u.id for u in counsellor.units}
        mine = set(session.scalars(select(orm.Device.id).where(orm.Device.unit_id.in_(unit_ids))))
    triage = fleet_console.Triage.of(fleet.services.clock(), fleet.services.settings)
    with fleet.services.session_factory() as session:
        counted = fleet_console.problem_counts(session, who, triage)
    assert counted == {p: len(set(ids) & mine) for p, ids in EXPECTED.items()}


def test_tiles_agree_with_the_loan_pages_readiness(fleet: Fleet) -> None:
    """Offline, low battery and out of sync are the readiness rules of the loan pages."""
    seed_problems(fleet)
    svc = fleet.services
    now = svc.clock()
    with svc.session_factory() as session:
        ready = {
            d.id: loan_console.device_readiness(d, now, svc.settings).state
            for d in session.scalars(select(orm.Device))
            if d.lifecycle_state != "retired"
        }
    assert (
        sorted(i for i, s in ready.items() if s is ReadinessState.OFFLINE)
        == EXPECTED[Problem.OFFLINE]
    )
    assert (
        sorted(i for i, s in ready.items() if s is ReadinessState.NOT_CONVERGED)
        == EXPECTED[Problem.OUT_OF_SYNC]
    )
    # Readiness does not ask about charging; the tile leaves out a charging tablet.
    low = sorted(i for i, s in ready.items() if s is ReadinessState.LOW_BATTERY)
    assert low == ["tab-004", "tab-005"] and EXPECTED[Problem.LOW_BATTERY] == ["tab-004"]


def test_a_tiles_devices_export_as_csv(fleet: Fleet, client: FlaskClient) -> None:
    seed_problems(fleet)
    response = browser(fleet, client).get("/devices.csv?problem=offline")
    assert response.status_code == 200
    lines = response.get_data(as_text=True).strip().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == EXPECTED[Problem.OFFLINE]


def set_columns(fleet: Fleet) -> None:
    now = fleet.services.clock()
    models = ["Lenovo Tab M10", "Samsung A8", "", "Lenovo Tab M8"]
    with fleet.services.session_factory() as session:
        for i, device in enumerate(session.scalars(select(orm.Device).order_by(orm.Device.id))):
            device.model = models[i % len(models)]
            status = session.get(orm.DeviceStatus, device.id)
            assert status is not None
            status.battery_pct = None if i == 4 else (i * 37) % 100
            status.reported_at = now
            status.last_seen_at = None if i == 2 else now - timedelta(minutes=(i * 7) % 5)
        session.commit()


def test_model_search(fleet: Fleet, client: FlaskClient) -> None:
    set_columns(fleet)
    b = browser(fleet, client)
    assert listed(b.text("/devices?q=tab+m10")) == ["tab-001", "tab-005", "tab-009"]
    assert listed(b.text("/devices?q=SAMSUNG")) == ["tab-002", "tab-006"]
    assert "Device id, asset tag, serial or model" in b.text("/devices")


def test_sorting_by_each_column_with_aria_sort(fleet: Fleet, client: FlaskClient) -> None:
    set_columns(fleet)
    b = browser(fleet, client)
    with fleet.services.session_factory() as session:
        rows = {d.id: d for d in session.scalars(select(orm.Device))}
        battery = {
            i: (s.battery_pct if s.battery_pct is not None else -1)
            for i, s in ((i, session.get(orm.DeviceStatus, i)) for i in rows)
            if s is not None
        }
    by_battery = sorted(ALL, key=lambda i: (battery[i], i))
    html = b.text("/devices?sort=battery")
    assert listed(html) == by_battery
    assert re.search(
        r'<th scope="col" aria-sort="ascending" class="num"><a href="[^"]*dir=desc', html
    )
    assert html.count("aria-sort=") == 1
    html = b.text("/devices?sort=battery&dir=desc")
    assert listed(html) == sorted(ALL, key=lambda i: (-battery[i], i))
    assert 'aria-sort="descending"' in html
    by_model = sorted(ALL, key=lambda i: (rows[i].model, i))
    assert listed(b.text("/devices?sort=model")) == by_model
    assert listed(b.text("/devices?sort=asset_tag&dir=desc")) == sorted(
        ALL, key=lambda i: rows[i].asset_tag, reverse=True
    )
    # Sorting keeps the filters, and the filter form keeps the sort.
    page = b.text("/devices?sort=model&unit=paihde")
    assert listed(page) == [i for i in by_model if i in ("tab-003", "tab-006", "tab-009")]
    assert 'name="sort" value="model"' in page
    assert 'href="/devices?unit=paihde&amp;sort=battery"' in page
    # Unsorted: ids, and the id header says so.
    assert 'aria-sort="ascending"><a href="/devices?dir=desc"' in b.text("/devices")
    assert b.get("/devices?sort=serial").status_code == 422


@pytest.mark.parametrize("column", ["last_seen", "battery", "unit", "state", "model"])
def test_sorted_pages_follow_on(fleet: Fleet, column: str) -> None:
    """Walked two at a time, the pages of each sort are the whole sorted list, in order."""
    set_columns(fleet)
    with fleet.services.session_factory() as session:
        it = session.scalar(select(orm.User).where(orm.User.role == "it_support"))
        assert it is not None
        who = accounts.principal_of(it)
    for descending in (False, True):
        sort = Sort(column, descending)
        with fleet.services.session_factory() as session:
            whole, _next, _total = fleet_console.list_page(
                session, who, FleetFilter(), cursor=None, low_battery_pct=20, sort=sort
            )
        walked: list[str] = []
        cursor = None
        while True:
            with fleet.services.session_factory() as session:
                page, cursor, total = fleet_console.list_page(
                    session,
                    who,
                    FleetFilter(),
                    cursor=cursor,
                    low_battery_pct=20,
                    sort=sort,
                    limit=2,
                )
            walked += [d.id for d in page]
            if cursor is None:
                break
        assert total == 9
        assert walked == [d.id for d in whole] and sorted(walked) == ALL


def test_a_forged_sort_cursor_is_refused(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client)
    for cursor in ("bm9uc2Vuc2U", "WzEsIDJd", "WyJ4IiwgInRhYi0wMDEiXQ", "W05hTiwgImEiXQ"):
        assert b.get(f"/devices?sort=battery&cursor={cursor}").status_code == 422


# --- bulk actions ----------------------------------------------------------------------------


def commands(fleet: Fleet) -> list[orm.CommandRow]:
    with fleet.services.session_factory() as session:
        return list(session.scalars(select(orm.CommandRow).order_by(orm.CommandRow.device_id)))


def audit_rows(
    fleet: Fleet, prefix: tuple[str, ...] = ("console:command", "console:device")
) -> list[tuple[str, str, str | None]]:
    with fleet.services.session_factory() as session:
        return [
            (a.action, a.subject_id, a.reason)
            for a in session.scalars(select(orm.AuditEvent).order_by(orm.AuditEvent.id))
            if a.action.startswith(prefix) and not a.action.endswith((":view", ":list"))
        ]


def test_list_offers_selection_with_labels(fleet: Fleet, client: FlaskClient) -> None:
    html = browser(fleet, client).text("/devices")
    assert 'action="/devices/bulk"' in html
    for device in ALL:
        assert f'<input type="checkbox" name="device" value="{device}" id="pick-{device}">' in html
        assert f'<label for="pick-{device}" class="visually-hidden">Choose {device}</label>' in html
        assert f'<input type="hidden" name="page_device" value="{device}">' in html
    assert '<label for="f-page_all">Choose all 9 devices on this page</label>' in html


def test_bulk_lock_asks_for_a_reason_and_a_tick_then_locks_and_audits(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = browser(fleet, client)
    chosen = {"device": ["tab-001", "tab-002"], "action": "lock", "next": "/devices?sort=model"}
    page = b.post("/devices/bulk", chosen)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="reason"' in text and 'name="confirm"' in text and "required" in text
    assert "Lock 2 devices until someone unlocks them." in text
    assert commands(fleet) == []  # the choice alone changes nothing
    send = {"device": ["tab-001", "tab-002"], "action": "lock"}
    for missing in ({}, {"confirm": "yes"}, {"reason": "tarkistus"}):
        refused = b.post("/devices/bulk/send", {**send, **missing})
        assert refused.status_code == 422
        assert "Nothing was changed" in refused.get_data(as_text=True)
    assert commands(fleet) == [] and audit_rows(fleet) == []
    done = b.post("/devices/bulk/send", {**send, "confirm": "yes", "reason": "varastoinventaario"})
    assert done.status_code == 302 and "/devices/bulk/" in done.headers["Location"]
    queued = commands(fleet)
    assert [(c.device_id, c.name, c.state) for c in queued] == [
        ("tab-001", "lock", "queued"),
        ("tab-002", "lock", "queued"),
    ]
    bulk_id = queued[0].bulk_id
    assert bulk_id and {c.bulk_id for c in queued} == {bulk_id}
    with fleet.services.session_factory() as session:
        for device in ("tab-001", "tab-002"):
            row = session.get(orm.Device, device)
            assert row is not None and row.staff_locked_at is not None
            assert row.staff_lock_reason == "varastoinventaario"
    assert sorted(audit_rows(fleet)) == sorted(
        [
            ("console:device:lock", "tab-001", "varastoinventaario"),
            ("console:command:lock", "tab-001", None),
            ("console:device:lock", "tab-002", "varastoinventaario"),
            ("console:command:lock", "tab-002", None),
            ("console:command:bulk_lock", bulk_id, "varastoinventaario"),
        ]
    )
    progress = b.text(done.headers["Location"])
    assert "0 of 2 finished" in progress and 'max="2"' in progress
    assert "Waiting for the tablet" in progress and ">queued<" not in progress
    data = b.get(f"/devices/bulk/{bulk_id}/progress.json").json
    assert data is not None and data["total"] == 2 and data["finished"] == 0
    # Locking again: the locked ones keep their locks; nothing is queued, the page says so.
    again = b.post(
        "/devices/bulk/send",
        {"device": ["tab-001", "tab-003"], "action": "lock", "confirm": "yes", "reason": "x"},
        follow_redirects=True,
    )
    text = again.get_data(as_text=True)
    assert "1 device was locked already and keeps its lock: tab-001" in text
    assert [c.device_id for c in commands(fleet)] == ["tab-001", "tab-002", "tab-003"]


def test_bulk_message_and_sync(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client, "admin")
    page = b.post("/devices/bulk", {"device": ["tab-003"], "action": "message"})
    assert 'name="text"' in page.get_data(as_text=True)
    assert (
        b.post("/devices/bulk/send", {"device": ["tab-003"], "action": "message"}).status_code
        == 422
    )
    sent = b.post(
        "/devices/bulk/send",
        {"device": ["tab-003", "tab-004"], "action": "message", "text": "Palauta laite"},
    )
    assert sent.status_code == 302
    messages = commands(fleet)
    assert [(c.device_id, c.name, c.args) for c in messages] == [
        ("tab-003", "message", {"text": "Palauta laite"}),
        ("tab-004", "message", {"text": "Palauta laite"}),
    ]
    # "All on this page" takes the page's devices, whichever boxes are ticked.
    page_all = {"page_all": "1", "page_device": ALL[:5], "device": ["tab-009"], "action": "sync"}
    confirm = b.post("/devices/bulk", page_all).get_data(as_text=True)
    assert re.findall(r'name="device" value="([^"]+)"', confirm) == ALL[:5]
    assert b.post("/devices/bulk/send", {"device": ALL[:5], "action": "sync"}).status_code == 302
    synced = [c for c in commands(fleet) if c.name == "sync"]
    assert sorted(c.device_id for c in synced) == ALL[:5] and len({c.bulk_id for c in synced}) == 1
    actions = [a for a, _s, _r in audit_rows(fleet)]
    assert actions.count("console:command:message") == 2
    assert actions.count("console:command:bulk_message") == 1
    assert actions.count("console:command:sync") == 5
    assert actions.count("console:command:bulk_sync") == 1


def test_bulk_needs_a_choice(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client)
    nothing = b.post("/devices/bulk", {"action": "lock"}, follow_redirects=True)
    assert "Choose one or more devices and an action." in nothing.get_data(as_text=True)
    wipe = b.post("/devices/bulk/send", {"device": ["tab-001"], "action": "wipe"})
    assert wipe.status_code == 422 and commands(fleet) == []


def test_counsellors_may_not_act_in_bulk(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(fleet, client, "counsellor")
    assert b.get("/devices").status_code == 403
    data = {"device": ["tab-001"], "action": "message", "text": "hei"}
    assert b.post("/devices/bulk", data).status_code == 403
    assert b.post("/devices/bulk/send", data).status_code == 403
    assert commands(fleet) == [] and audit_rows(fleet, ("console:command",)) == []


def test_bulk_stays_within_scope(fleet: Fleet, client: FlaskClient) -> None:
    uow = fleet.services.uow
    org_id = accounts.add_organisation(uow(), "other-region", "Other region")
    accounts.add_unit(uow(), "other-region", "aikuissosiaalityo", "Other adult social work")
    setup = Principal(0, "seed", org_id, Role.IT_SUPPORT, frozenset())
    devices.create_device(
        uow(), setup, CreateDevice("zz-other-1", "ESAVO-0001", "aikuissosiaalityo", "R90000001")
    )
    b = browser(fleet, client)
    assert b.post("/devices/bulk", {"device": ["zz-other-1"], "action": "sync"}).status_code == 404
    mixed = {"device": ["tab-001", "zz-other-1"], "action": "lock"}
    sent = b.post("/devices/bulk/send", {**mixed, "confirm": "yes", "reason": "r"})
    assert sent.status_code == 404
    assert commands(fleet) == [] and audit_rows(fleet, ("console:command",)) == []
    with fleet.services.session_factory() as session:
        tab = session.get(orm.Device, "tab-001")
        assert tab is not None and tab.staff_locked_at is None
    # A bulk command's progress page; an unknown bulk id is not found.
    b.post("/devices/bulk/send", {"device": ["tab-001"], "action": "sync"})
    bulk_id = commands(fleet)[0].bulk_id
    assert b.get(f"/devices/bulk/{bulk_id}").status_code == 200
    assert b.get("/devices/bulk/0123456789abcdef").status_code == 404
