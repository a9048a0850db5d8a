"""The HTTP status of each refusal: the domain's errors carry none (lainaamo/errors.py), so
the API and the console translate them here, one table for both."""

from __future__ import annotations

from lainaamo.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from server.service_layer.console_auth import AccountLocked, SignInFailed
from server.service_layer.enrollment import EnrollmentRefused


class Unauthorized(DomainError):
    """No valid credentials (an API token missing, unknown, expired or revoked)."""

    code = "unauthorized"


class UnsupportedMediaType(DomainError):
    """A body that is not the JSON a route takes."""

    code = "unsupported_media_type"


STATUS: dict[type[DomainError], int] = {
    Unauthorized: 401,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    SignInFailed: 401,
    EnrollmentRefused: 401,
    AccountLocked: 423,
    DomainError: 400,
}


def http_status(error: DomainError) -> int:
    """The status of `error`: that of its class or of the nearest class above it."""
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 400
