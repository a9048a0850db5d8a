"""Models of the device routes and the fleet's drift (api/devices.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from server.domain.model import LifecycleState
from server.domain.policy_state import PolicyState
from server.entrypoints.api.schemas.enrollment import DEVICE_ID_PATTERN
from server.entrypoints.api.schemas.people import Unit
from server.entrypoints.api.spec import ABSENT, Answer, Body, Changes, Flag, Query, QueryText, Says
from server.service_layer.views import MAX_PAGE

STATES = [s.value for s in LifecycleState]
DEVICE_ID = {"type": "string", "pattern": DEVICE_ID_PATTERN}
TEXT_MESSAGE = "at most {} characters, no control characters"


def _lifecycle_state(value: str) -> str:
    if value not in STATES:
        raise ValueError(f"one of {', '.join(STATES)}")
    return value


# Why someone acts, for the audit log (the domain refuses control characters and codes).
Reason = Annotated[str | None, Field(max_length=500), Says(TEXT_MESSAGE.format(500))]
# A lifecycle state by its name (documented as the list of them).
State = Annotated[str, AfterValidator(_lifecycle_state), WithJsonSchema({"enum": STATES})]


# --- answers ---------------------------------------------------------------------------------


class Presence(Answer):
    online: bool
    stale: bool = Field(description="Online by presence but silent for several status intervals.")
    changed_at: datetime | None
    last_seen_at: datetime | None
    status_interval_s: int | None


class Status(Answer):
    reported_at: datetime | None = None
    battery_pct: int | None = None
    charging: bool | None = None
    low_battery: bool = False
    storage_free_mb: int | None = None
    storage_total_mb: int | None = None
    os_version: str | None = None
    agent_version: str | None = None
    network: str | None = None
    signal_pct: int | None = None
    uptime_s: int | None = None
    locked: bool | None = None
    kiosk: bool | None = None
    desired_version: int | None = None


class Enforcement(Answer):
    unsupported: list[str] = Field(description="Keys the device cannot enforce.")
    failed: dict[str, str] = Field(
        description="Keys the device failed to enforce, with its reason."
    )


class Desired(Answer):
    """The desired state computed from loan and lifecycle, and where the device stands with it.
    The server believes only what the device reports: it is converged once its latest status
    says it applied this version and names no key of it as unsupported or failed
    (docs/protocol.md §6.2, §9); anything else is drift."""

    version: int
    policy: dict[str, Any]
    published: bool
    reported_version: int | None
    state: Annotated[str, WithJsonSchema({"enum": [s.value for s in PolicyState]})] = Field(
        description="converged: applied this version and reports every key enforced; pending: "
        "not applied yet; not_enforced: applied, but reports keys it cannot enforce or failed "
        "to (see enforcement); unreported: applied, but its agent does not report what it "
        "enforces."
    )
    in_drift: bool = Field(description="state is not converged.")
    drift_seconds: int = Field(
        description="Seconds since this desired state was made, while in drift (0 when converged)."
    )
    enforcement: Enforcement | None = Field(
        description="What the device reports it enforces of this version (null while "
        "pending, or when it does not report it): every key of the policy is enforced unless "
        "listed."
    )
    override: dict[str, Any] | None


class StaffLock(Answer):
    """A lock ordered by IT support or an administrator: the device's desired state is a
    neutral lock screen, whatever its loan says, until a person unlocks it
    (POST /devices/{device_id}/unlock). Only lost mode shows instead; releasing or retiring
    the device ends it."""

    locked_by: str = Field(description="Who locked it (user:<id>:<name>).")
    locked_at: datetime | None
    reason: str | None = Field(
        None,
        description="Why (free text; never sent to the tablet). Shown to administrators and "
        "IT support only.",
    )


class ImplausiblePosition(Answer):
    boot: int
    seq: int
    at: datetime | None


class DeviceClaims(Answer):
    """What the device claimed that the server does not trust. A clock more than 5 minutes
    ahead or 60 days behind the server's is recorded as skew (the report is placed at its
    reception time); a boot more than 10,000 above the highest the server knows of the device
    is not adopted (it would make every later real report look old) until IT support resets
    the sequence state (POST /devices/{device_id}/sequence-reset)."""

    clock_skew_s: int | None = Field(
        description="At its latest report, how far the device's clock was off (seconds, "
        "positive: ahead); null when within the tolerance."
    )
    implausible_position: ImplausiblePosition | None = Field(
        description="The last (boot, seq) claimed beyond any real count, not adopted."
    )
    trust_next_position: bool = Field(
        description="After a reset: the next report is adopted whatever its boot."
    )


class Device(Answer):
    device_id: str
    asset_tag: str
    serial: str
    model: str
    unit: Unit | None
    lifecycle_state: Annotated[str, WithJsonSchema({"enum": STATES})]
    created_at: datetime | None
    updated_at: datetime | None
    presence: Presence
    status: Status | None
    desired: Desired | None = None
    staff_lock: StaffLock | None
    claims: DeviceClaims = ABSENT


class HistoryItem(Answer):
    boot: int
    seq: int
    reported_at: datetime | None
    received_at: datetime | None
    reason: str | None = None
    battery_pct: int
    charging: bool = False
    storage_free_mb: int = 0
    network: str = ""
    signal_pct: int | None = None
    uptime_s: int = 0
    locked: bool = False
    kiosk: bool = False
    desired_version: int = 0


class DeviceDetail(Device):
    """A device with its recent status history."""

    history: list[HistoryItem]
    history_next_before: str | None


class DeviceList(Answer):
    items: list[Device]
    next_cursor: str | None
    total: int = Field(
        description="Devices matching the filters. Exact on fleets under 5,000 devices; on "
        "larger ones it comes from a tally of the organisation's devices (by unit, state, "
        "online, low battery and staff lock), remade in the background whenever it is over "
        "10 s old; one over a minute old is not used."
    )
    limit: int


class HistoryPage(Answer):
    items: list[HistoryItem]
    next_before: str | None


class Imported(Answer):
    created: int


class DriftItem(Desired):
    """A device in drift: its desired state and where the device stands with it."""

    device_id: str
    online: bool


class DriftList(Answer):
    items: list[DriftItem]
    total: int


# --- requests --------------------------------------------------------------------------------


class DeviceQuery(Query):
    unit: QueryText = Field(None, description="Unit code.")
    state: QueryText = Field(
        None, description=f"Comma-separated lifecycle states: {', '.join(STATES)}."
    )
    online: Flag = Field(None, description="Only devices whose presence is (not) online.")
    low_battery: Flag = Field(None, description="Only devices with a low (not low) battery.")
    staff_locked: Flag = Field(
        None, description="Only devices (not) locked by IT support (see StaffLock)."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE), Says(f"an integer 1–{MAX_PAGE}")] = Field(
        100, description="Page size."
    )
    cursor: QueryText = Field(None, description="next_cursor of the previous page.")


class DetailQuery(Query):
    history: Annotated[int, Field(ge=0, le=MAX_PAGE), Says(f"an integer 0–{MAX_PAGE}")] = Field(
        20, description="How many recent status reports to include."
    )


class HistoryQuery(Query):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE), Says(f"an integer 1–{MAX_PAGE}")] = Field(
        100, description="Page size."
    )
    before: QueryText = Field(None, description="next_before of the previous page.")


class NoDriftQuery(Query):
    """No query parameters at all."""


class DeviceCreate(Body):
    device_id: str
    asset_tag: Annotated[str, Field(max_length=64), Says(TEXT_MESSAGE.format(64))]
    unit: str | None = Field(None, description="Unit code.")
    serial: str | None = None
    model: str | None = None
    lifecycle_state: Annotated[
        Literal["in_stock", "awaiting_wipe", "in_repair"] | None,
        Says("in_stock, awaiting_wipe or in_repair"),
    ] = None


class DeviceUpdate(Changes):
    asset_tag: str = ""
    unit: str | None = None
    serial: str = ""
    model: str = ""
    lifecycle_state: Annotated[State, Says(f"one of {', '.join(STATES)}")] = Field(
        "", description="Only the moves IT support may make by hand."
    )
    reason: str | None = Field(None, description="Recorded in the audit log.")


class StaffReason(Body):  # optional: an empty body gives no reason
    reason: Reason = Field(None, description="Why (audited; never an identity code).")


class OverrideSet(Body):
    override: Annotated[dict[str, Any] | None, Says("an object or null")]
    reason: Reason = Field(
        None, description="Recorded in the audit log. Never a name or identity code."
    )
