"""Valid protocol messages for tests, with any field overridable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lainaamo.protocol import StatusReport, UsageReport


def status_report(
    device_id: str = "tab-001",
    boot: int = 1,
    seq: int = 0,
    ts: datetime | None = None,
    **changes: Any,
) -> StatusReport:
    """A plausible status report of a tablet; `changes` override any field."""
    fields: dict[str, Any] = dict(
        device_id=device_id,
        ts=ts or datetime.now(UTC),
        boot=boot,
        seq=seq,
        battery_pct=50,
        charging=False,
        storage_free_mb=1000,
        os_version="Android 14",
        agent_version="0.1.0",
        network="wifi",
        uptime_s=seq,
        locked=False,
        kiosk=True,
        desired_version=0,
    )
    fields.update(changes)
    return StatusReport(**fields)


def usage_report(
    device_id: str = "tab-001",
    boot: int = 1,
    seq: int = 0,
    day: str = "2026-11-21",
    ts: datetime | None = None,
    **changes: Any,
) -> UsageReport:
    """A plausible daily usage report (docs/protocol.md §18); `changes` override any field."""
    fields: dict[str, Any] = dict(
        device_id=device_id,
        ts=ts or datetime.now(UTC),
        boot=boot,
        seq=seq,
        day=day,
        active_s=1800,
        launches={"chat": 2, "other": 1},
        support_s=0,
        final=False,
    )
    fields.update(changes)
    return UsageReport(**fields)
