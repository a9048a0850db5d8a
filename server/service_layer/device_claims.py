"""IT support resets what the server has stored of a device's message stream.

Ingest does not adopt a position whose boot no real device can have reached, and flags the
device instead (domain/model.py, service_layer/ingest.py). A reset forgets the stored
positions and the flag, and trusts the device's next report whatever its boot: the way out
when a tablet's boot counter really did jump (its agent state restored from another device),
or when a position stored before the check existed keeps its latest status frozen.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from server.adapters import orm
from server.domain.device_claims import ResetSequence, check_may_reset
from server.domain.model import Principal
from server.service_layer import audit, views
from server.service_layer.unit_of_work import UnitOfWork


def reset_sequence(
    uow: UnitOfWork, principal: Principal, cmd: ResetSequence, now: datetime
) -> None:
    """Forget a device's stored (boot, seq) positions; its next report is adopted. Audited."""
    check_may_reset(principal)
    with uow:
        uow.session.execute(
            select(orm.Device.id).where(orm.Device.id == cmd.device_id).with_for_update()
        )
        device = views.get_device(uow.session, principal, cmd.device_id)  # scope: 404
        status = device.status
        if status is None:
            status = orm.DeviceStatus(device_id=device.id)
            uow.session.add(status)
        before = {
            "status_position": _position(status.status_boot, status.status_seq),
            "presence_position": _position(status.presence_boot, status.presence_seq),
            "implausible_position": _position(status.implausible_boot, status.implausible_seq),
        }
        status.status_boot = status.status_seq = None
        status.presence_boot = status.presence_seq = None
        status.implausible_boot = status.implausible_seq = None
        status.implausible_at = None
        status.trust_next_position = True
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "device:sequence_reset"),
            subject_type="device",
            subject_id=device.id,
            organisation_id=principal.organisation_id,
            before=before,
            after={"trust_next_position": True},
            reason=cmd.reason,
        )
        uow.commit()


def _position(boot: int | None, seq: int | None) -> str | None:
    return None if boot is None else f"{boot}.{seq}"
