"""Which due commands the scheduler may send, and for how long: rules, no I/O.

- A command the tablet runs only with a valid signature (a wipe, or the `release` after one:
  lainaamo.signing.DESTRUCTIVE) is refused, not sent, while the server has no signing key: the
  tablet would refuse it unsigned anyway, and the person who asked for it should hear why.
- A command is published with what is left of its lifetime as the message expiry, so that the
  broker drops it at `expires_at`; one with no whole second left is not sent at all.
"""

from __future__ import annotations

from datetime import datetime

from lainaamo.signing import DESTRUCTIVE


def needs_signature(name: str) -> bool:
    """Commands an agent runs only with a valid signature."""
    return name in DESTRUCTIVE


def refused_unsigned(name: str, *, can_sign: bool) -> bool:
    """Whether a command is to be refused because the server cannot sign it."""
    return not can_sign and needs_signature(name)


def seconds_left(expires_at: datetime, now: datetime) -> int:
    """Whole seconds until the command expires (its message expiry); not sent unless > 0."""
    return int((expires_at - now).total_seconds())
