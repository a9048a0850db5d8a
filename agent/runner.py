"""`lainaamo agent`: one real agent, driven by the loop in the calling thread."""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path

from agent.clock import Clock, SystemClock
from agent.core import AgentCore
from agent.enroll import with_enrollment
from agent.link import Link
from agent.loop import LinkLoop
from agent.outbox import Outbox
from agent.platform import Platform, create_platform
from agent.state import AgentState
from lainaamo.config import Settings
from lainaamo.errors import ConfigError
from lainaamo.protocol import Topics
from lainaamo.protocol.topics import DEVICE_ID_RE
from lainaamo.signals import stop_on_signals

log = logging.getLogger(__name__)


def build_link(
    settings: Settings,
    device_id: str,
    state_dir: str | Path,
    platform: Platform,
    *,
    clock: Clock | None = None,
    durable: bool = True,
    rng: random.Random | None = None,
) -> Link:
    """Open the state and outbox of one device and wire its core to a new link."""
    if not DEVICE_ID_RE.match(device_id):
        raise ConfigError(f"device id {device_id!r} is not valid (3-64 of A-Z a-z 0-9 _ . -)")
    state = AgentState(state_dir, durable=durable)
    boot = state.next_boot()
    core = AgentCore(
        device_id=device_id,
        topics=Topics(settings.topic_prefix),
        platform=platform,
        state=state,
        boot=boot,
        status_interval_s=settings.status_interval_s,
        clock=clock or SystemClock(),
        command_public_key=settings.command_public_key,
        usage_interval_s=settings.usage_interval_s,
    )
    core.restore()
    outbox = Outbox(Path(state_dir) / "outbox.sqlite", settings.outbox_max, durable=durable)
    log.info("%s: boot %d, %d reports waiting in the outbox", device_id, boot, len(outbox))
    return Link(settings, core, outbox, rng=rng)


def run_agent(
    settings: Settings,
    stop_event: threading.Event | None = None,
    *,
    platform: Platform | None = None,
) -> None:
    """Run one agent for `settings.device_id` until stop_event is set (or SIGINT/SIGTERM).

    A saved enrollment (`enrollment.json`) fills the device id and MQTT settings not given."""
    settings = with_enrollment(settings)
    device_id = settings.device_id
    if not device_id:
        raise ConfigError("device_id is not set (LAINAAMO_DEVICE_ID)")
    if settings.mqtt_username and settings.mqtt_username != device_id:
        log.warning("the agent logs in as its device id; mqtt_username is ignored")
    owned = platform is None
    if platform is None:
        platform = create_platform(
            settings.agent_platform,
            device_id,
            state_dir=settings.agent_state_dir,
            consent=settings.sim_consent,
            consent_delay_s=settings.sim_consent_delay_s,
            settings=settings,
        )
    link = build_link(settings, device_id, settings.agent_state_dir, platform)
    loop = LinkLoop([link])
    try:
        with stop_on_signals(stop_event) as event:
            loop.run(event)
    finally:
        close = getattr(platform, "close", None)
        if owned and close is not None:
            close()  # the kiosk's session (X server, browser, overlay) ends with its agent
