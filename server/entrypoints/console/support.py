"""The counsellor's remote-support page: consent progress, the client's screen, chat, hang-up.

Starting a session and the JSON the page polls live in `support_api.py`; the WebRTC side runs
in the browser (`static/support.js`) and on the tablet, never on the server.
"""

from __future__ import annotations

from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import principal, render
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.service_layer import support


def end_reasons() -> dict[str, str]:
    """What the page says about why a session ended."""
    return {
        "hangup_counsellor": _("you hung up"),
        "hangup_client": _("the client ended it on the tablet"),
        "max_duration": _("the longest allowed time was reached"),
        "idle": _("nothing happened for too long"),
        "connection_failed": _("the connection could not be made"),
        "device_offline": _("the tablet went offline"),
        "heartbeat_lost": _("the connection was lost"),
        "error": _("an error on the tablet"),
    }


@bp.get("/support/<session_id>")
def support_session(session_id: str) -> tuple[str, int]:
    svc = services()
    info = support.get_state(svc.uow(), principal(), session_id, svc.settings, svc.clock())
    return render(
        "support/session.html",
        info=info,
        base=f"/support/{info['id']}",
        reasons=end_reasons(),
    )
