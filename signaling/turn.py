"""ICE servers for a session: STUN URLs as configured and TURN with short-lived credentials.

coturn's TURN REST scheme (`use-auth-secret`): username = "<expiry unix time>:<session id>",
credential = base64(HMAC-SHA1(static-auth-secret, username)). The secret never leaves the
server. Nothing is configured by default: there is never a public STUN server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any, Protocol

MAX_URLS = 8


class IceSettings(Protocol):
    @property
    def support_stun_urls(self) -> str: ...
    @property
    def turn_urls(self) -> str: ...
    @property
    def turn_secret(self) -> str: ...
    @property
    def turn_credential_ttl_s(self) -> int: ...


def turn_credentials(secret: str, session_id: str, expiry_unix: int) -> tuple[str, str]:
    """(username, credential) valid until `expiry_unix` for coturn's shared-secret scheme."""
    username = f"{expiry_unix}:{session_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def _urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()][:MAX_URLS]


def ice_servers(settings: IceSettings, session_id: str, now: datetime) -> list[dict[str, Any]]:
    """The RTCConfiguration `iceServers` list for one session (empty: host candidates only)."""
    servers: list[dict[str, Any]] = []
    stun = _urls(settings.support_stun_urls)
    if stun:
        servers.append({"urls": stun})
    turn = _urls(settings.turn_urls)
    if turn and settings.turn_secret:
        expiry = int(now.timestamp()) + int(settings.turn_credential_ttl_s)
        username, credential = turn_credentials(settings.turn_secret, session_id, expiry)
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers
