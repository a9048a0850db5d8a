"""Topic names: `{prefix}/{device_id}/{kind}`, one kind per message type (see `Kind`)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from lainaamo.errors import ProtocolError

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class Kind(enum.StrEnum):
    """Message kinds; the value is the topic suffix after the device id."""

    PRESENCE = "presence"
    STATUS = "status"
    DESIRED = "desired"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"
    SESSION = "session"  # remote-support signals, server → device
    SESSION_EVT = "session/evt"  # remote-support events, device → server
    USAGE = "usage"  # daily usage totals, device → server
    RECEIPT = "receipt"  # which device messages are committed, server → device (§11.1)

    @property
    def schema_name(self) -> str:
        return self.value.replace("/", "_")


_BY_SUFFIX = {k.value: k for k in Kind}


@dataclass(frozen=True)
class Topics:
    """Builds and parses topic names under one prefix (default `fleet/v1`)."""

    prefix: str = "fleet/v1"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"MQTT topic prefix {self.prefix!r} must be plain levels without wildcards"
            )

    def topic(self, device_id: str, kind: Kind) -> str:
        if not DEVICE_ID_RE.match(device_id):
            raise ValueError(f"device id {device_id!r} is not a valid device id")
        return f"{self.prefix}/{device_id}/{kind.value}"

    def wildcard(self, kind: Kind) -> str:
        """Subscription filter for one kind across the whole fleet."""
        return f"{self.prefix}/+/{kind.value}"

    def parse(self, topic: str) -> tuple[str, Kind]:
        """Return (device_id, kind) for a topic, or raise ProtocolError('unknown_topic')."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise ProtocolError("unknown_topic", f"topic {topic[:120]!r} is outside {self.prefix}/")
        device_id, _, suffix = topic[len(head) :].partition("/")
        kind = _BY_SUFFIX.get(suffix)
        if kind is None or not DEVICE_ID_RE.match(device_id):
            raise ProtocolError("unknown_topic", f"topic {topic[:120]!r} is not a Lainaamo topic")
        return device_id, kind
