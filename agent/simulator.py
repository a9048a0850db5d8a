"""`lainaamo simulate`: many simulated tablets, each with its own MQTT connection, in one thread.

A few of them can be given a problem for IT support to find (`lainaamo demo` does):
`draining` tablets are never charged, so their battery stays low and keeps falling;
`ignoring` tablets receive their desired state but do not apply it, so they stay out of sync.
(A tablet that is offline is simply not simulated.)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.link import Link
from agent.loop import LinkLoop
from agent.platform.base import DeviceFacts, Enforcement
from agent.platform.simulated import SimulatedTablet
from agent.policy import Policy
from agent.runner import build_link
from lainaamo.config import Settings
from lainaamo.signals import stop_on_signals

log = logging.getLogger(__name__)

DRAIN_START_PCT = (8.0, 18.0)  # a draining tablet's battery when the simulation starts
DRAIN_PCT_PER_H = 2.0  # and how fast it falls (never below 1 %)
IGNORED = "not applied"  # what an ignoring tablet reports for every key of its policy


class DrainingTablet(SimulatedTablet):
    """A simulated tablet nobody charges: its battery starts below 20 % and only falls."""

    def __init__(
        self,
        device_id: str,
        seed: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        **kw: Any,
    ) -> None:
        super().__init__(device_id, seed, clock=clock, **kw)
        self._drain_clock = clock
        self._drain_t0 = clock()
        self._drain_from = random.Random(f"{seed}:{device_id}:drain").uniform(*DRAIN_START_PCT)

    def facts(self) -> DeviceFacts:
        """The simulated tablet's facts, with its own low battery, never charging."""
        hours = (self._drain_clock() - self._drain_t0) / 3600.0
        battery = max(1, round(self._drain_from - DRAIN_PCT_PER_H * hours))
        return replace(super().facts(), battery_pct=battery, charging=False)


class IgnoringTablet(SimulatedTablet):
    """A simulated tablet that receives its desired state but applies none of it: it reports
    every key of the policy as failed, so the server sees it out of sync."""

    def apply_policy(self, policy: Policy) -> Enforcement:
        return Enforcement(failed=dict.fromkeys(policy.keys, IGNORED))


def device_ids_for(count: int, id_prefix: str = "tab") -> list[str]:
    """`tab-001`, `tab-002`, ...: the default ids of a simulated fleet."""
    return [f"{id_prefix}-{i:03d}" for i in range(1, count + 1)]


def run_simulation(
    settings: Settings,
    count: int = 0,
    *,
    device_ids: Sequence[str] | None = None,
    id_prefix: str = "tab",
    seed: int = 0,
    stop_event: threading.Event | None = None,
    state_root: str | Path | None = None,
    outages: bool = True,
    speed: float = 1.0,
    draining: Collection[str] = (),
    ignoring: Collection[str] = (),
) -> None:
    """Run simulated agents until stop_event is set.

    The fleet is `device_ids` if given, else `count` devices named by `device_ids_for`. Each
    keeps its state under `state_root/<device_id>` (default: `<agent_state_dir>/sim`).
    `speed` makes the tablets' batteries and outages run that many times faster than real time;
    status intervals and MQTT stay in real time. The `draining` and `ignoring` devices get the
    problems of `DrainingTablet` and `IgnoringTablet` (see the module).
    """
    ids = list(device_ids) if device_ids is not None else device_ids_for(count, id_prefix)
    if not ids:
        raise ValueError("run_simulation needs at least one device")
    if len(set(ids)) != len(ids):
        raise ValueError("device ids of a simulation must be unique")
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    strangers = (set(draining) | set(ignoring)) - set(ids)
    if strangers:
        raise ValueError(f"not simulated, so they cannot have problems: {sorted(strangers)}")
    root = Path(state_root) if state_root is not None else Path(settings.agent_state_dir) / "sim"
    tablet_clock = _scaled_clock(time.monotonic, speed)
    links: list[Link] = []
    try:
        for device_id in ids:
            kind = (
                DrainingTablet
                if device_id in draining
                else IgnoringTablet
                if device_id in ignoring
                else SimulatedTablet
            )
            tablet = kind(
                device_id,
                seed,
                clock=tablet_clock,
                outages=outages,
                state_path=root / device_id / "tablet.json",
                consent=settings.sim_consent,
                consent_delay_s=settings.sim_consent_delay_s,
            )
            rng = random.Random(f"{seed}:{device_id}:backoff")
            # NORMAL sync: a simulated fleet survives a crash of the simulator, not a power cut.
            links.append(
                build_link(settings, device_id, root / device_id, tablet, durable=False, rng=rng)
            )
    except BaseException:
        for link in links:
            link.close()
        raise
    log.info("simulating %d devices (seed %d, outages %s)", len(links), seed, outages)
    with stop_on_signals(stop_event) as event:
        LinkLoop(links).run(event)


def _scaled_clock(base: Callable[[], float], speed: float) -> Callable[[], float]:
    start = base()
    return lambda: start + (base() - start) * speed
