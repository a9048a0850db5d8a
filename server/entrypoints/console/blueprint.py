"""The console's blueprint, defined once at module level (as in Flask's tutorial).

View modules decorate their functions with `@bp.get(...)`/`@bp.route(...)` at import time;
`server.entrypoints.console` imports them all and `init_app` registers `bp` on each app.
"""

from __future__ import annotations

from flask import Blueprint

from server.entrypoints.console import core

bp = Blueprint(
    "console",
    "server.entrypoints.console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
bp.before_request(core.load_user)
bp.after_request(core.add_headers)
