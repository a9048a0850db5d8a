"""Small adapters between paho-mqtt and the agent: logging, callback guards, will properties."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lainaamo.config import Settings
from lainaamo.mqtt import is_v5

log = logging.getLogger(__name__)


class _PahoLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """paho logs a lost connection as an error; on a tablet's network it is routine."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(min(level, logging.WARNING), msg, *args, **kwargs)


PAHO_LOG = _PahoLog(logging.getLogger("agent.mqtt"), {})


def guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Log and swallow a callback's errors: paho would otherwise re-raise them into the loop."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:
            log.exception("%s: %s failed", getattr(self, "device_id", "?"), method.__name__)

    return wrapper


def will_properties(settings: Settings) -> Properties | None:
    """Properties of the last will (MQTT 5): JSON content type, like every other publish."""
    if not is_v5(settings):
        return None
    props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    return props
