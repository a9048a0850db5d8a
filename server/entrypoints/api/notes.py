"""A loan's contact notes, support contacts and follow-up date: whoever may see the loan may
read and add them (reading is audited: client-related data).

A support contact (issue 20) is posted to the notes with a `channel` and its `minutes`; the
list answers every note with its channel and minutes, and the loan's contacts with its
remote-support sessions (counted from their own records, channel `remote_support`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView

from lainaamo.errors import InvalidInput
from server.domain.contact_notes import NewContact, NewNote
from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.contacts import (
    ContactNote,
    ContactNoteList,
    NoteOrContactAdd,
)
from server.entrypoints.api.schemas.notes import (
    FollowUp,
    FollowUpSet,
    NoNotesQuery,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import contact_notes

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)


def note_json(note: contact_notes.NoteView) -> dict[str, Any]:
    return {
        "id": note.id,
        "loan_id": note.loan_id,
        "at": note.at.isoformat(),
        "kind": note.kind,
        "text": note.text,
        "author": note.author,
        "channel": note.channel,
        "minutes": note.minutes,
    }


def contact_json(contact: contact_notes.ContactView) -> dict[str, Any]:
    return {
        "at": contact.at.isoformat(),
        "channel": contact.channel,
        "minutes": contact.minutes,
        "text": contact.text,
        "author": contact.author,
        "note_id": contact.note_id,
    }


def new_note(json: NoteOrContactAdd) -> NewNote | NewContact:
    """A plain note (a kind), or a support contact (a channel and its minutes)."""
    if json.channel is None:
        if json.kind is None:
            raise InvalidInput("kind or channel", [{"field": "kind", "message": "required"}])
        if json.minutes is not None:
            raise InvalidInput(
                "minutes without a channel",
                [{"field": "minutes", "message": "only with a channel"}],
            )
        return NewNote(json.kind, json.text)
    if json.minutes is None:
        raise InvalidInput("minutes", [{"field": "minutes", "message": "required"}])
    return NewContact(json.channel, json.minutes, json.text, json.kind or "")


def follow_up_json(loan_id: int, follow_up: contact_notes.FollowUp) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "follow_up_on": follow_up.on.isoformat() if follow_up.on else None,
        "due_days": follow_up.days_past,
    }


class LoanNotes(MethodView):
    """GET and POST of a loan's notes as one URL rule: two rules on one path would answer a
    POST to an id past the column's range with 405 instead of 404 (werkzeug tries the GET
    rule first)."""

    @roles(*ANYONE)
    @endpoint("listLoanNotes", {200: (ContactNoteList, "The loan's notes")}, (401, 403, 404, 422))
    def get(self, loan_id: int, query: NoNotesQuery) -> dict[str, Any]:
        """A loan's contact notes and support contacts (its remote-support sessions included),
        newest first, and its follow-up date (reading is audited)"""
        svc = services()
        notes, follow_up, contacts = contact_notes.read_notes(
            svc.uow(), current(), loan_id, svc.clock()
        )
        return {
            **follow_up_json(loan_id, follow_up),
            "items": [note_json(n) for n in notes],
            "contacts": [contact_json(c) for c in contacts],
        }

    @roles(*ANYONE)
    @endpoint("addLoanNote", {201: (ContactNote, "Added")}, (401, 403, 404, 415, 422))
    def post(self, loan_id: int, json: NoteOrContactAdd) -> tuple[dict[str, Any], int]:
        """Add a contact note ("called, no answer") to a loan, or record a support contact
        (a channel: phone, home_visit or chat, and its minutes, 1 to 600)"""
        svc = services()
        shown = new_note(json)
        uow, who, now = svc.uow(), current(), svc.clock()
        if isinstance(shown, NewContact):
            note = contact_notes.add_contact(uow, who, loan_id, shown, now)
        else:
            note = contact_notes.add_note(uow, who, loan_id, shown, now)
        return note_json(note), 201


bp.add_url_rule("/loans/<int:loan_id>/notes", view_func=LoanNotes.as_view("loan_notes"))


@bp.put("/loans/<int:loan_id>/follow-up")
@roles(*ANYONE)
@endpoint("setLoanFollowUp", {200: (FollowUp, "The follow-up date")}, (401, 403, 404, 415, 422))
def set_follow_up(loan_id: int, json: FollowUpSet) -> dict[str, Any]:
    """Set (or with null clear) the day to get back to the client"""
    svc = services()
    day = date.fromisoformat(json.follow_up_on) if json.follow_up_on else None
    follow_up = contact_notes.set_follow_up(svc.uow(), current(), loan_id, day, svc.clock())
    return follow_up_json(loan_id, follow_up)
