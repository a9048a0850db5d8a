"""A lock ordered by a person is part of the desired state: the precedence of compute_policy,
the lock's own rules (who, twice, nothing to unlock, free text) and its neutral screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lainaamo.errors import Conflict, Forbidden, InvalidInput
from server.domain.loans import Escalation, LoanState
from server.domain.model import LifecycleState, Principal, Role
from server.domain.policy import MESSAGES, DeviceSituation, KioskProfile, compute_policy
from server.domain.staff_lock import (
    LockDevice,
    StaffLock,
    UnlockDevice,
    check_lock,
    check_role,
    check_unlock,
)

PHONE = "+358 15 000 0000"
DUE = datetime(2027, 1, 1, 9, tzinfo=UTC)
PROFILE = KioskProfile(
    ("fi.example.video",),
    ({"label": "Chat", "url": "https://chat.example/", "category": "chat"},),
)
L, S = LifecycleState, LoanState
ON_LOAN = DeviceSituation(
    L.ON_LOAN, S.ON_LOAN, due_at=DUE, profile=PROFILE, support_phone=PHONE, usage=True
)
STAFF_LOCKED = {"mode": "locked", "message": MESSAGES["locked"], "support_phone": PHONE}

# (situation, mode without a staff lock, mode with one: None for STAFF_LOCKED). The precedence,
# first match wins: released or retired (unmanaged), lost (lost mode), a staff lock, the loan.
TABLE = [
    ("in stock", DeviceSituation(L.IN_STOCK, support_phone=PHONE), "locked", None),
    ("awaiting wipe", DeviceSituation(L.AWAITING_WIPE, support_phone=PHONE), "locked", None),
    ("in repair", DeviceSituation(L.IN_REPAIR, support_phone=PHONE), "locked", None),
    ("on loan", ON_LOAN, "kiosk", None),
    ("paused", replace(ON_LOAN, loan_state=S.PAUSED), "kiosk", None),
    ("on hold", replace(ON_LOAN, hold=True), "kiosk", None),
    ("reminder", replace(ON_LOAN, escalation=Escalation.REMINDER), "kiosk", None),
    ("restricted", replace(ON_LOAN, escalation=Escalation.RESTRICTED), "restricted", None),
    ("lost loan", replace(ON_LOAN, lifecycle=L.LOST, loan_state=S.LOST), "lost", "lost"),
    ("lost device", DeviceSituation(L.LOST, support_phone=PHONE), "lost", "lost"),
    ("released", DeviceSituation(L.RELEASED, support_phone=PHONE), "unmanaged", "unmanaged"),
    ("retired", DeviceSituation(L.RETIRED, support_phone=PHONE), "unmanaged", "unmanaged"),
]


@pytest.mark.parametrize(
    ("situation", "unlocked_mode", "locked"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_the_precedence_of_a_staff_lock(
    situation: DeviceSituation, unlocked_mode: str, locked: str | None
) -> None:
    assert compute_policy(situation)["mode"] == unlocked_mode
    policy = compute_policy(replace(situation, staff_lock=True))
    if isinstance(locked, str):  # lost mode and unmanaged come before a staff lock
        assert policy == compute_policy(situation) and policy["mode"] == locked
    else:  # whatever the loan says: a neutral lock screen with the support phone, nothing else
        assert policy == STAFF_LOCKED


def test_an_override_cannot_lift_a_staff_lock() -> None:
    for override in (
        {"mode": "kiosk"},
        {"mode": "unmanaged"},
        {"mode": "kiosk", "kiosk": {"apps": ["x"]}, "message": "Tervetuloa"},
        {"usage": True, "offline_lock_at": None},
    ):
        situation = replace(ON_LOAN, staff_lock=True, override=override)
        assert compute_policy(situation) == STAFF_LOCKED, override
    # Only the support phone of an override is kept: the number on the lock screen.
    phone = replace(ON_LOAN, staff_lock=True, override={"support_phone": "+358 9 1"})
    assert compute_policy(phone)["support_phone"] == "+358 9 1"
    # Lifted, the override applies again.
    assert compute_policy(replace(ON_LOAN, override={"mode": "locked"}))["mode"] == "locked"


def test_nothing_that_moves_the_loan_lifts_a_staff_lock() -> None:
    """Kiosk profiles, loan rules, escalation, due dates: the policy stays the same one."""
    locked = replace(ON_LOAN, staff_lock=True)
    variants = [
        replace(locked, profile=KioskProfile(("fi.other.app",), (), False)),
        replace(locked, escalation=Escalation.RESTRICTED),
        replace(locked, due_at=DUE + timedelta(days=60)),
        replace(locked, hold=True),
        replace(locked, usage=False),
    ]
    assert all(compute_policy(v) == compute_policy(locked) == STAFF_LOCKED for v in variants)


def test_unlocked_it_goes_back_to_what_the_loan_says() -> None:
    restricted = replace(ON_LOAN, escalation=Escalation.RESTRICTED)
    assert compute_policy(replace(restricted, staff_lock=False)) == compute_policy(restricted)
    assert compute_policy(restricted)["mode"] == "restricted"
    assert compute_policy(restricted)["usage"] is True


def test_the_lock_screen_is_neutral() -> None:
    text = MESSAGES["locked"]
    assert len(text) <= 300  # the schema's limit
    for word in ("sosiaal", "mielenterv", "päihde", "palvelu", "asiakas", "service", "client"):
        assert word not in text.lower()


def test_only_administrators_and_it_support_lock() -> None:
    def who(role: Role) -> Principal:
        return Principal(1, "x", 1, role, frozenset())

    check_role(who(Role.ADMIN))
    check_role(who(Role.IT_SUPPORT))
    with pytest.raises(Forbidden):
        check_role(who(Role.COUNSELLOR))


def test_a_lock_is_set_once_and_lifted_only_when_there_is_one() -> None:
    lock = StaffLock("user:7:it@esavo.fi", DUE, "kadonnut laturi")
    assert lock.by_name == "it@esavo.fi"
    assert StaffLock("system:cli", DUE).by_name == "system:cli"
    check_lock("tab-001", None, L.ON_LOAN)
    check_lock("tab-001", None, L.LOST)  # recorded under lost mode, holds once found
    with pytest.raises(Conflict, match="already locked by it@esavo.fi"):
        check_lock("tab-001", lock, L.ON_LOAN)
    for gone in (L.RELEASED, L.RETIRED):
        with pytest.raises(Conflict, match="no longer managed"):
            check_lock("tab-001", None, gone)
    check_unlock("tab-001", lock)
    with pytest.raises(Conflict, match="no staff lock"):
        check_unlock("tab-001", None)


def test_the_reason_is_checked_free_text() -> None:
    assert LockDevice("tab-001", "  epäilty väärinkäyttö ").reason == "epäilty väärinkäyttö"
    assert LockDevice("tab-001", "   ").reason is None
    assert UnlockDevice("tab-001").reason is None
    for bad in ("asiakas 010203A123B", "x" * 501, "two\nlines"):
        with pytest.raises(InvalidInput):
            LockDevice("tab-001", bad)
        with pytest.raises(InvalidInput):
            UnlockDevice("tab-001", bad)
    with pytest.raises(InvalidInput):
        LockDevice("../etc", None)
