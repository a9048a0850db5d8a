"""How long a remote-support signal is worth sending: a rule of time, no I/O.

A signal (a counsellor's request, an offer, a candidate, a hangup) matters only while its
session can still use it: one not sent within SIGNAL_STALE_S of being made is dropped (the
session has timed out meanwhile), and one that is sent expires at the broker when it turns
SIGNAL_STALE_S old, so a tablet that connects later never acts on it. Sent ones are sent again
(after a reconnect) only while younger than this too.
"""

from __future__ import annotations

from datetime import datetime

SIGNAL_STALE_S = 120


def age_s(created_at: datetime, now: datetime) -> float:
    """Seconds since the signal was made."""
    return (now - created_at).total_seconds()


def is_stale(created_at: datetime, now: datetime, stale_s: float = SIGNAL_STALE_S) -> bool:
    """Whether a signal made at `created_at` is too old to send at `now`."""
    return age_s(created_at, now) > stale_s


def lifetime_left_s(
    created_at: datetime, now: datetime, stale_s: float = SIGNAL_STALE_S
) -> int | None:
    """The message expiry to publish a signal with at `now` (whole seconds, at least 1): what
    is left of its `stale_s`; None if it is stale, to be dropped instead."""
    if is_stale(created_at, now, stale_s):
        return None
    return max(1, int(stale_s - age_s(created_at, now)))
