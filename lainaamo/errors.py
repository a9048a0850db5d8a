"""The one exception tree of Lainaamo.

LainaamoError
├── ConfigError            bad or missing setting
├── ProtocolError          an MQTT message that breaks the contract (carries a bounded `reason`)
└── DomainError            a request the domain refuses
    ├── NotFound           404
    ├── Conflict           409
    ├── InvalidInput       400/422 (carries per-field `errors`)
    └── Forbidden          403

Entrypoints translate these into one JSON error shape (API) or a rejection counter (ingest).
"""

from __future__ import annotations


class LainaamoError(Exception):
    """Base of every error Lainaamo raises on purpose."""


class ConfigError(LainaamoError):
    """A setting is missing or has a value that cannot be used."""


class ProtocolError(LainaamoError):
    """An MQTT message that breaks the contract; `reason` is a bounded label for metrics."""

    REASONS = frozenset(
        {
            "oversized",
            "malformed",
            "invalid",
            "mismatched",
            "unknown_topic",
            "unknown_device",
            "personal_data",
            "internal_error",
        }
    )

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown protocol error reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DomainError(LainaamoError):
    """A request that the domain refuses; the message is safe to show to the user."""

    status = 400
    code = "bad_request"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class InvalidInput(DomainError):
    """Input that fails validation; `errors` maps a field (or row) to what is wrong with it."""

    status = 422
    code = "invalid_input"

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
