"""The one exception tree of Lainaamo.

LainaamoError
├── ConfigError            bad or missing setting
├── ProtocolError          an MQTT message that breaks the contract (carries a bounded `reason`)
└── DomainError            a request the domain refuses
    ├── NotFound           nothing (visible to the caller) is so named
    ├── Conflict           the state does not allow it
    ├── InvalidInput       input fails validation (carries per-field `errors`)
    └── Forbidden          the caller may not

They carry a stable `code` and a message safe to show, never an HTTP status: entrypoints
translate them, the web ones into status codes (server/entrypoints/web/status.py) and one
JSON error shape (API) or a page (console), the ingest into a rejection counter.
"""

from __future__ import annotations

from enum import StrEnum


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

    code = "bad_request"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request does not fit the state things are in. `why`, where the refusing code gives
    one, tells the refusals of one step apart (an enum member) so that a user interface can
    word each in its own way without reading the English message."""

    code = "conflict"

    def __init__(self, message: str, why: StrEnum | None = None) -> None:
        super().__init__(message)
        self.why = why


class Forbidden(DomainError):
    code = "forbidden"


class InvalidInput(DomainError):
    """Input that fails validation; `errors` maps a field (or row) to what is wrong with it."""

    code = "invalid_input"

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
