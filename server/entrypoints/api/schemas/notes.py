"""Models of a loan's contact notes and follow-up date (api/notes.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

from server.domain.contact_notes import MAX_NOTE_LEN, NOTE_KINDS
from server.entrypoints.api.schemas.devices import TEXT_MESSAGE
from server.entrypoints.api.spec import Answer, Body, Query, Says

KINDS = list(NOTE_KINDS)


def _kind(value: str) -> str:
    if value not in NOTE_KINDS:
        raise ValueError(f"one of {', '.join(NOTE_KINDS)}")
    return value


def _iso_date(value: str | None) -> str | None:
    if value is not None:
        date.fromisoformat(value)  # ValueError: not a date
        if len(value) != 10:
            raise ValueError("a date, YYYY-MM-DD")
    return value


# --- answers ---------------------------------------------------------------------------------


class Note(Answer):
    id: int
    loan_id: int
    at: datetime
    kind: Annotated[str, WithJsonSchema({"enum": KINDS})]
    text: str = Field(description="Short; never a name or identity code. May be empty.")
    author: str | None = Field(description="User name; null when the user was removed.")


class FollowUp(Answer):
    loan_id: int
    follow_up_on: date | None = Field(description="The day to get back to the client; null: none.")
    due_days: int | None = Field(
        description="How many days ago the follow-up date came (0: today, Finnish time); "
        "null: none set, or not yet."
    )


class NoteList(FollowUp):
    """A loan's contact notes, newest first, with its follow-up date."""

    items: list[Note]


# --- requests --------------------------------------------------------------------------------


class NoNotesQuery(Query):
    """No query parameters at all."""


class NoteAdd(Body):
    kind: Annotated[
        str,
        AfterValidator(_kind),
        Says(f"one of {', '.join(KINDS)}"),
        WithJsonSchema({"enum": KINDS}),
    ]
    text: Annotated[
        str, Field(max_length=MAX_NOTE_LEN), Says(TEXT_MESSAGE.format(MAX_NOTE_LEN))
    ] = Field("", description="Optional, short. Never a name or identity code.")


DATE_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]}


class FollowUpSet(Body):
    follow_up_on: Annotated[
        str | None,
        AfterValidator(_iso_date),
        Says("a date (YYYY-MM-DD) from today to a year ahead, or null to clear it"),
        WithJsonSchema(DATE_SCHEMA),
    ] = Field(description="From today (Finnish time) to a year ahead; null clears it.")
