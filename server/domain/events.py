"""Things that happened, in the past tense; handlers return them for metrics and logging."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """Base of all domain events."""


@dataclass(frozen=True)
class DeviceCameOnline(Event):
    device_id: str


@dataclass(frozen=True)
class DeviceWentOffline(Event):
    device_id: str


@dataclass(frozen=True)
class MessagesIngested(Event):
    kind: str
    count: int


@dataclass(frozen=True)
class MessagesDropped(Event):
    reason: str  # duplicate | stale
    count: int
