"""Remote-support signaling: session state and the WebRTC offer/answer relay (pure, no I/O).

`state` holds the session lifecycle and its transition table, `turn` the ICE servers with
short-lived coturn credentials, `ports` the interface through which signals leave the server.
The server's adapters implement the interface (a database outbox published over MQTT).
"""

from signaling.ports import FakeSignalSender, SignalSender
from signaling.state import (
    FINAL,
    LIVE,
    EndReason,
    IllegalTransition,
    Mode,
    SessionState,
    check_transition,
    end_reason_of_device,
)
from signaling.turn import ice_servers, turn_credentials

__all__ = [
    "FINAL",
    "LIVE",
    "EndReason",
    "FakeSignalSender",
    "IllegalTransition",
    "Mode",
    "SessionState",
    "SignalSender",
    "check_transition",
    "end_reason_of_device",
    "ice_servers",
    "turn_credentials",
]
