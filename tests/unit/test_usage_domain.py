"""Usage rules without I/O: the policy flag, the day window, periods in local days, merging."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from server.domain.loans import Escalation, LoanState
from server.domain.model import LifecycleState
from server.domain.policy import DeviceSituation, compute_policy
from server.domain.usage import days_of, figures, in_window, merge, parse_day, unused_since

LENT = DeviceSituation(lifecycle=LifecycleState.ON_LOAN, loan_state=LoanState.ON_LOAN, usage=True)


def test_usage_is_asked_for_on_loan_in_a_collecting_unit_only() -> None:
    assert compute_policy(LENT)["usage"] is True
    restricted = DeviceSituation(**{**LENT.__dict__, "escalation": Escalation.RESTRICTED})
    assert compute_policy(restricted)["mode"] == "restricted"
    assert compute_policy(restricted)["usage"] is True
    paused = DeviceSituation(**{**LENT.__dict__, "loan_state": LoanState.PAUSED})
    assert compute_policy(paused)["usage"] is True
    not_collecting = DeviceSituation(**{**LENT.__dict__, "usage": False})
    assert "usage" not in compute_policy(not_collecting)
    for lifecycle, loan_state in (
        (LifecycleState.IN_STOCK, None),
        (LifecycleState.LOST, LoanState.LOST),
        (LifecycleState.RELEASED, None),
    ):
        situation = DeviceSituation(lifecycle=lifecycle, loan_state=loan_state, usage=True)
        assert "usage" not in compute_policy(situation), lifecycle


def test_an_override_can_neither_switch_usage_on_nor_keep_it_on() -> None:
    off = DeviceSituation(**{**LENT.__dict__, "usage": False, "override": {"usage": True}})
    assert "usage" not in compute_policy(off)
    locked = DeviceSituation(**{**LENT.__dict__, "override": {"mode": "locked"}})
    assert compute_policy(locked)["mode"] == "locked" and "usage" not in compute_policy(locked)
    refused = DeviceSituation(**{**LENT.__dict__, "override": {"usage": False}})
    assert compute_policy(refused)["usage"] is True  # the unit decides, not an override


@pytest.mark.parametrize(
    ("day", "taken"),
    [
        (date(2026, 10, 17), False),
        (date(2026, 10, 18), True),  # 35 days before
        (date(2026, 11, 22), True),
        (date(2026, 11, 23), True),  # the tablet's calendar may be a day ahead
        (date(2026, 11, 24), False),
    ],
)
def test_the_day_window(day: date, taken: bool) -> None:
    assert in_window(day, date(2026, 11, 22)) is taken


def test_days_are_calendar_dates() -> None:
    assert parse_day("2026-11-22") == date(2026, 11, 22)
    for bad in ("2026-02-30", "2026-13-01", "20261122", "2026-11-2x", "0000-01-01"):
        assert parse_day(bad) is None, bad


def test_a_period_in_local_days() -> None:
    helsinki_midnights = (
        datetime(2025, 12, 31, 22, tzinfo=UTC),  # 1 January 00:00 in Helsinki
        datetime(2026, 1, 31, 22, tzinfo=UTC),
    )
    assert days_of(*helsinki_midnights) == (date(2026, 1, 1), date(2026, 1, 31))
    utc_midnights = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert days_of(*utc_midnights) == (date(2026, 1, 1), date(2026, 1, 31))
    assert unused_since(date(2026, 3, 1)) == date(2026, 2, 16)  # 14 days with today


def test_totals_only_grow() -> None:
    stored = figures(5000, {"chat": 4}, 60)
    reported = figures(100, {"chat": 1, "group": 2, "other": 0}, 900)
    merged = merge(stored, reported)
    assert merged["active_s"] == 5000 and merged["support_s"] == 900
    assert merged["launches_chat"] == 4 and merged["launches_group"] == 2
    assert merged["launches_other"] == 0 and merged["launches_digipath"] == 0
