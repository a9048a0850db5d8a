"""What the server sends again when a device has connected again (docs/protocol.md §11.2):
the device's presence position at a send, and whether it has moved since, in SQL shared by
the command and support-signal outboxes."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_
from sqlalchemy.orm import Mapped

from server.adapters import orm

# A device's presence position (boot, seq) as the server last applied it; None: unknown.
Position = tuple[int | None, int | None]


def presence_moved(
    sent_boot: Mapped[int | None], sent_seq: Mapped[int | None]
) -> ColumnElement[bool]:
    """Whether the device's presence position (orm.DeviceStatus, joined) differs from the one
    recorded at a send: the device has connected again since (NULL counts as -1 either side).

    Only a birth moves the position of an online device (a will or shutdown says offline), so
    `differs` means `newer`, and also holds after IT support reset the device's sequence
    state, when the position the server adopts may be lower."""
    status = orm.DeviceStatus
    return or_(
        func.coalesce(status.presence_boot, -1) != func.coalesce(sent_boot, -1),
        func.coalesce(status.presence_seq, -1) != func.coalesce(sent_seq, -1),
    )
