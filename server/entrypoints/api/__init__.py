"""The REST API under /api/v1: module-level views on one blueprint; each view's typed definition
(spec.py, schemas/) validates its requests and makes its part of the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint

# The view modules: importing them registers their module-level views on `bp`.
from server.entrypoints.api import (  # noqa: F401
    commands,
    devices,
    enrollment,
    events,
    groups,
    keep,
    loans,
    notes,
    openapi,
    people,
    referrals,
    support,
)
from server.entrypoints.api.blueprint import PUBLIC_ENDPOINTS, bp

PUBLIC_ENDPOINTS.add(enrollment.PUBLIC)


def create_blueprint() -> Blueprint:
    """The API's one blueprint, with every view module's routes on it."""
    return bp
