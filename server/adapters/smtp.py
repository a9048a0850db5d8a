"""Sending e-mail: the `Mailer` interface, its SMTP implementation (stdlib smtplib) and
`mailer_from_settings`, which gives None when no SMTP server is configured.

A mailer opens one connection for a batch of messages (`connect()`); every failure — no
connection, a refused login, a refused recipient — is a `MailError`, so that the caller can
try again later without knowing smtplib.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from lainaamo.config import Settings

TIMEOUT_S = 10.0  # per SMTP operation: a dead server must not hold the scheduler for long


class MailError(Exception):
    """The message could not be handed to the e-mail server."""


class Connection(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand one message over; MailError if the server refuses it."""


class Mailer(Protocol):
    @property
    def sender(self) -> str:
        """The From address."""

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection for a batch of messages; MailError if there is none."""


@dataclass(frozen=True)
class SmtpMailer:
    """An SMTP server, with STARTTLS and a login when configured."""

    host: str
    port: int
    sender: str
    starttls: bool = True
    username: str = ""
    password_file: str = ""
    timeout_s: float = TIMEOUT_S

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password())
                yield _SmtpConnection(smtp)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{self.host}:{self.port}: {exc}") from exc

    def _password(self) -> str:
        if not self.password_file:
            return ""
        try:
            return Path(self.password_file).read_text().strip()
        except OSError as exc:
            raise MailError(f"cannot read smtp_password_file: {exc}") from exc


@dataclass(frozen=True)
class _SmtpConnection:
    smtp: smtplib.SMTP

    def send(self, message: EmailMessage) -> None:
        try:
            self.smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"message not accepted: {exc}") from exc


def mailer_from_settings(settings: Settings) -> SmtpMailer | None:
    """The configured SMTP server, or None when `smtp_host` is empty (no e-mail)."""
    if not settings.smtp_host:
        return None
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from or f"lainaamo@{settings.smtp_host}",
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password_file=settings.smtp_password_file,
    )
