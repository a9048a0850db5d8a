"""Support contacts' rules (issue 20.4): channel, minutes 1…600, a guarded note; the report's
tablet-months and the protection of a months × units table."""

from __future__ import annotations

import pytest

from lainaamo.errors import InvalidInput
from server.domain.contact_figures import protect_grid, tablet_months
from server.domain.contact_notes import (
    CONTACT_CHANNELS,
    MAX_MINUTES,
    NewContact,
    check_minutes,
    session_minutes,
)
from server.domain.disclosure import SUPPRESSED


def fields(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [str(e["field"]) for e in exc.value.errors]


def test_a_contact_takes_a_channel_minutes_and_the_channels_usual_kind() -> None:
    call = NewContact("phone", 15, "  asked about the charger ")
    assert (call.channel, call.minutes, call.kind) == ("phone", 15, "talked")
    assert call.text == "asked about the charger"
    assert NewContact("home_visit", 60).kind == "visit"
    assert NewContact("chat", 5, kind="agreed").kind == "agreed"
    assert CONTACT_CHANNELS == ("phone", "home_visit", "chat")


@pytest.mark.parametrize("channel", ["", "email", "remote_support", "PHONE"])
def test_an_unknown_channel_or_remote_support_is_refused(channel: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        NewContact(channel, 10)
    assert fields(exc) == ["channel"]
    if channel == "remote_support":  # sessions are counted from their own records
        assert "own records" in str(exc.value.errors[0]["message"])


@pytest.mark.parametrize("minutes", [0, -5, MAX_MINUTES + 1, 10_000, True, 1.5, None])
def test_minutes_out_of_bounds_are_refused(minutes: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        NewContact("phone", minutes)  # type: ignore[arg-type]
    assert fields(exc) == ["minutes"]


def test_minutes_from_a_form() -> None:
    assert check_minutes("1") == 1 and check_minutes(" 600 ") == 600 and check_minutes(45) == 45
    for text in ("", "0", "601", "12.5", "-3", "15 min", "1e3", "99999999"):
        with pytest.raises(InvalidInput):
            check_minutes(text)


@pytest.mark.parametrize("text", ["131052-308T", "hetu 131052A308T tänään", "x" * 501, "a\nb"])
def test_the_note_refuses_identity_codes_long_and_multiline_texts(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        NewContact("home_visit", 30, text)
    assert fields(exc) == ["text"]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        NewContact("phone", 5, kind="gossip")
    assert fields(exc) == ["kind"]


def test_session_minutes_are_whole_and_at_least_one() -> None:
    assert session_minutes(None) is None
    assert session_minutes(10) == 1 and session_minutes(89) == 1 and session_minutes(91) == 2
    assert session_minutes(3600) == 60


def test_tablet_months_are_thirty_loan_days() -> None:
    assert tablet_months(90) == 3 and tablet_months(0) == 0


def test_a_lone_withheld_cell_takes_another_with_it_along_lines_with_a_shown_total() -> None:
    # Two units × two months; A's January is 2 (withheld). A's period total (2 + 9) is shown,
    # and so is January's region total (2 + 7): both lines need a second withheld cell.
    counts = {("01", "A"): 2, ("02", "A"): 9, ("01", "B"): 7, ("02", "B"): 6}
    lines = [
        ([("01", "A"), ("02", "A")], True),
        ([("01", "B"), ("02", "B")], True),
        ([("01", "A"), ("01", "B")], True),
        ([("02", "A"), ("02", "B")], True),
    ]
    shown = protect_grid(counts, lines)
    assert shown[("01", "A")] is SUPPRESSED
    for cells, _total in lines:  # no line with a shown total has exactly one withheld cell
        assert sum(shown[k] is SUPPRESSED for k in cells) != 1
    # A line whose total is withheld needs nothing more; zero is shown.
    alone = protect_grid({"x": 3, "y": 8, "z": 0}, [(["x", "y", "z"], False)])
    assert alone == {"x": SUPPRESSED, "y": 8, "z": 0}
    taken = protect_grid({"x": 3, "y": 8, "z": 0}, [(["x", "y", "z"], True)])
    assert taken == {"x": SUPPRESSED, "y": SUPPRESSED, "z": 0}


@pytest.mark.parametrize("typed", ["¹", "٣", "²⁰", "1_0", " ", "-5", "10.5"])
def test_minutes_that_are_not_plain_digits_are_refused_not_crashed(typed: str) -> None:
    with pytest.raises(InvalidInput):
        check_minutes(typed)
