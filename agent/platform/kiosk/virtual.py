"""A kiosk on a virtual screen (Xvfb) beside the machine's own: for the demo's real kiosk
tablet, the benchmarks and the tests.

Everything is the real kiosk (a client account, Chromium under its managed policy, the
overlay) except the screen, which is Xvfb on a free display number, and the browser policy's
place: the machine's own /etc/chromium/policies must not change (other browsers run here), so
the browser runs in a mount namespace where a private directory is bind-mounted over it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.platform.base import ConsentAnswer
from agent.platform.kiosk.session import KioskConfig
from agent.platform.kiosk.tablet import KioskPlatform
from lainaamo.config import Settings

NEEDED = ("Xvfb", "xdotool", "xauth", "setxkbmap", "chromium", "unshare", "useradd", "runuser")
WIDTH, HEIGHT = 1280, 800
BROWSER_FLAGS = ("--disable-gpu", "--disable-dev-shm-usage")  # no GPU, a small /dev/shm


def missing() -> list[str]:
    """What this machine lacks to run a virtual kiosk (`make services` installs it)."""
    problems = [tool for tool in NEEDED if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.insert(0, "root (the kiosk makes a client account)")
    return problems


def free_display(first: int = 90, last: int = 300) -> str:
    """An X display number nobody uses (no socket, no lock file)."""
    for number in range(first, last):
        if not (
            Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists()
        ):
            return f":{number}"
    raise RuntimeError("no free X display number")


def namespace_prefix(policies: Path) -> tuple[str, ...]:
    """Run the browser with `policies` in place of /etc/chromium/policies."""
    script = (
        f"mkdir -p /etc/chromium/policies && mount --bind {shlex.quote(str(policies))} "
        '/etc/chromium/policies && exec "$@"'
    )
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "kiosk")


def virtual_config(
    root: Path, client_user: str, launcher_port: int, **overrides: Any
) -> KioskConfig:
    """A kiosk whose files live under `root` (made here): Xvfb on a free display, the browser
    policy in `root/policies`; `overrides` replace any other field."""
    policies = root / "policies"
    (policies / "managed").mkdir(parents=True, exist_ok=True)
    display = free_display()
    config = KioskConfig(
        client_user=client_user,
        display=display,
        display_command=(
            "Xvfb",
            display,
            "-screen",
            "0",
            f"{WIDTH}x{HEIGHT}x24",
            "-nolisten",
            "tcp",
        ),  # fmt: skip
        browser_flags=BROWSER_FLAGS,
        browser_prefix=namespace_prefix(policies),
        launcher_port=launcher_port,
        policy_dir=str(policies / "managed"),
        sound_command=tuple(shlex.split(Settings.kiosk_sound_command)),  # as on a tablet
    )
    return replace(config, **overrides)


def settings_env(config: KioskConfig) -> dict[str, str]:
    """The same kiosk as `LAINAAMO_KIOSK_*` settings, for an agent run as its own process."""
    return {
        "LAINAAMO_AGENT_PLATFORM": "kiosk",
        "LAINAAMO_KIOSK_CLIENT_USER": config.client_user,
        "LAINAAMO_KIOSK_DISPLAY": config.display,
        "LAINAAMO_KIOSK_DISPLAY_COMMAND": shlex.join(config.display_command or ()),
        "LAINAAMO_KIOSK_BROWSER_FLAGS": shlex.join(config.browser_flags),
        "LAINAAMO_KIOSK_BROWSER_PREFIX": shlex.join(config.browser_prefix),
        "LAINAAMO_KIOSK_POLICY_DIR": config.policy_dir,
        "LAINAAMO_KIOSK_LAUNCHER_PORT": str(config.launcher_port),
        "LAINAAMO_KIOSK_LANGUAGE": config.language,
    }


class AnsweringKiosk(KioskPlatform):
    """A virtual kiosk whose remote-support question is answered "Allow" by a real tap on its
    own screen (xdotool: X input, as a finger would give it), `delay_s` after it is drawn —
    standing in for the client where no one sits at the screen (the demo, a benchmark)."""

    def __init__(self, config: KioskConfig, delay_s: float = 0.0) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self.answered: list[float] = []  # time.monotonic() of each answer

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        async def tap() -> None:
            while self.question_buttons is None:
                await asyncio.sleep(0.01)
            await asyncio.sleep(self.delay_s)
            x, y = self.question_buttons["allow"]
            env = {**self.session.x_env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            command = ["xdotool", "mousemove", str(x), str(y), "click", "1"]
            await asyncio.to_thread(subprocess.run, command, env=env, check=False)

        tapper = asyncio.ensure_future(tap())
        try:
            answer = await super().ask_consent(caller, purpose, mode, timeout_s)
        finally:
            tapper.cancel()
        self.answered.append(time.monotonic())
        return answer
