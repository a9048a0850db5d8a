"""Reconnect delays: exponential growth with jitter, reset after a successful connect."""

from __future__ import annotations

import random


class Backoff:
    """Delays between `min_s` and `max_s` that double (at most) with each failed attempt."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0:
            raise ValueError(f"reconnect minimum must be positive, not {min_s}")
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        # Full jitter above the minimum spreads a fleet that lost the broker all at once.
        ceiling = min(self.max_s, self.min_s * 2 ** min(self.attempt + 1, 32))
        self.attempt += 1
        return self._rng.uniform(self.min_s, ceiling)

    def reset(self) -> None:
        """Start again from the minimum (after a connection succeeded)."""
        self.attempt = 0
