"""Send the opt-in daily e-mail of overdue loans (service_layer/digest.py) to the professionals
who asked for it, once a day each, from `digest_hour` on.

Runs every 15 minutes; does nothing when no SMTP server is configured (`smtp_host`). One SMTP
connection per run; when the server cannot be reached, or refuses a message, that is logged
as a warning and the e-mail goes out on a later run (a day's e-mail is recorded as sent only
once the server took it). Returns how many e-mails were sent.
"""

from __future__ import annotations

from datetime import datetime

from server.adapters import smtp
from server.entrypoints.jobs.context import JobContext
from server.entrypoints.jobs.digest_mail import compose
from server.service_layer import digest


def run(ctx: JobContext, now: datetime, mailer: smtp.Mailer | None = None) -> int:
    mailer = mailer or smtp.mailer_from_settings(ctx.settings)
    if mailer is None:
        return 0
    due = digest.due_digests(ctx.uow(), now, ctx.settings.digest_hour)
    if not due:
        return 0
    sent = 0
    try:
        with mailer.connect() as connection:
            for one in due:
                message = compose(one, mailer.sender, ctx.settings.public_url, now)
                try:
                    connection.send(message)
                except smtp.MailError as exc:
                    ctx.log.warning(
                        "daily e-mail to user %d not sent, tried again later: %s", one.user_id, exc
                    )
                    continue
                digest.mark_sent(ctx.uow(), one)
                sent += 1
    except smtp.MailError as exc:
        ctx.log.warning(
            "daily e-mails not sent (%d due), tried again on the next run: %s", len(due) - sent, exc
        )
    if sent:
        ctx.log.info("sent the daily e-mail of overdue loans to %d user(s)", sent)
    return sent
