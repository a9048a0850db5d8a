"""How signals leave the server: a small interface, and a fake that keeps them for tests."""

from __future__ import annotations

from typing import Protocol

from lainaamo.protocol import SessionSignal


class SignalSender(Protocol):
    """Sends one remote-support signal to a device (the envelope is the sender's business)."""

    def send(self, device_id: str, signal: SessionSignal) -> None: ...


class FakeSignalSender:
    """Collects the signals instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, SessionSignal]] = []

    def send(self, device_id: str, signal: SessionSignal) -> None:
        self.sent.append((device_id, signal))

    def types(self) -> list[str]:
        return [signal.type for _, signal in self.sent]
