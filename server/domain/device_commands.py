"""One-shot device commands: who may issue which, and how acknowledgements move them on.

queued ──sent to the device──▶ sent ──ack received──▶ received ──ack──▶ done | failed
  │                             │                                        (or expired,
  └──────── not acknowledged before expires_at ──▶ expired                rejected)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from lainaamo.errors import Forbidden, InvalidInput
from server.domain.model import Principal, Role, check_device_id
from server.domain.privacy import refuse_identifiers


class CommandState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    RECEIVED = "received"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # by the server, e.g. a wipe made unnecessary by a manual one


FINAL = frozenset(CommandState) - {CommandState.QUEUED, CommandState.SENT, CommandState.RECEIVED}
PENDING = frozenset({CommandState.QUEUED, CommandState.SENT})

NAMES = ("lock", "unlock", "ring", "message", "reboot", "sync", "wipe")
# Sent by the server itself, never issued by a person: a released device's `release`
# follows its finished wipe (service_layer.device_commands.release_after).
RELEASE = "release"
# Who may issue what. Counsellors may help their clients find or hear from a tablet;
# anything that changes the tablet is IT's; a wipe destroys data: IT support only.
ROLES: dict[str, frozenset[Role]] = {
    "ring": frozenset(Role),
    "message": frozenset(Role),
    "sync": frozenset(Role),
    "lock": frozenset({Role.ADMIN, Role.IT_SUPPORT}),
    "unlock": frozenset({Role.ADMIN, Role.IT_SUPPORT}),
    "reboot": frozenset({Role.ADMIN, Role.IT_SUPPORT}),
    "wipe": frozenset({Role.IT_SUPPORT}),
}
NEEDS_CONFIRMATION = frozenset({"wipe"})
DEFAULT_TTL_S = 600  # as Google's Android Management API: ten minutes
MAX_TTL_S = 14 * 86400


@dataclass(frozen=True)
class IssueCommand:
    device_id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    ttl_s: int = DEFAULT_TTL_S
    confirm: str | None = None  # wipe: the device id typed again

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        if self.name not in NAMES:
            raise InvalidInput(
                "unknown command", [{"field": "name", "message": f"one of {', '.join(NAMES)}"}]
            )
        if not 1 <= self.ttl_s <= MAX_TTL_S:
            raise InvalidInput(
                "invalid ttl_s", [{"field": "ttl_s", "message": f"1–{MAX_TTL_S} seconds"}]
            )
        allowed_args = {"message": {"text"}}.get(self.name, set())
        if set(self.args) - allowed_args:
            raise InvalidInput(
                "unknown arguments",
                [
                    {
                        "field": "args",
                        "message": f"{self.name} takes {sorted(allowed_args) or 'none'}",
                    }
                ],
            )
        if self.name == "message":
            text = self.args.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > 300:
                raise InvalidInput(
                    "a message needs text", [{"field": "args.text", "message": "1–300 characters"}]
                )
            refuse_identifiers("args.text", text)
        if self.name in NEEDS_CONFIRMATION and self.confirm != self.device_id:
            raise InvalidInput(
                f"{self.name} destroys the data on the tablet: confirm by repeating its device id",
                [{"field": "confirm", "message": "the device id"}],
            )

    def check_role(self, principal: Principal) -> None:
        if principal.role not in ROLES[self.name]:
            raise Forbidden(f"your role may not send {self.name}")


def after_ack(current: CommandState, ack: str) -> CommandState | None:
    """The state an acknowledgement moves a command to; None if it changes nothing."""
    if current in FINAL:
        return None  # duplicates and late acks change nothing
    target = CommandState(ack)
    if target is CommandState.RECEIVED:
        return target if current in PENDING else None
    return target
