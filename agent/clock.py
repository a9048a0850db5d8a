"""The agent's clocks: wall-clock time for timestamps, monotonic time for intervals."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where the agent reads time; tests inject one they move by hand."""

    def now(self) -> datetime:
        """The current time, time-zone aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go backwards."""
        ...


@dataclass(frozen=True)
class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
