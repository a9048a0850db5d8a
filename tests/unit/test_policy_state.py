"""The one rule of whether a device is in line with its desired state (domain/policy_state.py):
the server believes only what the device reports it enforces, not the version alone."""

from __future__ import annotations

import pytest

from lainaamo.protocol import EnforcementReport
from server.domain.policy_state import (
    KeyEnforcement,
    KeyState,
    PolicyState,
    applied,
    in_drift,
    key_states,
    policy_state,
    stored_enforcement,
)

ALL = EnforcementReport()
NO_KIOSK = EnforcementReport(("kiosk",))
NO_MESSAGE = EnforcementReport((), {"message": "no lock screen"})


@pytest.mark.parametrize(
    ("version", "reported", "enforcement", "state"),
    [
        (None, None, None, None),  # no desired state: nothing to be in line with
        (None, 5, ALL, None),
        (3, None, None, PolicyState.PENDING),  # never reported
        (3, 0, ALL, PolicyState.PENDING),  # nothing applied yet
        (3, 2, ALL, PolicyState.PENDING),  # an older version, whatever it says of it
        (3, 2, NO_KIOSK, PolicyState.PENDING),
        (3, 3, ALL, PolicyState.CONVERGED),
        (3, 4, ALL, PolicyState.CONVERGED),  # ahead of a restored server: applied
        (3, 3, NO_KIOSK, PolicyState.NOT_ENFORCED),
        (3, 3, NO_MESSAGE, PolicyState.NOT_ENFORCED),
        (3, 3, None, PolicyState.UNREPORTED),  # the version alone is not enough
        (3, 4, None, PolicyState.UNREPORTED),
    ],
)
def test_the_policy_state(
    version: int | None,
    reported: int | None,
    enforcement: EnforcementReport | None,
    state: PolicyState | None,
) -> None:
    assert policy_state(version, reported, enforcement) is state
    assert in_drift(state) == (state is not None and state is not PolicyState.CONVERGED)


def test_only_converged_is_out_of_drift() -> None:
    assert not in_drift(None) and not in_drift(PolicyState.CONVERGED)
    assert all(in_drift(s) for s in PolicyState if s is not PolicyState.CONVERGED)


def test_a_version_is_applied_once_reported_at_or_past_it() -> None:
    assert applied(3, 3) and applied(3, 9)
    assert not applied(3, 2) and not applied(3, None) and not applied(1, 0)


def test_an_empty_enforcement_means_every_key() -> None:
    assert ALL.complete and EnforcementReport((), {}).complete
    assert not NO_KIOSK.complete and not NO_MESSAGE.complete
    with pytest.raises(ValueError, match="both"):
        EnforcementReport(("kiosk",), {"kiosk": "x"})


def test_the_stored_form_is_the_report_object() -> None:
    assert stored_enforcement(None) is None
    assert stored_enforcement({}) == ALL
    assert stored_enforcement(NO_MESSAGE.to_json()) == NO_MESSAGE
    assert stored_enforcement({"unsupported": ["kiosk"], "failed": {}}) == NO_KIOSK


def test_key_by_key() -> None:
    keys = ["mode", "kiosk", "message", "usage"]
    report = EnforcementReport(("kiosk",), {"message": "no lock screen"})
    assert key_states(keys, PolicyState.NOT_ENFORCED, report) == [
        KeyEnforcement("mode", KeyState.ENFORCED),
        KeyEnforcement("kiosk", KeyState.UNSUPPORTED),
        KeyEnforcement("message", KeyState.FAILED, "no lock screen"),
        KeyEnforcement("usage", KeyState.ENFORCED),
    ]
    assert {k.state for k in key_states(keys, PolicyState.CONVERGED, ALL)} == {KeyState.ENFORCED}
    # Not applied yet: what it said of an older version does not count for this one.
    pending = key_states(keys, PolicyState.PENDING, report)
    assert {k.state for k in pending} == {KeyState.PENDING}
    unreported = key_states(keys, PolicyState.UNREPORTED, None)
    assert {k.state for k in unreported} == {KeyState.UNREPORTED}
