"""Requests to change something, in the imperative; each validates itself on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from lainaamo.errors import InvalidInput
from server.domain.model import LifecycleState, Role, check_device_id, check_text
from server.domain.privacy import refuse_identifiers


def _state(value: str) -> LifecycleState:
    try:
        return LifecycleState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in LifecycleState)
        raise InvalidInput(
            "invalid lifecycle state",
            [{"field": "lifecycle_state", "message": f"one of {allowed}"}],
        ) from None


def reason_text(value: str | None, required: bool = False) -> str | None:
    """Why someone did something, for the audit log: short free text, never an identity code."""
    text = check_text("reason", value or "", max_len=500, required=required)
    return refuse_identifiers("reason", text) or None


@dataclass(frozen=True)
class CreateDevice:
    device_id: str
    asset_tag: str
    unit: str | None = None  # unit code within the caller's organisation
    serial: str = ""
    model: str = ""
    lifecycle_state: str = LifecycleState.IN_STOCK.value

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        object.__setattr__(self, "asset_tag", check_text("asset_tag", self.asset_tag, max_len=64))
        object.__setattr__(
            self, "serial", check_text("serial", self.serial, max_len=64, required=False)
        )
        object.__setattr__(
            self, "model", check_text("model", self.model, max_len=100, required=False)
        )
        if self.unit is not None:
            object.__setattr__(self, "unit", check_text("unit", self.unit, max_len=40))
        state = _state(self.lifecycle_state)
        if state not in (
            LifecycleState.IN_STOCK,
            LifecycleState.AWAITING_WIPE,
            LifecycleState.IN_REPAIR,
        ):
            raise InvalidInput(
                "a new device starts in stock, awaiting wipe or in repair",
                [{"field": "lifecycle_state", "message": "in_stock, awaiting_wipe or in_repair"}],
            )


@dataclass(frozen=True)
class UpdateDevice:
    device_id: str
    changes: dict[str, object] = field(default_factory=dict)
    reason: str | None = None

    EDITABLE = frozenset({"asset_tag", "unit", "serial", "model", "lifecycle_state"})

    def __post_init__(self) -> None:
        unknown = set(self.changes) - self.EDITABLE
        if unknown:
            raise InvalidInput(
                "unknown fields",
                [{"field": name, "message": "cannot be changed"} for name in sorted(unknown)],
            )
        if not self.changes:
            raise InvalidInput("nothing to change", [])
        clean: dict[str, object] = {}
        for name, value in self.changes.items():
            if name == "unit" and value is None:
                clean[name] = None
                continue
            if not isinstance(value, str):
                raise InvalidInput(
                    f"{name} must be a string", [{"field": name, "message": "string"}]
                )
            if name == "lifecycle_state":
                clean[name] = _state(value)
            else:
                limit = {"asset_tag": 64, "serial": 64, "model": 100, "unit": 40}[name]
                clean[name] = check_text(
                    name, value, max_len=limit, required=name != "serial" and name != "model"
                )
        object.__setattr__(self, "changes", clean)
        if self.reason is not None:
            object.__setattr__(self, "reason", reason_text(self.reason, required=True))


@dataclass(frozen=True)
class AddUser:
    organisation: str  # organisation code
    username: str
    role: str
    units: tuple[str, ...] = ()
    password: str | None = None

    def __post_init__(self) -> None:
        check_text("username", self.username, max_len=120)
        try:
            role = Role(self.role)
        except ValueError:
            raise InvalidInput(
                "invalid role", [{"field": "role", "message": "admin, it_support or counsellor"}]
            ) from None
        if role is Role.COUNSELLOR and not self.units:
            raise InvalidInput(
                "a counsellor needs at least one unit", [{"field": "units", "message": "required"}]
            )
        if self.password is not None and len(self.password) < 10:
            raise InvalidInput(
                "password too short", [{"field": "password", "message": "at least 10 characters"}]
            )


@dataclass(frozen=True)
class SetUserActive:
    """Reactivate a user, or deactivate one: that ends their sessions and revokes their API
    tokens for good, so the administrator says why (audited)."""

    user_id: int
    active: bool
    reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", reason_text(self.reason))
        if not self.active and not self.reason:
            raise InvalidInput(
                "say why the user is deactivated", [{"field": "reason", "message": "required"}]
            )
