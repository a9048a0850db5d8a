"""The programme report's support contacts (issue 20): what they are and how a table of them
by month and unit is withheld.

A contact is a phone call, a home visit or a chat a counsellor recorded on a loan, or a
remote-support session of a loan that connected. Counts under the threshold are withheld as
everywhere in the report (`disclosure`); a table of months × units is protected along each of
its lines whose total is shown elsewhere: a unit's months add up to its figure for the
period, and a month's units to the region's figure for that month.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from server.domain.contact_notes import CHANNELS
from server.domain.disclosure import SUPPRESSED, THRESHOLD, Suppressed

K = TypeVar("K", bound=Hashable)

# A tablet-month: thirty loan days (the days the tablets were on loan in the period).
DAYS_PER_TABLET_MONTH = 30.0
CONTACT_CHANNELS_REPORTED = CHANNELS  # phone, home_visit, chat, remote_support


def tablet_months(loan_days: float) -> float:
    """Loan days in tablet-months."""
    return loan_days / DAYS_PER_TABLET_MONTH


def protect_grid(
    counts: Mapping[K, int],
    lines: Sequence[tuple[Sequence[K], bool]],
    threshold: int = THRESHOLD,
) -> dict[K, int | Suppressed]:
    """Withhold counts of 1 … threshold-1, and more of them until no line whose total is shown
    (`lines`: its cells, and whether its total is shown) has exactly one withheld cell: the
    smallest other non-zero cell of such a line is withheld too, and the lines are checked
    again (withholding only grows, so this ends)."""
    hidden = {k for k, c in counts.items() if 0 < c < threshold}
    changed = True
    while changed:
        changed = False
        for cells, total_shown in lines:
            if not total_shown or sum(1 for k in cells if k in hidden) != 1:
                continue
            others = [k for k in cells if k not in hidden and counts[k] > 0]
            if others:
                hidden.add(min(others, key=lambda k: counts[k]))
                changed = True
    return {k: SUPPRESSED if k in hidden else c for k, c in counts.items()}
