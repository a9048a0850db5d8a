"""Messages of the data channel `support` (docs/protocol.md §17.3), checked without trust.

`decode` turns one received message into a `ChannelMessage` or None: anything unknown or
malformed is dropped here, so the manager only sees well-formed pings, chats, pointers, inputs
and byes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 4096
MAX_CHAT_CHARS = 1000


@dataclass(frozen=True)
class ChannelMessage:
    t: str  # ping | chat | pointer | input | bye
    text: str | None = None
    x: float | None = None
    y: float | None = None


def _fraction(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def decode(raw: object) -> ChannelMessage | None:
    """The message in `raw` (str or bytes), or None if it is unknown or malformed."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            return None
    if not isinstance(raw, str) or len(raw) > MAX_MESSAGE_CHARS:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("t")
    if kind in ("ping", "bye"):
        return ChannelMessage(kind)
    if kind == "chat":
        text = data.get("text")
        if isinstance(text, str) and 0 < len(text) <= MAX_CHAT_CHARS and text.strip():
            return ChannelMessage("chat", text=text)
        return None
    if kind == "pointer" or (kind == "input" and data.get("kind") == "tap"):
        x, y = _fraction(data.get("x")), _fraction(data.get("y"))
        if x is not None and y is not None:
            return ChannelMessage(kind, x=x, y=y)
    return None


def encode(t: str, **fields: object) -> str:
    """One message to send."""
    return json.dumps({"t": t, **fields}, separators=(",", ":"), ensure_ascii=False)
