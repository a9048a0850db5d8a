"""The web console: server-rendered pages for IT support, counsellors and administrators.

Plain HTML forms and a little progressive JavaScript (live updates, import progress); no
build step. Every page calls the same service-layer handlers as the REST API.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g, make_response, render_template, request

from server.domain.model import Role

# The view modules: importing them registers their module-level views on `bp`.
from server.entrypoints.console import (  # noqa: F401
    account,
    admin,
    contacts,
    core,
    device,
    documents,
    domain_text,
    fleet,
    groups,
    i18n,
    keep_device,
    labels,
    loans,
    referrals,
    reports,
    sso,
    support,
    support_api,
)
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import lazy_gettext as _l
from server.entrypoints.web.context import HTML_ERRORS

# (endpoint, label, roles that see it) for the navigation bar, in order.
NAVIGATION: tuple[tuple[str, Any, frozenset[Role]], ...] = (
    ("console.devices", _l("Devices"), frozenset({Role.IT_SUPPORT, Role.ADMIN})),
    ("console.enrollment", _l("Enrollment"), frozenset({Role.IT_SUPPORT, Role.ADMIN})),
    ("console.loans", _l("Clients and loans"), frozenset(Role)),
    ("console.worklist", _l("Overdue"), frozenset(Role)),
    ("console.groups", _l("Groups"), frozenset({Role.COUNSELLOR, Role.IT_SUPPORT})),
    ("console.reports", _l("Reports"), frozenset({Role.ADMIN})),
    ("console.users", _l("Users"), frozenset({Role.ADMIN})),
    ("console.unit_settings", _l("Units and policies"), frozenset({Role.ADMIN})),
)


def create_blueprint() -> Blueprint:
    return bp


def init_app(app: Flask) -> None:
    """Register the console and give its templates gettext and the formatting filters."""
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.template_ngettext, newstyle=True
    )
    app.jinja_env.filters.update(
        datetime=i18n.fmt_datetime,
        date=i18n.fmt_date,
        number=i18n.fmt_number,
        percent=i18n.fmt_percent,
    )
    app.jinja_env.globals.update(labels.GLOBALS)
    app.register_blueprint(create_blueprint())

    @app.context_processor
    def shared() -> dict[str, object]:
        who = g.get("principal")
        nav = [(e, label) for e, label, allowed in NAVIGATION if who and who.role in allowed]
        return {
            "me": who,
            "navigation": nav,
            "language": i18n.current_language(),
            "languages": i18n.LANGUAGE_NAMES,
            "csrf_field": core.csrf_field,
            "csrf_token": g.get("csrf_token") or "",
        }

    def error_page(status: int, code: str, message: str) -> tuple[Any, int]:
        if "language" not in g:  # outside the console's pages: the cookie, else the browser's
            chosen = request.cookies.get(core.LANGUAGE_COOKIE)
            g.language = i18n.best_language(request.accept_languages, chosen)
        # The server's own messages are English and technical: a person reads one written for
        # them, unless the page that refused wrote one (i18n.ForPeople).
        shown: str
        if isinstance(message, i18n.ForPeople):
            shown = message
        else:
            shown = domain_text.known(message) or labels.error_message(status)
        response = make_response(render_template("error.html", status=status, message=shown))
        return core.add_headers(response), status

    app.extensions[HTML_ERRORS] = error_page
