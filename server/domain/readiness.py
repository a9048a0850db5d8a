"""Whether a tablet is ready to lend or to rely on: what a counsellor sees of a device.

Counsellors get no device page; where they decide (the loan page, the overdue worklist, the
handover's device picker) they see one word for the tablet, the first that applies:

    state          the tablet ...
    offline        is not connected (or says it is but has been silent too long: stale),
                   or never connected at all
    not_converged  is connected but not in line with its desired state (policy_state.py:
                   pending, not enforced or unreported)
    low_battery    is connected, in line, and its battery is at or below the threshold
    ready          none of the above

The inputs are the rules IT support's pages already use: presence and staleness
(`model.is_stale`), the policy state (`policy_state.in_drift`) and the low-battery setting
(`Settings.low_battery_pct`, "at or below"), so the fleet page and the loan page agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

# The default of `Settings.low_battery_pct`: a battery at or below it counts as low.
LOW_BATTERY_PCT = 20


class ReadinessState(enum.StrEnum):
    READY = "ready"
    LOW_BATTERY = "low_battery"
    NOT_CONVERGED = "not_converged"
    OFFLINE = "offline"


# The handover picker's order: ready first, then what is easiest to put right.
_RANK = {
    ReadinessState.READY: 0,
    ReadinessState.LOW_BATTERY: 1,
    ReadinessState.NOT_CONVERGED: 2,
    ReadinessState.OFFLINE: 3,
}


@dataclass(frozen=True)
class Readiness:
    state: ReadinessState
    days_unseen: int | None = None  # offline: whole days since last seen (None: never seen)
    battery_pct: int | None = None  # the last reported battery, if any

    @property
    def ready(self) -> bool:
        return self.state is ReadinessState.READY

    @property
    def never_connected(self) -> bool:
        return self.state is ReadinessState.OFFLINE and self.days_unseen is None

    def rank(self) -> tuple[int, int]:
        """Sort key: ready first; offline ones by how long they have been away, never last."""
        days = self.days_unseen if self.days_unseen is not None else 1 << 30
        return _RANK[self.state], days if self.state is ReadinessState.OFFLINE else 0


def readiness(
    online: bool,
    last_seen_at: datetime | None,
    battery_pct: int | None,
    converged: bool,
    now: datetime,
    *,
    low_battery_pct: int = LOW_BATTERY_PCT,
) -> Readiness:
    """The tablet's readiness (see the module). `online`: connected and not stale;
    `converged`: not in drift from its desired state (True without one)."""
    if last_seen_at is None:
        return Readiness(ReadinessState.OFFLINE, None, battery_pct)
    if not online:
        days = max(0, (now - last_seen_at).days)
        return Readiness(ReadinessState.OFFLINE, days, battery_pct)
    if not converged:
        return Readiness(ReadinessState.NOT_CONVERGED, None, battery_pct)
    if battery_pct is not None and battery_pct <= low_battery_pct:
        return Readiness(ReadinessState.LOW_BATTERY, None, battery_pct)
    return Readiness(ReadinessState.READY, None, battery_pct)
