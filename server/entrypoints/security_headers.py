"""Security headers every response gets (the console adds its CSP on top)."""

from __future__ import annotations

from flask import Response, current_app, request

HSTS = "max-age=31536000; includeSubDomains"
# API answers are JSON, never a page: no scripts, no framing, no guessing of content types.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def behind_tls() -> bool:
    """HTTPS as the browser sees it: this request, or the configured public URL.

    Plain-HTTP development servers must not send HSTS: a browser would remember it for a
    year and refuse to talk to localhost over HTTP.
    """
    services = current_app.extensions.get("lainaamo")
    public_url = services.settings.public_url if services is not None else ""
    return request.is_secure or (public_url or "").startswith("https://")


def add_hsts(response: Response) -> Response:
    if behind_tls():
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def add_common(response: Response) -> Response:
    """After every request (API, metrics, health, errors): nosniff, no framing, HSTS on TLS."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype != "text/html":
        response.headers.setdefault("Content-Security-Policy", API_CSP)
    return add_hsts(response)
