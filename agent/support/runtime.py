"""The support event loop: one asyncio loop on one daemon thread, started on first use.

Most agents never see a support request, so nothing starts until the first one arrives. All
the agents of a process (`lainaamo simulate` runs many) share the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_runtime: SupportRuntime | None = None


class SupportRuntime:
    """An asyncio event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="support-loop", daemon=True
        )
        self.thread.start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run `callback(*args)` in the loop soon (from any thread)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine in the loop (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


def get_runtime() -> SupportRuntime:
    """The process's support loop, started now if this is its first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = SupportRuntime()
        return _runtime
