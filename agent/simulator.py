"""`lainaamo simulate`: many simulated tablets, each with its own MQTT connection, in one thread."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.link import Link
from agent.loop import LinkLoop
from agent.platform.simulated import SimulatedTablet
from agent.runner import build_link
from lainaamo.config import Settings
from lainaamo.signals import stop_on_signals

log = logging.getLogger(__name__)


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
) -> None:
    """Run simulated agents until stop_event is set.

    The fleet is `device_ids` if given, else `count` devices named by `device_ids_for`. Each
    keeps its state under `state_root/<device_id>` (default: `<agent_state_dir>/sim`).
    `speed` makes the tablets' batteries and outages run that many times faster than real time;
    status intervals and MQTT stay in real time.
    """
    ids = list(device_ids) if device_ids is not None else device_ids_for(count, id_prefix)
    if not ids:
        raise ValueError("run_simulation needs at least one device")
    if len(set(ids)) != len(ids):
        raise ValueError("device ids of a simulation must be unique")
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    root = Path(state_root) if state_root is not None else Path(settings.agent_state_dir) / "sim"
    tablet_clock = _scaled_clock(time.monotonic, speed)
    links: list[Link] = []
    try:
        for device_id in ids:
            tablet = SimulatedTablet(
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
