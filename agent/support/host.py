"""The MQTT side of remote support: between one agent core and the support event loop.

It lives in the agent's selector thread. Signals go to the manager in the support loop with
`call_soon_threadsafe`; the manager's events come back through a thread-safe queue, and
`wake` (the loop's self-pipe) makes the selector drain them within milliseconds. So do the
moments a session connects and a connected one ends, which the core counts as support time
of the day (agent/usage.py). The support loop and the manager start on the first signal only.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
from collections.abc import Callable
from typing import Any

from agent.platform.base import support_platform
from lainaamo.protocol import SessionSignal

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 3.0


class SupportHost:
    """Hands signals to one device's SupportManager and collects its events."""

    def __init__(self, device_id: str, platform: object) -> None:
        self.device_id = device_id
        self._platform = platform
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._connections: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._wake: Callable[[], None] = lambda: None
        self._manager: Any = None
        self._runtime: Any = None

    def set_waker(self, wake: Callable[[], None]) -> None:
        """Called (from the support thread) whenever an event is waiting."""
        self._wake = wake

    def on_signal(self, signal: SessionSignal) -> None:
        """Pass a signal to the manager, starting the support loop if this is the first."""
        if self._manager is None:
            from agent.support.manager import SupportManager
            from agent.support.runtime import get_runtime

            self._runtime = get_runtime()
            self._manager = SupportManager(
                support_platform(self._platform),
                self._emit,
                label=self.device_id,
                on_connection=self.connection_changed,
            )
        manager, runtime = self._manager, self._runtime
        runtime.call(lambda: manager.background(manager.on_signal(signal)))

    def _emit(self, fields: dict[str, Any]) -> None:
        self._events.put(fields)
        self._wake()

    def connection_changed(self, connected: bool) -> None:
        """A session connected (True) or a connected session ended (False); from any thread."""
        self._connections.put(connected)
        self._wake()

    def connection_changes(self) -> list[bool]:
        """The connection changes waiting, oldest first."""
        found: list[bool] = []
        while True:
            try:
                found.append(self._connections.get_nowait())
            except queue.Empty:
                return found

    def pending(self) -> bool:
        return not self._events.empty() or not self._connections.empty()

    def drain(self) -> list[dict[str, Any]]:
        """The events waiting, oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            try:
                found.append(self._events.get_nowait())
            except queue.Empty:
                return found

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """End a session in progress (`agent_stopped`) and wait for its clean-up."""
        if self._manager is None:
            return
        future = self._runtime.submit(self._manager.stop())
        try:
            future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            log.warning("%s: support: the session did not stop in time", self.device_id)
        except Exception:
            log.warning("%s: support: stopping failed", self.device_id, exc_info=True)
