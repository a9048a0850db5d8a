"""Which device messages are committed, gathered into receipts (docs/protocol.md §11.1).

A tablet keeps each report in its outbox until the server confirms it, so the server must
say, per tablet, which positions `(boot, seq)` it has committed. Not a high-water mark: two
ingest processes sharing a subscription commit one tablet's messages out of order, and a
tablet's sequence has gaps (presences are not in its outbox), so "everything up to N" could
confirm a report that is still on its way, or never confirm anything. A receipt names the
positions themselves, folded into ranges.

`ReceiptBook` collects the positions a committing thread has made safe and hands out, at
most once per tablet per interval, what is to be confirmed. No I/O: the ingest publishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lainaamo.protocol.messages import MAX_RECEIPT_RANGES, Range, ranges_of


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
    """Committed positions per tablet, rate-limited to one receipt per tablet per interval."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._pending: dict[str, _Pending] = {}
        self._last: dict[str, float] = {}  # tablet -> when its last receipt was handed out

    def __len__(self) -> int:
        """Tablets with positions waiting to be confirmed."""
        return len(self._pending)

    def add(self, device_id: str, positions: Iterable[tuple[int, int]], received: float) -> None:
        """Positions of `device_id` now committed (or refused for good), received at
        `received` (monotonic)."""
        pending = self._pending.get(device_id)
        if pending is None:
            pending = self._pending[device_id] = _Pending(since=received)
        pending.positions.update(positions)
        pending.since = min(pending.since, received)

    def due(self, now: float, *, flush: bool = False) -> list[Due]:
        """The receipts to publish now (all of them with `flush`), taken out of the book."""
        ready = [
            device_id
            for device_id in self._pending
            if flush or now - self._last.get(device_id, -1e18) >= self.interval_s
        ]
        found: list[Due] = []
        for device_id in ready:
            pending = self._pending.pop(device_id)
            ranges = ranges_of(pending.positions)
            for start in range(0, len(ranges), MAX_RECEIPT_RANGES):
                chunk = tuple(ranges[start : start + MAX_RECEIPT_RANGES])
                found.append(Due(device_id, chunk, pending.since))
            self._last[device_id] = now
        if len(self._last) > 2 * len(self._pending) + 1000:
            # Forget tablets whose interval has passed (their next receipt may go at once).
            self._last = {
                d: t for d, t in self._last.items() if now - t < self.interval_s or d in ready
            }
        return found

    def next_due(self) -> float:
        """When the next receipt may go (monotonic; inf: nothing waits)."""
        return min(
            (self._last.get(d, -1e18) + self.interval_s for d in self._pending),
            default=float("inf"),
        )
