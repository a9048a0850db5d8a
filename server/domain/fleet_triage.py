"""What IT support triages on the fleet page: devices with a problem, and actions on a selection.

The fleet page's problem tiles each count and list the devices of one problem:

    problem        devices that ...
    offline        are not connected now: not online, online but silent too long (stale,
                   `model.is_stale`) or never connected (readiness.py: OFFLINE)
    unseen         were last seen UNSEEN_DAYS days ago or longer (never seen: not counted;
                   those are offline)
    low_battery    report a battery at or below the low-battery setting (readiness.py, "at or
                   below" `Settings.low_battery_pct`) and are not charging
    out_of_sync    have a desired state and are not converged with it: the desired version not
                   reached, or enforcement not reported or not all enforced (policy_state.py)
    awaiting_wipe  are awaiting a wipe (returned, not yet wiped)
    staff_locked   are locked by IT support (staff_lock.py)
    lost           are lost

The first four count only devices IN_SERVICE: a retired tablet or one released to its client
is no longer managed, and its silence is no problem. The rules are the readiness rules of the
loan pages (readiness.py), so a tablet the fleet page calls offline is offline there too; the
SQL that applies them to the whole fleet is in `adapters/triage_sql.py`.

A bulk action is one of BULK_ACTIONS on at most MAX_SELECTED devices chosen on the page:
a lock (a staff lock with its required reason, plus the one-shot lock command, as the API's
lock command does), a message, or a sync (the tablet sends a fresh status report at once:
"re-send" in IT support's words, for a tablet whose state the server doubts).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lainaamo.errors import Forbidden, InvalidInput
from server.domain.device_commands import ROLES as COMMAND_ROLES
from server.domain.loan_commands import free_text
from server.domain.model import LifecycleState, Principal, Role, check_device_id
from server.domain.staff_lock import REASON_MAX

UNSEEN_DAYS = 3  # "not seen for days": last seen this many days ago or longer


class Problem(enum.StrEnum):
    OFFLINE = "offline"
    UNSEEN = "unseen"
    LOW_BATTERY = "low_battery"
    OUT_OF_SYNC = "out_of_sync"
    AWAITING_WIPE = "awaiting_wipe"
    STAFF_LOCKED = "staff_locked"
    LOST = "lost"


# Lifecycle states whose devices the status problems (offline … out_of_sync) count.
IN_SERVICE = frozenset(LifecycleState) - {LifecycleState.RETIRED, LifecycleState.RELEASED}
# Problems that are a lifecycle state.
LIFECYCLE = {Problem.AWAITING_WIPE: LifecycleState.AWAITING_WIPE, Problem.LOST: LifecycleState.LOST}

BULK_ACTIONS = ("lock", "message", "sync")
MAX_SELECTED = 100
# Who may act on a selection: as for the API's bulk commands, the fleet's managers only
# (counsellors may ring or message one tablet of their units, never a fleet).
BULK_ROLES = frozenset({Role.ADMIN, Role.IT_SUPPORT})
MESSAGE_MAX = 300


@dataclass(frozen=True)
class BulkAction:
    """Do `name` to each selected device (ids deduplicated and sorted)."""

    name: str
    device_ids: tuple[str, ...]
    reason: str | None = None  # lock: required
    text: str = ""  # message: 1–MESSAGE_MAX characters

    def __post_init__(self) -> None:
        if self.name not in BULK_ACTIONS:
            raise InvalidInput(
                "unknown action", [{"field": "action", "message": " | ".join(BULK_ACTIONS)}]
            )
        ids = tuple(sorted({check_device_id(i) for i in self.device_ids}))
        if not ids:
            raise InvalidInput(
                "choose at least one device", [{"field": "device", "message": "none chosen"}]
            )
        if len(ids) > MAX_SELECTED:
            raise InvalidInput(
                f"at most {MAX_SELECTED} devices at once",
                [{"field": "device", "message": f"at most {MAX_SELECTED}"}],
            )
        object.__setattr__(self, "device_ids", ids)
        reason = free_text("reason", self.reason, REASON_MAX) or None
        if self.name == "lock" and reason is None:
            raise InvalidInput(
                "a lock needs a reason", [{"field": "reason", "message": "required"}]
            )
        object.__setattr__(self, "reason", reason)
        if self.name == "message":
            text = (free_text("text", self.text, MESSAGE_MAX) or "").strip()
            if not text:
                raise InvalidInput(
                    "a message needs text",
                    [{"field": "text", "message": f"1–{MESSAGE_MAX} characters"}],
                )
            object.__setattr__(self, "text", text)

    def check_role(self, principal: Principal) -> None:
        if principal.role not in BULK_ROLES or principal.role not in COMMAND_ROLES[self.name]:
            raise Forbidden("only administrators and IT support act on many tablets at once")
