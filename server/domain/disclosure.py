"""Small-count suppression for programme reports (statistical disclosure control).

A unit with a handful of clients could let a reader tell who had a device, so counts of 1–4
are shown as "< 5" in per-unit figures. Zero is shown: it identifies no one. Whatever would
let a suppressed count be worked out again is suppressed too: a rate or average computed
from a suppressed count, and, when the region total is shown, a second unit's count in a
column where only one unit was suppressed (total minus the others would give it away).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final


class Suppressed:
    """A figure withheld because it rests on fewer than THRESHOLD cases."""

    _instance: Suppressed | None = None

    def __new__(cls) -> Suppressed:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __str__(self) -> str:
        return f"< {THRESHOLD}"

    def __repr__(self) -> str:
        return "SUPPRESSED"


THRESHOLD: Final = 5
SUPPRESSED: Final = Suppressed()
Shown = int | float | Suppressed | None  # None: no figure (nothing to compute it from)


def suppress(count: int | None, threshold: int = THRESHOLD) -> int | Suppressed | None:
    """The rule itself: a count of 1 … threshold-1 is withheld; 0 and larger counts are shown."""
    if count is None:
        return None
    return SUPPRESSED if 0 < count < threshold else count


def derived(value: float | None, *based_on: Shown) -> float | Suppressed | None:
    """A rate or average is withheld when any count it is computed from is withheld."""
    if any(isinstance(b, Suppressed) for b in based_on):
        return SUPPRESSED
    return value


def protect_column(
    counts: Sequence[int], total_shown: bool, threshold: int = THRESHOLD
) -> list[int | Suppressed]:
    """Suppress one column of per-unit counts, with secondary suppression.

    If exactly one unit is suppressed and the region total is shown, the smallest other
    non-zero count is withheld as well, so the total minus the others gives nothing away.
    """
    shown: list[int | Suppressed] = [SUPPRESSED if 0 < c < threshold else c for c in counts]
    hidden = [i for i, s in enumerate(shown) if isinstance(s, Suppressed)]
    if total_shown and len(hidden) == 1:
        others = [i for i, c in enumerate(counts) if i != hidden[0] and c > 0]
        if others:
            shown[min(others, key=lambda i: counts[i])] = SUPPRESSED
    return shown
