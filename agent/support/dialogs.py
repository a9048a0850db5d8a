"""Questions and the sharing indicator on a Linux desktop, through `zenity`.

Without zenity or a display there is nobody to ask: `available()` is False, the platform does
not answer, and every request times out (a deny). Nothing here ever answers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable

log = logging.getLogger(__name__)


def available() -> bool:
    """Whether a dialog can be shown: zenity installed and a display to show it on."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return has_display and shutil.which("zenity") is not None


async def ask(title: str, text: str, yes: str, no: str) -> bool | None:
    """Ask a yes/no question; True or False as answered, None if the dialog went away.

    Cancelling the coroutine (the agent's timeout) closes the dialog.
    """
    process = await asyncio.create_subprocess_exec(
        "zenity",
        "--question",
        f"--title={title}",
        f"--text={text}",
        f"--ok-label={yes}",
        f"--cancel-label={no}",
        "--no-wrap",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        code = await process.wait()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return {0: True, 1: False}.get(code)


class Indicator:
    """A window "your screen is being shared with NAME" whose button ends the session."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def show(self, caller: str, on_end: Callable[[], None]) -> None:
        self.hide()
        self._task = asyncio.get_running_loop().create_task(self._run(caller, on_end))

    def hide(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self, caller: str, on_end: Callable[[], None]) -> None:
        process = await asyncio.create_subprocess_exec(
            "zenity",
            "--info",
            "--title=Remote support",
            f"--text=Your screen is being shared with {caller}.",
            "--ok-label=End sharing",
            "--no-wrap",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await process.wait()
        except asyncio.CancelledError:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        on_end()  # the button, or the window closed: either way the person wants it to end
