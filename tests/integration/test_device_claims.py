"""What a tablet may claim (issue 14 §6): an absurd boot cannot freeze its latest status, a
clock far from the server's is recorded as skew and not trusted for ordering, and IT support
can reset a device's sequence state — through the ingest handler on SQLite and PostgreSQL,
the API and the console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.messages import status_report
from test_ingest_handler import run, status_row

from lainaamo.protocol import Presence
from server.adapters import orm
from server.domain.model import (
    CLOCK_AHEAD_S,
    CLOCK_BEHIND_S,
    MAX_BOOT_JUMP,
    clock_skew_s,
    plausible_boot,
)
from server.service_layer.ingest import Received

ABSURD = 2**52  # within the schema's bound (2^53 - 1), far beyond any real count


def now() -> datetime:
    return datetime.now(UTC)


def report(
    device: str, boot: int, seq: int, ts: datetime | None = None, **changes: Any
) -> Received:
    received = now()
    message = status_report(device, boot, seq, ts=ts or received, **changes)
    return Received(message, received)


def presence(device: str, boot: int, seq: int, state: str = "online") -> Received:
    message = Presence(device_id=device, ts=now(), boot=boot, seq=seq, state=state)  # type: ignore[arg-type]
    return Received(message, now())


def test_the_rules() -> None:
    assert plausible_boot(1, None) and plausible_boot(MAX_BOOT_JUMP, None)
    assert not plausible_boot(MAX_BOOT_JUMP + 1, None)
    assert plausible_boot(12 + MAX_BOOT_JUMP, 12) and not plausible_boot(13 + MAX_BOOT_JUMP, 12)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert clock_skew_s(at, at) is None
    assert clock_skew_s(at + timedelta(seconds=CLOCK_AHEAD_S), at) is None
    assert clock_skew_s(at + timedelta(seconds=CLOCK_AHEAD_S + 1), at) == CLOCK_AHEAD_S + 1
    assert clock_skew_s(at - timedelta(seconds=CLOCK_BEHIND_S), at) is None  # weeks in an outbox
    assert clock_skew_s(datetime(1, 1, 1, tzinfo=UTC), at) is not None
    assert clock_skew_s(datetime(9999, 12, 31, tzinfo=UTC), at) is not None


def test_an_absurd_boot_cannot_freeze_the_latest_status(fleet: Fleet) -> None:
    run(fleet, [report("tab-001", 3, 1, battery_pct=50)])
    outcome = run(fleet, [report("tab-001", ABSURD, 1, battery_pct=1)])
    assert outcome.ingested["status"] == 1  # kept in the history
    row = status_row(fleet, "tab-001")
    assert (row.status_boot, row.battery_pct) == (3, 50)  # but not adopted
    assert (row.implausible_boot, row.implausible_seq) == (ABSURD, 1)
    assert row.implausible_at is not None
    # The real tablet's next reports still move its latest status.
    run(fleet, [report("tab-001", 3, 2, battery_pct=49)])
    run(fleet, [report("tab-001", 4, 0, battery_pct=48)])  # it rebooted
    assert (status_row(fleet, "tab-001").status_boot, status_row(fleet, "tab-001").battery_pct) == (
        4,
        48,
    )
    # In one batch too: the newest plausible report wins, whatever the order.
    run(fleet, [report("tab-001", 4, 2, battery_pct=40), report("tab-001", ABSURD, 9)])
    assert status_row(fleet, "tab-001").battery_pct == 40
    # A first report may not claim one either (nothing known: counted from 0).
    run(fleet, [report("tab-002", ABSURD, 0)])
    run(fleet, [report("tab-002", 1, 0, battery_pct=77)])
    assert status_row(fleet, "tab-002").battery_pct == 77


def test_an_absurd_boot_cannot_freeze_presence(fleet: Fleet) -> None:
    run(fleet, [presence("tab-003", 2, 1)])
    outcome = run(fleet, [presence("tab-003", ABSURD, 1, "offline")])
    assert outcome.dropped["implausible"] == 1
    row = status_row(fleet, "tab-003")
    assert row.online and row.implausible_boot == ABSURD
    run(fleet, [presence("tab-003", 2, 3, "offline")])
    assert not status_row(fleet, "tab-003").online


@pytest.mark.parametrize("year", [1, 9999])
def test_a_skewed_clock_is_recorded_and_not_trusted(fleet: Fleet, year: int) -> None:
    skewed = datetime(year, 6, 1, tzinfo=UTC)
    item = report("tab-004", 1, 1, ts=skewed)
    run(fleet, [item])
    row = status_row(fleet, "tab-004")
    assert row.clock_skew_s is not None and (row.clock_skew_s > 0) == (year == 9999)
    assert row.reported_at == item.received_at  # placed when it arrived
    with fleet.services.session_factory() as session:
        stored = session.scalar(
            select(orm.StatusReport.reported_at).where(orm.StatusReport.device_id == "tab-004")
        )
    assert stored == item.received_at
    # Once the clock is right again, so is the record.
    run(fleet, [report("tab-004", 1, 2)])
    assert status_row(fleet, "tab-004").clock_skew_s is None


def test_it_support_resets_the_sequence_state(fleet: Fleet, client: FlaskClient) -> None:
    run(fleet, [report("tab-005", 2, 7), report("tab-005", ABSURD, 1)])
    headers = fleet.headers("it_support")
    detail = client.get("/api/v1/devices/tab-005", headers=headers).json
    assert detail is not None
    assert detail["claims"]["implausible_position"]["boot"] == ABSURD
    counsellor = client.post(
        "/api/v1/devices/tab-005/sequence-reset", json={}, headers=fleet.headers("counsellor")
    )
    assert counsellor.status_code in (403, 404)
    done = client.post(
        "/api/v1/devices/tab-005/sequence-reset",
        json={"reason": "agent state restored from a backup"},
        headers=headers,
    )
    assert done.status_code == 200, done.json
    assert done.json is not None
    assert done.json["claims"] == {
        "clock_skew_s": None,
        "implausible_position": None,
        "trust_next_position": True,
    }
    # The device really is at that boot now: its next report is adopted, and the one after.
    run(fleet, [report("tab-005", ABSURD, 2, battery_pct=33)])
    run(fleet, [report("tab-005", ABSURD, 3, battery_pct=32)])
    row = status_row(fleet, "tab-005")
    assert (row.status_boot, row.battery_pct, row.trust_next_position) == (ABSURD, 32, False)
    with fleet.services.session_factory() as session:
        audit = session.scalar(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "api:device:sequence_reset")
        )
    assert audit is not None and audit.subject_id == "tab-005"
    assert audit.reason == "agent state restored from a backup"
    assert audit.before is not None and audit.before["implausible_position"] == f"{ABSURD}.1"


def test_the_device_page_shows_both_and_resets(fleet: Fleet, client: FlaskClient) -> None:
    run(fleet, [report("tab-006", 1, 1, ts=now() + timedelta(hours=3, minutes=1))])
    run(fleet, [report("tab-006", ABSURD, 1)])
    login = fleet.logins["it_support"]
    browser = Browser(client, login.username, login.password)
    page = browser.get("/devices/tab-006").get_data(as_text=True)
    assert "ahead of the server by 3 hours" in page
    assert f"claimed boot {ABSURD}" in page
    done = browser.post("/devices/tab-006/sequence-reset", {"sequence_reason": "checked"})
    assert done.status_code == 302, done.status_code
    page = browser.get("/devices/tab-006").get_data(as_text=True)
    assert "the tablet&#39;s next report sets its position" in page
    assert f"claimed boot {ABSURD}" not in page
