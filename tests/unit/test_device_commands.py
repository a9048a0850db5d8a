"""Command rules: roles, confirmation, arguments, and how acknowledgements move a command."""

from __future__ import annotations

import pytest

from lainaamo.errors import Forbidden, InvalidInput
from server.domain.device_commands import CommandState, IssueCommand, after_ack
from server.domain.model import Principal, Role

S = CommandState


def who(role: Role) -> Principal:
    return Principal(1, "x", 1, role, frozenset({1}))


def test_acks_move_commands_forward_only() -> None:
    assert after_ack(S.QUEUED, "received") is S.RECEIVED  # ack raced ahead of our "sent"
    assert after_ack(S.SENT, "received") is S.RECEIVED
    assert after_ack(S.RECEIVED, "received") is None
    assert after_ack(S.RECEIVED, "done") is S.DONE
    assert after_ack(S.SENT, "failed") is S.FAILED
    for final in (S.DONE, S.FAILED, S.EXPIRED, S.REJECTED):
        for ack in ("received", "done", "failed"):
            assert after_ack(final, ack) is None, (final, ack)


def test_only_it_support_wipes_and_only_with_confirmation() -> None:
    with pytest.raises(InvalidInput, match="confirm"):
        IssueCommand("tab-001", "wipe")
    with pytest.raises(InvalidInput, match="confirm"):
        IssueCommand("tab-001", "wipe", confirm="tab-002")
    wipe = IssueCommand("tab-001", "wipe", confirm="tab-001")
    wipe.check_role(who(Role.IT_SUPPORT))
    for role in (Role.ADMIN, Role.COUNSELLOR):
        with pytest.raises(Forbidden):
            wipe.check_role(who(role))


def test_counsellors_may_ring_but_not_lock() -> None:
    IssueCommand("tab-001", "ring").check_role(who(Role.COUNSELLOR))
    with pytest.raises(Forbidden):
        IssueCommand("tab-001", "lock").check_role(who(Role.COUNSELLOR))


@pytest.mark.parametrize(
    ("name", "args", "ttl"),
    [
        ("explode", {}, 600),
        ("message", {}, 600),
        ("message", {"text": "x" * 301}, 600),
        ("message", {"text": "soita 131052-308T"}, 600),
        ("ring", {"loud": True}, 600),
        ("ring", {}, 0),
    ],
)
def test_bad_commands_are_refused(name: str, args: dict, ttl: int) -> None:
    with pytest.raises(InvalidInput):
        IssueCommand("tab-001", name, args, ttl)
