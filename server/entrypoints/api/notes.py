"""A loan's contact notes and follow-up date: whoever may see the loan may read and add them
(reading is audited: client-related data)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView

from server.domain.contact_notes import NewNote
from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.notes import (
    FollowUp,
    FollowUpSet,
    NoNotesQuery,
    Note,
    NoteAdd,
    NoteList,
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
    }


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
    @endpoint("listLoanNotes", {200: (NoteList, "The loan's notes")}, (401, 403, 404, 422))
    def get(self, loan_id: int, query: NoNotesQuery) -> dict[str, Any]:
        """A loan's contact notes, newest first, and its follow-up date (reading is audited)"""
        svc = services()
        notes, follow_up = contact_notes.read_notes(svc.uow(), current(), loan_id, svc.clock())
        return {**follow_up_json(loan_id, follow_up), "items": [note_json(n) for n in notes]}

    @roles(*ANYONE)
    @endpoint("addLoanNote", {201: (Note, "Added")}, (401, 403, 404, 415, 422))
    def post(self, loan_id: int, json: NoteAdd) -> tuple[dict[str, Any], int]:
        """Add a contact note ("called, no answer") to a loan"""
        svc = services()
        note = contact_notes.add_note(
            svc.uow(), current(), loan_id, NewNote(json.kind, json.text), svc.clock()
        )
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
