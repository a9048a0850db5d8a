"""Access to the process's services from inside a request."""

from __future__ import annotations

from flask import current_app

from server.bootstrap import Services


def services() -> Services:
    found: Services = current_app.extensions["lainaamo"]
    return found
