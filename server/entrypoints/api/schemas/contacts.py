"""Models of a loan's support contacts: notes with a channel and minutes (api/notes.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from server.domain.contact_notes import (
    CHANNELS,
    CONTACT_CHANNELS,
    MAX_MINUTES,
    MAX_NOTE_LEN,
    MIN_MINUTES,
)
from server.entrypoints.api.schemas.devices import TEXT_MESSAGE
from server.entrypoints.api.schemas.notes import KINDS, Note, NoteList, _kind
from server.entrypoints.api.spec import ABSENT, Answer, Body, Says

RECORDED = list(CONTACT_CHANNELS)
MINUTES_MESSAGE = f"whole minutes from {MIN_MINUTES} to {MAX_MINUTES}"


def _channel(value: str) -> str:
    if value not in CONTACT_CHANNELS:
        raise ValueError(f"one of {', '.join(CONTACT_CHANNELS)}")
    return value


# --- answers ---------------------------------------------------------------------------------


class ContactNote(Note):
    """A note; a support contact has its channel and minutes."""

    channel: Annotated[
        str | None, WithJsonSchema({"anyOf": [{"enum": RECORDED}, {"type": "null"}]})
    ] = Field(description="A support contact's channel; null: a plain note.")
    minutes: int | None = Field(description="A support contact's length; null: a plain note.")


class Contact(Answer):
    """A support contact: a recorded one (note_id) or a remote-support session (note_id null,
    channel remote_support, minutes from connecting to the end)."""

    at: datetime
    channel: Annotated[str, WithJsonSchema({"enum": list(CHANNELS)})]
    minutes: int | None = Field(description="null: a remote-support session still going.")
    text: str
    author: str | None = Field(description="User name; null when the user was removed.")
    note_id: int | None = Field(description="null: a remote-support session.")


class ContactNoteList(NoteList):
    """A loan's notes and its support contacts (remote-support sessions included), newest
    first, with its follow-up date."""

    items: list[ContactNote]  # type: ignore[assignment]
    contacts: list[Contact]


# --- requests --------------------------------------------------------------------------------


class NoteOrContactAdd(Body):
    """A plain note (`kind`), or a support contact (`channel` and `minutes`; `kind` then
    defaults to the channel's usual one)."""

    kind: Annotated[
        str,
        AfterValidator(_kind),
        Says(f"one of {', '.join(KINDS)}"),
        WithJsonSchema({"enum": KINDS}),
    ] = ABSENT
    channel: Annotated[
        str,
        AfterValidator(_channel),
        Says(f"one of {', '.join(RECORDED)}"),
        WithJsonSchema({"enum": RECORDED}),
    ] = ABSENT
    minutes: Annotated[int, Field(ge=MIN_MINUTES, le=MAX_MINUTES), Says(MINUTES_MESSAGE)] = ABSENT
    text: Annotated[
        str, Field(max_length=MAX_NOTE_LEN), Says(TEXT_MESSAGE.format(MAX_NOTE_LEN))
    ] = Field("", description="Optional, short. Never a name or identity code.")
