"""Contact notes on a loan and its follow-up date: adding, reading, and the console's loan page
and worklist with them.

Who may: whoever may see the loan (`loan_for`: counsellors their units' loans, IT support and
administrators their organisation's). Notes and follow-up dates are client-related data:
adding a note or setting a date is audited ("<via>:loan:note:add", "<via>:loan:follow_up:set",
subjects `loan_note` and `loan_follow_up`, never the note's text), and so is every read of
notes ("<via>:loan:notes:view" on the loan, "<via>:worklist:notes:view"). Notes go with the
loan's client reference when it is anonymised (`forget_anonymised`, after
loans.anonymise_ended); a support contact keeps its channel, minutes and time for the
programme report, its text cleared.

Support contacts (issue 20: a phone call, a home visit, a chat, with its minutes) are notes
with a channel, added with `add_contact` and audited like every note ("<via>:loan:note:add",
its channel and minutes in the event). A loan's contacts as the page and the API list them
also hold its remote-support sessions that connected (channel "remote_support"), read from
their own records and never copied into notes; a session's minutes run from connecting to
its end.

The console's pages compose the loan page and worklist handlers of `loan_console` (each its own
audited transaction) with one more transaction reading the notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import CursorResult, Select, delete, func, select, update
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from server.adapters import orm
from server.domain.contact_notes import (
    CONTACT_CHANNELS,
    MINUTE_CHOICES,
    REMOTE_SUPPORT,
    NewContact,
    NewNote,
    check_follow_up,
    follow_up_days_past,
    local_day,
    session_minutes,
)
from server.domain.loans import ACTIVE
from server.domain.model import Principal
from server.service_layer import audit, loan_console, loan_views
from server.service_layer.loans import loan_for
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class NoteView:
    id: int
    loan_id: int
    at: datetime
    kind: str
    text: str
    author: str | None  # user name; None: the user was removed
    channel: str | None = None  # a support contact's channel; None: a plain note
    minutes: int | None = None


@dataclass(frozen=True)
class ContactView:
    """A support contact on a loan: a recorded one (`note_id`) or a remote-support session."""

    at: datetime
    channel: str  # phone | home_visit | chat | remote_support
    minutes: int | None  # None: a remote-support session still going
    text: str
    author: str | None  # user name; None: the user was removed
    note_id: int | None = None  # None: a remote-support session


@dataclass(frozen=True)
class FollowUp:
    """A loan's follow-up date and how many days ago it fell due (None: not due yet)."""

    on: date | None
    days_past: int | None


@dataclass(frozen=True)
class Notes:
    """What the loan page shows besides `loan_console.LoanPage`."""

    notes: list[NoteView]  # newest first
    follow_up: FollowUp
    today: date  # the region's day: the earliest follow-up date the form offers
    contacts: list[ContactView] = field(default_factory=list)  # newest first
    channels: tuple[str, ...] = CONTACT_CHANNELS  # what the contact form offers
    minute_choices: tuple[int, ...] = MINUTE_CHOICES


@dataclass(frozen=True)
class WorkItem:
    """A row of the worklist with its latest note and follow-up date."""

    row: loan_console.Row
    latest: NoteView | None
    follow_up: FollowUp


@dataclass(frozen=True)
class Worklist:
    items: list[WorkItem]  # follow-ups due first, then the most urgent
    held: list[WorkItem]
    # Active loans not on the lists above whose follow-up date has come.
    follow_ups: list[WorkItem]


# --- queries ---------------------------------------------------------------------------------


def _views(session: Session, query: Select[orm.LoanNote, str]) -> list[NoteView]:
    return [
        NoteView(n.id, n.loan_id, n.at, n.kind, n.text, author, n.channel, n.minutes)
        for n, author in session.execute(query)
    ]


def _with_author() -> Select[orm.LoanNote, str]:  # the author: None when removed
    return select(orm.LoanNote, orm.User.username).outerjoin(
        orm.User, orm.User.id == orm.LoanNote.author_id
    )


def notes_of(session: Session, loan_id: int) -> list[NoteView]:
    """A loan's notes, newest first."""
    query = _with_author().where(orm.LoanNote.loan_id == loan_id)
    return _views(session, query.order_by(orm.LoanNote.at.desc(), orm.LoanNote.id.desc()))


def contacts_of(session: Session, loan_id: int) -> list[ContactView]:
    """A loan's support contacts, newest first: its notes with a channel and its
    remote-support sessions that connected (minutes from connecting to the end)."""
    recorded = [
        ContactView(n.at, n.channel or "", n.minutes, n.text, n.author, n.id)
        for n in notes_of(session, loan_id)
        if n.channel
    ]
    S = orm.SupportSession
    sessions = session.execute(
        select(S.connected_at, S.ended_at, S.started_by_name, orm.User.username)
        .outerjoin(orm.User, orm.User.id == S.started_by)
        .where(S.loan_id == loan_id, S.connected_at.is_not(None))
    ).all()
    held = [
        ContactView(
            connected,
            REMOTE_SUPPORT,
            session_minutes((ended - connected).total_seconds() if ended else None),
            "",
            username or name,
        )
        for connected, ended, name, username in sessions
        if connected is not None  # the query's condition, for the type checker
    ]
    return sorted([*recorded, *held], key=lambda c: c.at, reverse=True)


def latest_notes(session: Session, loan_ids: Iterable[int]) -> dict[int, NoteView]:
    """The newest note of each of `loan_ids` that has one."""
    ids = list(loan_ids)
    if not ids:
        return {}
    newest = (
        select(func.max(orm.LoanNote.id))
        .where(orm.LoanNote.loan_id.in_(ids))
        .group_by(orm.LoanNote.loan_id)
    )
    return {
        n.loan_id: n for n in _views(session, _with_author().where(orm.LoanNote.id.in_(newest)))
    }


def follow_up_of(day: date | None, today: date) -> FollowUp:
    return FollowUp(day, follow_up_days_past(day, today))


def forget_anonymised(session: Session) -> int:
    """Remove the notes and follow-up dates of loans whose client is anonymised (the
    anonymisation job, after loans.anonymise_ended); how many notes. A support contact stays
    for the programme report as its channel, minutes and time, its text cleared."""
    anonymised = (
        select(orm.Loan.id)
        .join(orm.Client, orm.Client.id == orm.Loan.client_id)
        .where(orm.Client.anonymised_at.is_not(None))
    )
    N = orm.LoanNote
    written = select(N.loan_id).where(N.channel.is_(None) | (N.text != ""))
    ids = list(
        session.scalars(
            anonymised.where(orm.Loan.follow_up_on.is_not(None) | orm.Loan.id.in_(written))
        )
    )
    if not ids:
        return 0
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(N).where(N.loan_id.in_(ids), N.channel.is_(None))
    )
    cleared: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(N).where(N.loan_id.in_(ids), N.channel.is_not(None), N.text != "").values(text="")
    )
    session.execute(update(orm.Loan).where(orm.Loan.id.in_(ids)).values(follow_up_on=None))
    return int(result.rowcount or 0) + int(cleared.rowcount or 0)


# --- handlers --------------------------------------------------------------------------------


def add_note(
    uow: UnitOfWork, principal: Principal, loan_id: int, note: NewNote, now: datetime
) -> NoteView:
    """Add a contact note to a loan the principal may see (audited without its text)."""
    return _add(uow, principal, loan_id, now, note.kind, note.text)


def add_contact(
    uow: UnitOfWork, principal: Principal, loan_id: int, contact: NewContact, now: datetime
) -> NoteView:
    """Record a support contact (a note with its channel and minutes) on a loan the principal
    may see; audited as a note, with the channel and minutes but without its text."""
    return _add(
        uow, principal, loan_id, now, contact.kind, contact.text, contact.channel, contact.minutes
    )


def _add(
    uow: UnitOfWork,
    principal: Principal,
    loan_id: int,
    now: datetime,
    kind: str,
    text: str,
    channel: str | None = None,
    minutes: int | None = None,
) -> NoteView:
    """A note (with a contact's channel and minutes, if any), audited as `loan:note:add`
    with its kind, length and the contact's figures, never its text."""
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id)
        row = orm.LoanNote(
            loan_id=loan.id,
            author_id=principal.user_id,
            at=now,
            kind=kind,
            text=text,
            channel=channel,
            minutes=minutes,
        )
        session.add(row)
        session.flush()
        contact = {"channel": channel, "minutes": minutes} if channel is not None else {}
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, "loan:note:add"),
            subject_type="loan_note",
            subject_id=str(row.id),
            organisation_id=loan.organisation_id,
            after={"loan_id": loan.id, "kind": kind, **contact, "text_length": len(text)},
            system_part=principal.via,
        )
        uow.commit()
        return NoteView(row.id, loan.id, now, kind, text, principal.username, channel, minutes)


def read_notes(
    uow: UnitOfWork, principal: Principal, loan_id: int, now: datetime
) -> tuple[list[NoteView], FollowUp, list[ContactView]]:
    """A loan's notes (newest first), follow-up date and support contacts (its remote-support
    sessions included), audited as one read of its notes."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        notes = notes_of(uow.session, loan.id)
        contacts = contacts_of(uow.session, loan.id)
        loan_views.record_read(
            uow.session,
            principal,
            "loan:notes:view",
            "loan",
            str(loan_id),
            {"notes": len(notes), "contacts": len(contacts)},
        )
        uow.commit()
        return notes, follow_up_of(loan.follow_up_on, local_day(now)), contacts


def set_follow_up(
    uow: UnitOfWork, principal: Principal, loan_id: int, day: date | None, now: datetime
) -> FollowUp:
    """Set (or with None clear) a loan's follow-up date: from today to a year ahead."""
    today = local_day(now)
    day = check_follow_up(day, today)
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id, lock=True)
        before = loan.follow_up_on
        loan.follow_up_on = day
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, "loan:follow_up:set"),
            subject_type="loan_follow_up",
            subject_id=str(loan.id),
            organisation_id=loan.organisation_id,
            before={"follow_up_on": before.isoformat() if before else None},
            after={"follow_up_on": day.isoformat() if day else None},
            system_part=principal.via,
        )
        uow.commit()
        return follow_up_of(day, today)


def loan_page(
    uow: UnitOfWork, principal: Principal, loan_id: int, now: datetime, settings: Settings
) -> tuple[loan_console.LoanPage, Notes]:
    """The console's loan page (`loan_console.loan_page`, audited as a view of the loan) and
    the loan's notes and follow-up date (audited as a read of its notes)."""
    page = loan_console.loan_page(uow, principal, loan_id, now, settings)
    notes, follow_up, contacts = read_notes(uow, principal, loan_id, now)
    return page, Notes(notes, follow_up, local_day(now), contacts)


def worklist_page(
    uow: UnitOfWork, principal: Principal, now: datetime, settings: Settings
) -> Worklist:
    """The console's worklist (`loan_console.worklist_page`, audited) with each loan's latest
    note and follow-up date, and the other active loans whose follow-up has come; reading
    the notes is audited once."""
    items, held = loan_console.worklist_page(uow, principal, now, settings)
    today = local_day(now)
    listed = {loan.id for loan, _info in [*items, *held]}
    with uow:
        session = uow.session
        due = session.scalars(
            loan_views.scoped(principal)
            .where(
                orm.Loan.state.in_([s.value for s in ACTIVE]),
                orm.Loan.follow_up_on <= today,
                orm.Loan.id.not_in(listed or {-1}),
            )
            .order_by(orm.Loan.follow_up_on, orm.Loan.id)
        ).unique()
        extra = [
            (loan_console.loan_view(loan), loan_views.loan_json(session, loan, now)) for loan in due
        ]
        rows = [*items, *held, *extra]
        ids = [loan.id for loan, _info in rows]
        query = select(orm.Loan.id, orm.Loan.follow_up_on).where(orm.Loan.id.in_(ids or [-1]))
        dates = {loan_id: day for loan_id, day in session.execute(query)}
        latest = latest_notes(session, ids)
        loan_views.record_read(
            session, principal, "worklist:notes:view", "loans", f"{len(ids)} loans"
        )
        uow.commit()

    def item(row: loan_console.Row) -> WorkItem:
        loan_id = row[0].id
        return WorkItem(row, latest.get(loan_id), follow_up_of(dates.get(loan_id), today))

    return Worklist(
        items=sorted((item(r) for r in items), key=urgency),
        held=[item(r) for r in held],
        follow_ups=[item(r) for r in extra],
    )


def urgency(item: WorkItem) -> tuple[bool, int, bool, float]:
    """Follow-ups due first (the longest due first), then the furthest escalated, then the
    longest overdue."""
    past = item.follow_up.days_past
    info = item.row[1]
    return (past is None, -(past or 0), info["escalation"] != "restricted", -info["overdue_days"])
