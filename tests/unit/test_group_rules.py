"""Remote groups (issue 20.3): the plan's checks, weekly occurrences at the same local time
across daylight saving, occurrence ids, what reaches a tablet's policy (no title, only in the
kiosk modes), and the agent's reading of `groups` with its Join window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.policy import JOIN_OPENS_BEFORE, Policy
from lainaamo.errors import InvalidInput
from server.domain.groups import (
    HORIZON,
    GroupPlan,
    check_join_url,
    check_participants,
    occurrence_id,
    occurrences,
    parse_occurrence_id,
    policy_slots,
)
from server.domain.loans import LoanState
from server.domain.model import LifecycleState
from server.domain.policy import DeviceSituation, KioskProfile, compute_policy

LINK = "https://meet.example.fi/abc-defg"
TUESDAY = datetime(2027, 3, 16, 12, 0, tzinfo=UTC)  # 14:00 in Helsinki (winter time)


def plan(**changes: object) -> GroupPlan:
    values: dict[str, object] = {"title": "Tiistairyhmä", "starts_at": TUESDAY, "minutes": 60}
    values.update(changes)
    return GroupPlan(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "Ryhmä 131052-308T"}, "title"),
        ({"minutes": 14}, "minutes"),
        ({"minutes": 241}, "minutes"),
        ({"starts_at": datetime(2027, 3, 16, 12, 0)}, "starts_at"),
        ({"until": date(2027, 4, 1)}, "until"),  # a last day for a one-off group
        ({"weekly": True, "until": date(2027, 3, 1)}, "until"),  # before the first
        ({"join_url": "http://meet.example.fi/x"}, "join_url"),
        ({"join_url": "https://user:pw@meet.example.fi/x"}, "join_url"),
        ({"join_url": "https://meet.example.fi/131052-308T"}, "join_url"),
        ({"join_url": "javascript:alert(1)"}, "join_url"),
    ],
)
def test_a_plan_is_refused_with_the_field_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        plan(**changes)
    assert refused.value.errors[0]["field"] == field or field in str(refused.value)


def test_participants_are_one_to_thirty_distinct_loans() -> None:
    assert check_participants([3, 1, 3]) == [1, 3]
    for wrong in ([], list(range(31))):
        with pytest.raises(InvalidInput):
            check_participants(wrong)


def test_a_weekly_group_keeps_its_local_time_across_the_spring_change() -> None:
    weekly = plan(weekly=True)
    found = occurrences(7, weekly, LINK, TUESDAY - timedelta(days=1), TUESDAY + timedelta(days=25))
    assert [o.start for o in found] == [
        datetime(2027, 3, 16, 12, 0, tzinfo=UTC),
        datetime(2027, 3, 23, 12, 0, tzinfo=UTC),
        datetime(2027, 3, 30, 11, 0, tzinfo=UTC),  # summer time from 28 March: still 14:00
        datetime(2027, 4, 6, 11, 0, tzinfo=UTC),
    ]
    assert [o.id for o in found][:2] == ["g7-202703161200", "g7-202703231200"]
    assert all(o.end - o.start == timedelta(minutes=60) for o in found)


def test_occurrences_end_after_the_window_starts_and_stop_at_the_last_day() -> None:
    weekly = plan(weekly=True, until=date(2027, 3, 23))
    during = TUESDAY + timedelta(minutes=30)  # the first one is under way: still listed
    found = occurrences(7, weekly, LINK, during, during + HORIZON * 4)
    assert [o.id for o in found] == ["g7-202703161200", "g7-202703231200"]
    after = TUESDAY + timedelta(hours=1)  # the first one is over
    assert [o.id for o in occurrences(7, weekly, LINK, after, after + HORIZON)] == [
        "g7-202703231200"
    ]
    once = occurrences(7, plan(), LINK, TUESDAY - HORIZON, TUESDAY + HORIZON)
    assert len(once) == 1
    cancelled = occurrences(
        7, weekly, LINK, TUESDAY, TUESDAY + HORIZON * 2, frozenset({"g7-202703161200"})
    )
    assert [o.id for o in cancelled] == ["g7-202703231200"]


@given(
    st.integers(1, 10**12 - 1),
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_occurrence_ids_read_back(group_id: int, start: datetime) -> None:
    moment = start.replace(second=0, microsecond=0, tzinfo=UTC)
    assert parse_occurrence_id(occurrence_id(group_id, moment)) == (group_id, moment)


@pytest.mark.parametrize("wrong", ["", "g-202703161200", "g1-20270316120", "g1-202713161200", "x"])
def test_other_ids_are_not_occurrences(wrong: str) -> None:
    assert parse_occurrence_id(wrong) is None


def test_the_policy_carries_when_and_where_only_in_the_kiosk_modes() -> None:
    slots = tuple(policy_slots(occurrences(7, plan(), LINK, TUESDAY, TUESDAY + HORIZON)))
    on_loan = DeviceSituation(
        lifecycle=LifecycleState.ON_LOAN,
        loan_state=LoanState.ON_LOAN,
        profile=KioskProfile(),
        groups=slots,
    )
    policy = compute_policy(on_loan)
    assert policy["groups"] == [
        {
            "id": "g7-202703161200",
            "start": "2027-03-16T12:00:00Z",
            "end": "2027-03-16T13:00:00Z",
            "join_url": LINK,
        }
    ]
    assert "Tiistairyhmä" not in str(policy)  # never the title
    for situation in (
        DeviceSituation(lifecycle=LifecycleState.LOST, loan_state=LoanState.LOST, groups=slots),
        DeviceSituation(lifecycle=LifecycleState.IN_STOCK, groups=slots),
        DeviceSituation(**{**on_loan.__dict__, "staff_lock": True}),
        DeviceSituation(**{**on_loan.__dict__, "override": {"mode": "locked"}}),
    ):
        assert "groups" not in compute_policy(situation)
    assert "groups" not in compute_policy(DeviceSituation(**{**on_loan.__dict__, "groups": ()}))


def test_check_join_url_keeps_a_meeting_link() -> None:
    assert check_join_url(f" {LINK} ") == LINK


def test_the_agent_reads_groups_and_opens_the_join_window_ten_minutes_early() -> None:
    policy = Policy.from_dict(
        {
            "mode": "kiosk",
            "groups": [
                {"id": "g7-202703231200", "start": "2027-03-23T12:00:00Z",
                 "end": "2027-03-23T13:00:00Z", "join_url": LINK},
                {"id": "g7-202703161200", "start": "2027-03-16T12:00:00Z",
                 "end": "2027-03-16T13:00:00Z", "join_url": LINK},
            ],
        }
    )  # fmt: skip
    assert policy.ignored == ()
    assert [g.id for g in policy.groups] == ["g7-202703161200", "g7-202703231200"]  # in order
    first = policy.groups[0]
    assert JOIN_OPENS_BEFORE == timedelta(minutes=10)
    assert not first.join_open(TUESDAY - timedelta(minutes=10, seconds=1))
    assert first.join_open(TUESDAY - timedelta(minutes=10))
    assert first.join_open(TUESDAY + timedelta(minutes=59))
    assert not first.join_open(TUESDAY + timedelta(minutes=60))
    assert policy.open_groups(TUESDAY) == (first,)
    locked = Policy.from_dict({"mode": "locked", "groups": [
        {"id": "g7-202703161200", "start": "2027-03-16T12:00:00Z",
         "end": "2027-03-16T13:00:00Z", "join_url": LINK}]})  # fmt: skip
    assert locked.open_groups(TUESDAY) == ()


def slot(**changes: object) -> dict[str, object]:
    one: dict[str, object] = {
        "id": "g7-202703161200",
        "start": "2027-03-16T12:00:00Z",
        "end": "2027-03-16T13:00:00Z",
        "join_url": LINK,
    }
    one.update(changes)
    return {k: v for k, v in one.items() if v is not None}


@pytest.mark.parametrize(
    "groups",
    [
        "nope",
        [slot(end="2027-03-16T11:00:00Z")],
        [slot(join_url="http://x.fi")],
        [slot(id="Tiistairyhmä")],
        [slot(start="2027-03-16T12:00:00")],
        [slot(start=None, end=None, join_url=None)],
        [slot()] * 21,
    ],
)
def test_an_unreadable_groups_value_is_ignored_whole_and_reported(groups: object) -> None:
    policy = Policy.from_dict({"mode": "kiosk", "groups": groups})
    assert policy.groups == () and policy.ignored == ("groups",)
