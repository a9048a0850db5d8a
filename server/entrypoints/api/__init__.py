"""The REST API under /api/v1; see openapi.py for its contract."""

from __future__ import annotations

from flask import Blueprint

from server.entrypoints.api import (
    commands,
    devices,
    enrollment,
    events,
    loans,
    openapi,
    people,
    support,
)
from server.entrypoints.api.blueprint import PUBLIC_ENDPOINTS, bp

PUBLIC_ENDPOINTS.add(enrollment.PUBLIC)

# Modules that still define their views inside `register(bp)`: called once, at import (a
# blueprint takes no new routes once an app has registered it). Converted modules decorate
# module-level views with `bp` and leave this list.
for _module in (openapi, people, devices, loans, commands, enrollment, support, events):
    if hasattr(_module, "register"):
        _module.register(bp)


def create_blueprint() -> Blueprint:
    return bp
