"""Access to the process's services from inside a request (API and console alike)."""

from __future__ import annotations

from flask import current_app

from server.bootstrap import Services


def services() -> Services:
    found: Services = current_app.extensions["lainaamo"]
    return found


# app.extensions key of the console's error page renderer: the error handlers (api/errors.py)
# render a page for requests outside the API when the console has registered one.
HTML_ERRORS = "lainaamo.html_errors"
