"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from lainaamo.errors import Forbidden
from server.domain.model import Principal, Role
from server.entrypoints.web.context import services
from server.entrypoints.web.status import Unauthorized
from server.service_layer.accounts import authenticate_token

F = TypeVar("F", bound=Callable[..., Any])


def load_principal() -> None:
    """Authenticate the request's bearer token (every API route except the public ones)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send 'Authorization: Bearer <token>'; get a token with POST /api/v1/auth/tokens"
        )
    svc = services()
    confirmed = timedelta(days=svc.settings.sso_token_days)
    principal = authenticate_token(svc.uow(), token.strip(), confirmed)
    if principal is None:
        raise Unauthorized(
            "the token is unknown, expired or revoked (a single sign-on user's token also "
            "stops when they have not signed in for a while)"
        )
    g.principal = principal


def current() -> Principal:
    principal: Principal = g.principal
    return principal


def roles(*allowed: Role) -> Callable[[F], F]:
    """Allow a route only to the given roles."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current().role not in allowed:
                names = ", ".join(r.value for r in allowed)
                raise Forbidden(f"this needs one of the roles: {names}")
            return view(*args, **kwargs)

        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
