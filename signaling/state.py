"""The lifecycle of a remote-support session and the only transitions it allows.

requested → waiting_consent → declined | consent_timeout | accepted → connecting → active
→ ended (with an EndReason). Any live state may end; final states never change again.
"""

from __future__ import annotations

import enum


class SessionState(enum.StrEnum):
    REQUESTED = "requested"
    WAITING_CONSENT = "waiting_consent"
    DECLINED = "declined"
    CONSENT_TIMEOUT = "consent_timeout"
    ACCEPTED = "accepted"
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(enum.StrEnum):
    HANGUP_COUNSELLOR = "hangup_counsellor"
    HANGUP_CLIENT = "hangup_client"
    MAX_DURATION = "max_duration"
    IDLE = "idle"
    CONNECTION_FAILED = "connection_failed"
    DEVICE_OFFLINE = "device_offline"
    HEARTBEAT_LOST = "heartbeat_lost"
    ERROR = "error"


class Mode(enum.StrEnum):
    VIEW = "view"  # screen, voice, chat, pointer
    CONTROL = "control"  # adds remote input, with a second consent on the tablet


class IllegalTransition(ValueError):
    """A session was asked to move where its lifecycle does not go."""

    def __init__(self, current: SessionState, target: SessionState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final)"
        super().__init__(
            f"a remote-support session cannot go from {current} to {target} (allowed: {allowed})"
        )
        self.current = current
        self.target = target


S = SessionState
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    S.REQUESTED: frozenset({S.WAITING_CONSENT, S.ENDED}),
    S.WAITING_CONSENT: frozenset({S.ACCEPTED, S.DECLINED, S.CONSENT_TIMEOUT, S.ENDED}),
    S.ACCEPTED: frozenset({S.CONNECTING, S.ENDED}),
    S.CONNECTING: frozenset({S.ACTIVE, S.ENDED}),
    S.ACTIVE: frozenset({S.ENDED}),
    S.DECLINED: frozenset(),
    S.CONSENT_TIMEOUT: frozenset(),
    S.ENDED: frozenset(),
}
FINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
LIVE = frozenset(SessionState) - FINAL


def check_transition(current: SessionState | str, target: SessionState | str) -> SessionState:
    """Return `target` as a SessionState, or raise IllegalTransition."""
    here, there = SessionState(current), SessionState(target)
    if there not in TRANSITIONS[here]:
        raise IllegalTransition(here, there)
    return there


# What the agent's `ended` reasons (docs/protocol.md §17.1) mean for the session.
_DEVICE_REASONS = {
    "hangup_client": EndReason.HANGUP_CLIENT,
    "hangup_peer": EndReason.HANGUP_COUNSELLOR,
    "heartbeat_lost": EndReason.HEARTBEAT_LOST,
    "connection_failed": EndReason.CONNECTION_FAILED,
    "max_duration": EndReason.MAX_DURATION,
    "agent_stopped": EndReason.DEVICE_OFFLINE,
    "idle": EndReason.IDLE,
    "error": EndReason.ERROR,
}


def end_reason_of_device(reason: str | None) -> EndReason:
    """The EndReason for an agent's `ended` reason (unknown ones are errors)."""
    return _DEVICE_REASONS.get(reason or "", EndReason.ERROR)
