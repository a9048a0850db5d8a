"""What the server does not take on a device's word: a reset of its sequence state.

The rules themselves (which boot is plausible, when a clock is skewed) are in model.py beside
the other rules on what a report means; this module holds the one request IT support makes
about them: forget the positions the server has stored for a device, so that its next report
is adopted whatever its boot (after a flagged boot jump, or a tablet whose agent state was
restored from elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

from lainaamo.errors import Forbidden
from server.domain.commands import reason_text
from server.domain.model import Principal, Role, check_device_id

RESETTERS = frozenset({Role.ADMIN, Role.IT_SUPPORT})


@dataclass(frozen=True)
class ResetSequence:
    device_id: str
    reason: str | None = None

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        object.__setattr__(self, "reason", reason_text(self.reason))


def check_may_reset(principal: Principal) -> None:
    if principal.role not in RESETTERS:
        raise Forbidden("only administrators and IT support reset a device's sequence state")
