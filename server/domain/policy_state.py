"""Whether a device is in line with its desired state: the server believes only what it sees.

A device reports the version of the desired state it applied and, per key of that policy,
whether it enforced it (docs/protocol.md §6.2, §9). One rule reads that:

    state         the device ...                                                in drift
    converged     applied the current version and reports every key enforced    no
    pending       has not applied the current version                           yes
    not_enforced  applied it, but reports keys it cannot enforce or failed to   yes
    unreported    applied it, but its agent does not report what it enforces    yes

A device without a desired state has no policy to be in line with (state None, not in drift).
A version applied means the reported one is at least the current one: a device ahead of the
server (a restored database) has applied it, and the server's versions jump past its own.

The API, the console's fleet list and device page and the `lainaamo_devices_in_drift` gauge
all use this rule; `server/adapters/policy_sql.py` is the same rule for queries over the fleet.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lainaamo.protocol import EnforcementReport


class PolicyState(enum.StrEnum):
    """Where a device stands with its current desired state (see the module)."""

    CONVERGED = "converged"
    PENDING = "pending"
    NOT_ENFORCED = "not_enforced"
    UNREPORTED = "unreported"


class KeyState(enum.StrEnum):
    """What became of one key of the current policy on the device."""

    ENFORCED = "enforced"
    UNSUPPORTED = "unsupported"  # the device cannot enforce it
    FAILED = "failed"  # the device tried; `reason` says why
    PENDING = "pending"  # the device has not applied this version yet
    UNREPORTED = "unreported"  # applied, but the device does not say


@dataclass(frozen=True)
class KeyEnforcement:
    key: str
    state: KeyState
    reason: str | None = None


def applied(version: int, reported_version: int | None) -> bool:
    """Whether a device that reports `reported_version` has applied desired state `version`."""
    return (reported_version or 0) >= version


def policy_state(
    version: int | None, reported_version: int | None, enforcement: EnforcementReport | None
) -> PolicyState | None:
    """The device's state with desired state `version` (None: it has none), from what its
    latest status report says: the version it applied and what it enforces of it."""
    if version is None:
        return None
    if not applied(version, reported_version):
        return PolicyState.PENDING
    if enforcement is None:
        return PolicyState.UNREPORTED
    return PolicyState.CONVERGED if enforcement.complete else PolicyState.NOT_ENFORCED


def in_drift(state: PolicyState | None) -> bool:
    """Whether a device in `state` counts as in drift: anything but converged, with a policy."""
    return state is not None and state is not PolicyState.CONVERGED


def stored_enforcement(data: Mapping[str, Any] | None) -> EnforcementReport | None:
    """An enforcement as the server stores it (its report's JSON object; None: not reported)."""
    return None if data is None else EnforcementReport.from_json(data)


def key_states(
    keys: Iterable[str], state: PolicyState, enforcement: EnforcementReport | None
) -> list[KeyEnforcement]:
    """What became of each key of the current policy, in the order given."""
    found = []
    for key in keys:
        if state is PolicyState.PENDING:
            found.append(KeyEnforcement(key, KeyState.PENDING))
        elif enforcement is None:
            found.append(KeyEnforcement(key, KeyState.UNREPORTED))
        elif key in enforcement.failed:
            found.append(KeyEnforcement(key, KeyState.FAILED, enforcement.failed[key]))
        elif key in enforcement.unsupported:
            found.append(KeyEnforcement(key, KeyState.UNSUPPORTED))
        else:
            found.append(KeyEnforcement(key, KeyState.ENFORCED))
    return found
