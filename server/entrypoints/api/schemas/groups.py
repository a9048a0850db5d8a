"""Models of the remote-group routes (api/groups.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import Field, WithJsonSchema

from server.domain.groups import MAX_MINUTES, MAX_PARTICIPANTS, MAX_TITLE, MAX_URL, MIN_MINUTES
from server.domain.loans import LoanState
from server.domain.readiness import ReadinessState
from server.entrypoints.api.schemas.devices import TEXT_MESSAGE
from server.entrypoints.api.spec import ABSENT, Answer, Body, Query, Says
from server.entrypoints.input_guard import INT_MAX

DAY = Annotated[
    str,
    Field(min_length=10, max_length=10),
    WithJsonSchema({"type": "string", "format": "date"}),
    Says("a date as YYYY-MM-DD"),
]
CLOCK = Annotated[
    str,
    Field(min_length=5, max_length=5),
    WithJsonSchema({"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}),
    Says("a time as HH:MM"),
]
MINUTES = Annotated[
    int, Field(ge=MIN_MINUTES, le=MAX_MINUTES), Says(f"{MIN_MINUTES}–{MAX_MINUTES} minutes")
]
TITLE = Annotated[
    str, Field(min_length=1, max_length=MAX_TITLE), Says(TEXT_MESSAGE.format(MAX_TITLE))
]
LINK = Annotated[str, Field(max_length=MAX_URL), Says("an https link, at most 500 characters")]
PARTICIPANTS = Annotated[
    list[Annotated[int, Field(ge=1, le=INT_MAX)]],
    Field(min_length=1, max_length=MAX_PARTICIPANTS),
    Says(f"1–{MAX_PARTICIPANTS} loan ids"),
]
LAST_DAY = Annotated[
    str,
    Field(max_length=10),
    WithJsonSchema({"type": "string", "format": "date"}),
    Says('a date as YYYY-MM-DD, or "" for no last day'),
]


# --- answers ---------------------------------------------------------------------------------


class GroupSummary(Answer):
    """A group session as the list shows it (its title is for staff only: never sent to a
    tablet)."""

    id: int
    title: str
    unit: str = Field(description="The group's unit's code.")
    unit_name: str
    minutes: int
    weekly: bool
    until: date | None = Field(description="A weekly group's last day; null: until cancelled.")
    next_start: datetime | None = Field(description="Its next meeting's start (null: none).")
    participants: int
    cancelled: bool


class GroupList(Answer):
    items: list[GroupSummary]


class Meeting(Answer):
    id: str = Field(description="The occurrence id the tablet reports attendance by.")
    start: datetime
    end: datetime


class Attendance(Answer):
    occurrence: str
    joined: bool
    minutes: int = Field(description="Minutes the tablet spent in the meeting, rounded up.")


class GroupParticipant(Answer):
    loan_id: int
    client_ref: str | None = Field(
        description="Pseudonymous reference; null for a loan the caller does not see."
    )
    unit: str = Field(description="The loan's unit's name.")
    state: Annotated[str, WithJsonSchema({"enum": [s.value for s in LoanState]})]
    device_id: str | None
    readiness: (
        Annotated[str, WithJsonSchema({"enum": [s.value for s in ReadinessState]})] | None
    ) = Field(description="The tablet's readiness now (online, battery, in line with policy).")
    battery_pct: int | None
    attendance: list[Attendance] = Field(description="The past meetings, newest first.")


class GroupDetail(GroupSummary):
    starts_at: datetime = Field(description="The first (or only) meeting's start.")
    join_url: str | None = Field(description="The link in effect: the group's, else its unit's.")
    own_join_url: str | None = Field(description="The group's own link (null: the unit's).")
    next: list[Meeting]
    check: int | None = Field(
        description="30 or 5 while within that many minutes of the next start (the readiness "
        "checks); null otherwise."
    )
    minutes_to_start: int | None
    roster: list[GroupParticipant] = Field(description="The participants, by loan id.")


class GroupLinkSet(Answer):
    unit: str
    group_join_url: str | None
    devices_updated: int = Field(ge=0)


class Rung(Answer):
    cmd_id: str


# --- requests --------------------------------------------------------------------------------


class NoGroupQuery(Query):
    """No query parameters at all."""


class GroupCreate(Body):
    unit: Annotated[str, Field(min_length=1, max_length=64), Says("a unit code")] = Field(
        description="The group's unit: its staff see the group; its video link is the default."
    )
    title: TITLE = Field(
        description="A neutral title, for staff only (never sent to a tablet). Never a name "
        "or identity code."
    )
    date: DAY = Field(description="The (first) meeting's local date in Finland.")
    time: CLOCK = Field(description="Its local start time in Finland, HH:MM.")
    minutes: MINUTES
    participants: PARTICIPANTS = Field(
        description="Loan ids of clients on loan (or paused) that the caller sees."
    )
    weekly: bool = False
    until: LAST_DAY = Field("", description="A weekly group's last day; absent: until cancelled.")
    join_url: LINK = Field("", description="The meeting link; absent: the unit's video link.")


class GroupChange(Body):
    title: TITLE = ABSENT
    date: DAY = ABSENT
    time: CLOCK = ABSENT
    minutes: MINUTES = ABSENT
    weekly: bool = ABSENT
    until: LAST_DAY = Field(ABSENT, description='"": no last day.')
    join_url: LINK = Field(ABSENT, description='"": the unit\'s video link.')
    participants: PARTICIPANTS = Field(
        ABSENT,
        description="The new participants among the loans the caller sees (others stay).",
    )


class GroupLink(Body):
    join_url: Annotated[str | None, Field(max_length=MAX_URL)] = Field(
        description="The unit's video-service meeting link (https); null clears it."
    )


class GroupRing(Body):
    loan_id: Annotated[int, Field(ge=1, le=INT_MAX), Says("a participant's loan id")]
