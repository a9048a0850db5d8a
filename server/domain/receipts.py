"""Which device messages are committed, gathered into receipts (docs/protocol.md §11.1).

A tablet keeps each report in its outbox until the server confirms it, so the server must
say, per tablet, which positions `(boot, seq)` it has committed. Not a high-water mark: two
ingest processes sharing a subscription commit one tablet's messages out of order, and a
tablet's sequence has gaps (presences are not in its outbox), so "everything up to N" could
confirm a report that is still on its way, or never confirm anything. A receipt names the
positions themselves, folded into ranges.

`ReceiptBook` collects the positions a committing thread has made safe and hands out, once
per interval, what is to be confirmed, one receipt per tablet. No I/O: the ingest publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lainaamo.protocol.messages import MAX_RECEIPT_RANGES, Range, ranges_of
from lainaamo.protocol.topics import Kind

# What tablets keep in their outbox until a receipt confirms it (presence is not kept).
CONFIRMED_KINDS = frozenset({Kind.STATUS, Kind.CMD_ACK, Kind.SESSION_EVT, Kind.USAGE})
# Refusals that are final: confirmed, or the tablet would send the message again and again.
# Not final here: unknown devices and topics (no one to tell), oversized payloads (not read).
FINAL_REFUSALS = frozenset(
    {"malformed", "invalid", "mismatched", "personal_data", "internal_error"}
)


def confirmed(kind: Kind, refusal: str | None) -> bool:
    """Whether a message of `kind` the ingest has handled is confirmed to its tablet: stored
    (no refusal: new or a duplicate) or refused for good."""
    return kind in CONFIRMED_KINDS and (refusal is None or refusal in FINAL_REFUSALS)


@dataclass
class _Pending:
    positions: set[tuple[int, int]] = field(default_factory=set)
    since: float = 0.0  # when the oldest of them was received (monotonic)


@dataclass(frozen=True)
class Due:
    """One receipt to publish: a tablet, ranges (at most MAX_RECEIPT_RANGES), and when the
    oldest message it confirms was received."""

    device_id: str
    committed: tuple[Range, ...]
    since: float


class ReceiptBook:
    """Committed positions per tablet, handed out together once per interval: each tablet
    gets at most one receipt per interval, and the committing thread pays one comparison per
    batch in between."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._pending: dict[str, _Pending] = {}
        self._next_at = -float("inf")  # when the next round of receipts may go (monotonic)

    def add(self, device_id: str, position: tuple[int, int], received: float) -> None:
        """A position of `device_id` now committed (or refused for good), received at
        `received` (monotonic)."""
        pending = self._pending.get(device_id)
        if pending is None:
            self._pending[device_id] = _Pending({position}, received)
        else:
            pending.positions.add(position)
            if received < pending.since:
                pending.since = received

    def due(self, now: float, *, flush: bool = False) -> list[Due]:
        """The receipts to publish now (all of them with `flush`), taken out of the book."""
        if not self._pending or (now < self._next_at and not flush):
            return []
        pending, self._pending = self._pending, {}
        self._next_at = now + self.interval_s
        found: list[Due] = []
        for device_id, waiting in pending.items():
            ranges = ranges_of(waiting.positions)
            for start in range(0, len(ranges), MAX_RECEIPT_RANGES):
                chunk = tuple(ranges[start : start + MAX_RECEIPT_RANGES])
                found.append(Due(device_id, chunk, waiting.since))
        return found

    def next_due(self) -> float:
        """When the next receipts may go (monotonic; inf: nothing waits)."""
        return self._next_at if self._pending else float("inf")
