"""A tablet's readiness as counsellors see it (server/domain/readiness.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lainaamo.config import Settings
from server.domain.readiness import LOW_BATTERY_PCT, Readiness, ReadinessState, readiness

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RECENT = NOW - timedelta(minutes=1)


def test_an_online_charged_converged_tablet_is_ready() -> None:
    r = readiness(True, RECENT, 80, True, NOW)
    assert r == Readiness(ReadinessState.READY, None, 80)
    assert r.ready and not r.never_connected


def test_a_tablet_that_never_connected_is_offline_without_days() -> None:
    r = readiness(False, None, None, True, NOW)
    assert r.state is ReadinessState.OFFLINE and r.days_unseen is None
    assert r.never_connected and not r.ready


def test_an_offline_tablet_counts_whole_days_since_last_seen() -> None:
    assert readiness(False, NOW - timedelta(hours=5), 90, True, NOW).days_unseen == 0
    assert readiness(False, NOW - timedelta(days=1, hours=1), 90, True, NOW).days_unseen == 1
    r = readiness(False, NOW - timedelta(days=12), 90, True, NOW)
    assert (r.state, r.days_unseen, r.never_connected) == (ReadinessState.OFFLINE, 12, False)
    # A clock ahead of ours never makes a negative count.
    assert readiness(False, NOW + timedelta(hours=1), 90, True, NOW).days_unseen == 0


def test_low_battery_is_at_or_below_the_threshold_like_the_fleet_page() -> None:
    assert LOW_BATTERY_PCT == Settings.load({}).low_battery_pct == 20
    assert readiness(True, RECENT, 19, True, NOW).state is ReadinessState.LOW_BATTERY
    assert readiness(True, RECENT, 20, True, NOW).state is ReadinessState.LOW_BATTERY
    assert readiness(True, RECENT, 21, True, NOW).ready
    assert readiness(True, RECENT, 30, True, NOW, low_battery_pct=30).battery_pct == 30
    assert not readiness(True, RECENT, 30, True, NOW, low_battery_pct=30).ready
    assert readiness(True, RECENT, None, True, NOW).ready  # no report yet: nothing known low


def test_not_converged_comes_before_low_battery_and_offline_before_both() -> None:
    assert readiness(True, RECENT, 5, False, NOW).state is ReadinessState.NOT_CONVERGED
    assert readiness(False, RECENT, 5, False, NOW).state is ReadinessState.OFFLINE


def test_the_picker_order_puts_ready_first_and_never_connected_last() -> None:
    choices = [
        readiness(False, None, None, True, NOW),
        readiness(False, NOW - timedelta(days=9), 50, True, NOW),
        readiness(False, NOW - timedelta(days=2), 50, True, NOW),
        readiness(True, RECENT, 50, False, NOW),
        readiness(True, RECENT, 10, True, NOW),
        readiness(True, RECENT, 90, True, NOW),
    ]
    ordered = sorted(choices, key=Readiness.rank)
    assert [(r.state.value, r.days_unseen) for r in ordered] == [
        ("ready", None),
        ("low_battery", None),
        ("not_converged", None),
        ("offline", 2),
        ("offline", 9),
        ("offline", None),
    ]
