"""The scheduler's rules, as pure domain functions: which due commands may be sent (and for
how long), and how long a remote-support signal is worth sending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lainaamo.signing import DESTRUCTIVE
from server.domain import command_dispatch
from server.domain.support_signals import SIGNAL_STALE_S, age_s, is_stale, lifetime_left_s

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


# --- commands


@pytest.mark.parametrize("name", sorted(DESTRUCTIVE))
def test_a_wipe_or_release_is_refused_when_the_server_cannot_sign(name: str) -> None:
    assert command_dispatch.needs_signature(name)
    assert command_dispatch.refused_unsigned(name, can_sign=False)
    assert not command_dispatch.refused_unsigned(name, can_sign=True)


@pytest.mark.parametrize("name", ["lock", "unlock", "ring", "message", "reboot", "sync"])
def test_other_commands_go_unsigned(name: str) -> None:
    assert not command_dispatch.needs_signature(name)
    assert not command_dispatch.refused_unsigned(name, can_sign=False)
    assert not command_dispatch.refused_unsigned(name, can_sign=True)


def test_a_command_expires_at_the_broker_with_its_whole_seconds_left() -> None:
    expires = T0 + timedelta(minutes=10)
    assert command_dispatch.seconds_left(expires, T0) == 600
    assert command_dispatch.seconds_left(expires, T0 + timedelta(seconds=0.5)) == 599
    assert command_dispatch.seconds_left(expires, expires - timedelta(seconds=0.5)) == 0
    assert command_dispatch.seconds_left(expires, expires) == 0
    assert command_dispatch.seconds_left(expires, expires + timedelta(seconds=3)) == -3


# --- remote-support signals


def test_signals_go_stale_after_two_minutes() -> None:
    assert SIGNAL_STALE_S == 120
    assert age_s(T0, T0 + timedelta(seconds=30)) == 30
    assert not is_stale(T0, T0)
    assert not is_stale(T0, T0 + timedelta(seconds=SIGNAL_STALE_S))
    assert is_stale(T0, T0 + timedelta(seconds=SIGNAL_STALE_S, microseconds=1))
    assert is_stale(T0, T0 + timedelta(seconds=10), stale_s=5)


def test_a_signal_expires_at_the_broker_with_what_is_left_of_its_life() -> None:
    assert lifetime_left_s(T0, T0) == SIGNAL_STALE_S
    assert lifetime_left_s(T0, T0 + timedelta(seconds=30)) == SIGNAL_STALE_S - 30
    assert lifetime_left_s(T0, T0 + timedelta(seconds=30.5)) == SIGNAL_STALE_S - 31
    # At least a second while it is not stale; None (dropped, not sent) once it is.
    assert lifetime_left_s(T0, T0 + timedelta(seconds=SIGNAL_STALE_S - 0.2)) == 1
    assert lifetime_left_s(T0, T0 + timedelta(seconds=SIGNAL_STALE_S)) == 1
    assert lifetime_left_s(T0, T0 + timedelta(seconds=SIGNAL_STALE_S + 1)) is None
    assert lifetime_left_s(T0, T0 + timedelta(seconds=4), stale_s=5) == 1
    assert lifetime_left_s(T0, T0 + timedelta(seconds=6), stale_s=5) is None


def test_the_scheduler_uses_these_rules() -> None:
    from server.entrypoints import background

    assert background.SIGNAL_STALE_S is SIGNAL_STALE_S
