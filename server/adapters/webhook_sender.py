"""Posting one webhook over HTTP(S) with `urllib.request`: bounded time, no redirects."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

TIMEOUT_S = 5.0
USER_AGENT = "Lainaamo-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """The receiver's HTTP status (None if none came) and a short error text."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: it is not followed (nor its body)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = TIMEOUT_S) -> Outcome:
    """POST `body` as JSON; never raises for network or HTTP failures."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT} | headers,
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return Outcome(int(response.status), None)
    except urllib.error.HTTPError as exc:
        exc.close()
        return Outcome(exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(None, f"{type(exc).__name__}: {reason}"[:200])
