"""The opt-in daily e-mail of overdue loans (issue 19.9), sent to a real SMTP server (aiosmtpd)
on a free loopback port: who gets it, what it says (only the pseudonymous reference, the unit,
the days overdue and a link), once a day, in the user's language, and what happens when the
e-mail server is down."""

from __future__ import annotations

import email
import email.policy
import itertools
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from test_console_loans import T0, browser, hand_over, publish_agreement, request_loan

from server.adapters import orm, wakeup
from server.entrypoints.background import SCHEDULE
from server.entrypoints.jobs import overdue_digest
from server.entrypoints.jobs.context import JobContext, Outgoing, Pending

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://lainaamo.example.fi"


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        content = getattr(envelope, "content")  # noqa: B009
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(getattr(envelope, "rcpt_tos")), parsed))  # noqa: B009
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield handler
    controller.stop()


def mailing(fleet: Fleet, port: int) -> None:
    fleet.services.settings = fleet.services.settings.replace(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="Lainaamo <lainaamo@example.fi>",
        public_url=PUBLIC_URL,
    )


def context(fleet: Fleet) -> JobContext:
    def publish(message: Outgoing, *, retain: bool, expiry_s: int | None = None) -> bool:
        raise AssertionError("the digest publishes nothing")

    def publish_nowait(message: Outgoing, *, retain: bool, expiry_s: int | None = None) -> Pending:
        raise AssertionError("the digest publishes nothing")

    numbers = itertools.count(1)
    svc = fleet.services
    return JobContext(
        settings=svc.settings,
        uow=svc.uow,
        clock=svc.clock,
        connected=lambda: True,
        publish=publish,
        publish_nowait=publish_nowait,
        stamp=lambda: (1, next(numbers)),
        waiter=wakeup.PollOnly(),
        log=logging.getLogger("lainaamo.test.scheduler"),
    )


def overdue_loan(
    client: FlaskClient,
    fleet: Fleet,
    b: Browser,
    ref: str,
    device: str,
    unit: str = "aikuissosiaalityo",
) -> int:
    loan_id = request_loan(b, ref, unit)
    hand_over(b, loan_id, device)
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        loan.due_at = T0 - timedelta(days=12)
        session.commit()
    return loan_id


def opt_in(b: Browser, address: str) -> None:
    done = b.post("/account/email", {"email": address, "overdue_digest": "1"})
    assert done.status_code == 303, done.get_data(as_text=True)


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_the_daily_email_lists_only_the_reference_unit_and_days_once_a_day(
    client: FlaskClient, fleet: Fleet, inbox: Inbox, smtp_port: int
) -> None:
    mailing(fleet, smtp_port)
    publish_agreement(client, fleet)
    it = browser(client, fleet, "it_support")
    other_unit = overdue_loan(client, fleet, it, "ASK-8900", "tab-002", unit="mielenterveys")
    client.delete_cookie("lainaamo_session")
    b = browser(client, fleet)
    loan_id = overdue_loan(client, fleet, b, "ASK-8901", "tab-001")
    b.post(f"/loans/{loan_id}/notes", {"kind": "agreed", "text": "Brings it on Friday"})
    opt_in(b, "ohjaaja@example.fi")
    with fleet.services.session_factory() as session:
        admin = session.scalar(select(orm.User).where(orm.User.role == "admin"))
        assert admin is not None
        admin.email = "admin@example.fi"  # an address, but no opt-in
        session.commit()

    assert overdue_digest.run(context(fleet), T0) == 1
    assert [rcpt for rcpt, _m in inbox.messages] == [["ohjaaja@example.fi"]]
    message = inbox.to("ohjaaja@example.fi")[0]
    text = body(message)
    assert message["Subject"] == "Lainaamo: 1 myöhässä oleva laina"  # no language chosen: fi
    assert "ASK-8901" in text and "Aikuissosiaalityö" in text and "12 päivää myöhässä" in text
    assert f"{PUBLIC_URL}/loans/{loan_id}" in text and f"{PUBLIC_URL}/worklist" in text
    # Nothing else: not the other unit's loan, the device, the note, the kit or the due date.
    for other in ("ASK-8900", f"/loans/{other_unit}", "tab-001", "Friday", "charger", "lokakuuta"):
        assert other not in text, other
    assert message["From"] == "Lainaamo <lainaamo@example.fi>"

    # Once a day: not again today, again tomorrow.
    assert overdue_digest.run(context(fleet), T0 + timedelta(hours=3)) == 0
    assert len(inbox.messages) == 1
    assert overdue_digest.run(context(fleet), T0 + timedelta(days=1)) == 1
    assert len(inbox.messages) == 2
    with fleet.services.session_factory() as session:
        sends = session.scalars(
            select(orm.AuditEvent.after).where(orm.AuditEvent.action == "scheduler:digest:send")
        ).all()
    assert len(sends) == 2 and all("ASK" not in str(s) for s in sends)


def test_the_email_is_in_the_users_language(
    client: FlaskClient, fleet: Fleet, inbox: Inbox, smtp_port: int
) -> None:
    mailing(fleet, smtp_port)
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    overdue_loan(client, fleet, b, "ASK-8911", "tab-001")
    overdue_loan(client, fleet, b, "ASK-8912", "tab-004")
    opt_in(b, "ohjaaja@example.fi")
    assert b.post("/language", {"language": "sv"}).status_code in (302, 303)
    assert overdue_digest.run(context(fleet), T0) == 1
    message = inbox.messages[0][1]
    assert message["Subject"] == "Lainaamo: 2 försenade lån"
    assert "12 dagar försenat" in body(message) and "ASK-8911" in body(message)


def test_nothing_before_the_hour_or_without_overdue_loans(
    client: FlaskClient, fleet: Fleet, inbox: Inbox, smtp_port: int
) -> None:
    mailing(fleet, smtp_port)
    b = browser(client, fleet)
    opt_in(b, "ohjaaja@example.fi")
    assert overdue_digest.run(context(fleet), T0) == 0  # nothing overdue: no e-mail
    publish_agreement(client, fleet)
    overdue_loan(client, fleet, b, "ASK-8921", "tab-001")
    early = T0.replace(hour=3)  # 05:00 in Helsinki, before digest_hour 7
    assert overdue_digest.run(context(fleet), early) == 0
    assert inbox.messages == []
    assert overdue_digest.run(context(fleet), T0) == 1


def test_smtp_down_is_a_warning_and_the_email_goes_out_on_a_later_run(
    client: FlaskClient, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    mailing(fleet, port)  # nothing listens there yet
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    overdue_loan(client, fleet, b, "ASK-8931", "tab-001")
    opt_in(b, "ohjaaja@example.fi")
    with caplog.at_level(logging.WARNING):
        assert overdue_digest.run(context(fleet), T0) == 0
    warnings = [r for r in caplog.records if r.name == "lainaamo.test.scheduler"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "tried again on the next run" in warnings[0].getMessage()
    with fleet.services.session_factory() as session:
        sent_on = session.scalars(select(orm.User.digest_sent_on)).all()
    assert set(sent_on) == {None}

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert overdue_digest.run(context(fleet), T0 + timedelta(minutes=15)) == 1
    finally:
        controller.stop()
    assert [rcpt for rcpt, _m in handler.messages] == [["ohjaaja@example.fi"]]


def test_without_smtp_the_job_does_nothing_and_the_account_page_says_so(
    client: FlaskClient, fleet: Fleet
) -> None:
    assert not fleet.services.settings.smtp_host
    b = browser(client, fleet)
    page = b.text("/account")
    assert "E-mail is not available" in page and 'name="overdue_digest"' not in page
    assert (
        b.post("/account/email", {"email": "a@example.fi", "overdue_digest": "1"}).status_code
        == 409
    )
    with fleet.services.session_factory() as session:
        session.execute(
            orm.User.__table__.update().values(email="a@example.fi", overdue_digest=True)
        )
        session.commit()
    publish_agreement(client, fleet)
    overdue_loan(client, fleet, b, "ASK-8941", "tab-001")
    assert overdue_digest.run(context(fleet), T0) == 0
    assert ("digest", 900.0) in SCHEDULE


def test_the_account_page_sets_the_address_and_the_opt_in(
    client: FlaskClient, fleet: Fleet, smtp_port: int
) -> None:
    mailing(fleet, smtp_port)
    b = browser(client, fleet)
    page = b.text("/account")
    assert "Send me a daily e-mail of my overdue loans" in page
    refused = b.post("/account/email", {"email": "not an address", "overdue_digest": "1"})
    assert refused.status_code == 422 and 'id="f-email-error"' in refused.get_data(as_text=True)
    missing = b.post("/account/email", {"email": "", "overdue_digest": "1"})
    assert missing.status_code == 422
    opt_in(b, "ohjaaja@example.fi")
    page = b.text("/account")
    assert 'value="ohjaaja@example.fi"' in page and 'value="1" checked' in page
    assert b.post("/account/email", {"email": "ohjaaja@example.fi"}).status_code == 303
    with fleet.services.session_factory() as session:
        user = session.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        assert user is not None and user.email == "ohjaaja@example.fi"
        assert user.overdue_digest is False
        actions = session.scalars(select(orm.AuditEvent.action)).all()
    assert list(actions).count("console:account:digest:set") == 2
