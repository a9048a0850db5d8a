"""What a tablet should be: the desired state computed from its loan and lifecycle.

The loan record drives it. Screens are neutral: no text here ever names the service, the
unit or the client, because on a lost or borrowed tablet that alone can reveal health data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lainaamo.errors import InvalidInput
from server.domain.kiosk_input import personal_data_fields, profile_problems
from server.domain.loans import Escalation, LoanRules, LoanState
from server.domain.model import LifecycleState
from server.domain.privacy import identity_code_refused

MESSAGES = {
    "return_to_it": "Tämä laite on palautettava. / Denna enhet ska returneras. / "
    "Please return this device.",
    "lost": "Tämä laite on kadonnut. Soita: / Denna enhet har förlorats. Ring: / "
    "This device is lost. Call:",
    "reminder": "Laina-aika on päättynyt. / Lånetiden har gått ut. / The loan period has ended.",
    # A lock ordered by IT support: it says nothing of why (the reason stays on the server).
    "locked": "Tämä laite on lukittu. Soita: / Denna enhet är låst. Ring: / "
    "This device is locked. Call:",
}


CATEGORIES = frozenset({"chat", "appointment", "digipath", "group", "other"})


@dataclass(frozen=True)
class KioskProfile:
    """A unit's kiosk: allowed apps, home-screen shortcuts, whether settings are locked."""

    apps: tuple[str, ...] = ()
    shortcuts: tuple[dict[str, str], ...] = ()
    settings_locked: bool = True
    essential_categories: frozenset[str] = frozenset({"chat", "appointment"})

    def __post_init__(self) -> None:
        personal = personal_data_fields(self.apps, self.shortcuts)
        if personal:
            raise identity_code_refused(personal)
        # Line by line, naming each refused line and part (kiosk_input.py).
        problems = profile_problems(self.apps, self.shortcuts)
        if problems:
            raise InvalidInput(
                f"invalid kiosk profile: {problems[0].message}", [p.detail() for p in problems]
            )

    def as_policy(self, restricted: bool = False) -> dict[str, Any]:
        shortcuts = [
            s
            for s in self.shortcuts
            if not restricted or s["category"] in self.essential_categories
        ]
        return {
            "apps": [] if restricted else list(self.apps),
            "shortcuts": shortcuts,
            "settings_locked": True if restricted else self.settings_locked,
        }


@dataclass(frozen=True)
class DeviceSituation:
    """Everything the desired state depends on."""

    lifecycle: LifecycleState
    loan_state: LoanState | None = None
    escalation: Escalation = Escalation.NONE
    due_at: datetime | None = None
    rules: LoanRules = field(default_factory=LoanRules)
    profile: KioskProfile = field(default_factory=KioskProfile)
    support_phone: str | None = None
    override: dict[str, Any] | None = None  # explicit override by IT support
    hold: bool = False  # a counsellor's hold: no escalation, no offline lock
    usage: bool = False  # the loan's unit collects usage totals (docs/protocol.md §18)
    staff_lock: bool = False  # locked by IT support until a person unlocks it (staff_lock.py)
    # The loan's group sessions' next occurrences (domain/groups.py policy_slots): when and
    # where to join, never a title.
    groups: tuple[dict[str, str], ...] = ()


def compute_policy(situation: DeviceSituation) -> dict[str, Any]:
    """The policy to publish for a device in this situation.

    Precedence, first match wins: released or retired (unmanaged); lost (lost mode); a staff
    lock (over the loan and over any override); then what the loan and lifecycle say, with
    IT support's override merged over it.
    """
    s = situation
    policy = _by_loan(s)
    if s.override:
        policy = {**policy, **s.override}
    if s.staff_lock and not _unmanaged(s) and not _lost(s):
        # Nothing below a person's lock may lift it: not the loan, not an override.
        policy = {
            "mode": "locked",
            "message": MESSAGES["locked"],
            "support_phone": policy.get("support_phone", s.support_phone),
        }
    # Usage is collected only on a tablet on loan that runs its unit's kiosk, and only as its
    # unit decides: an override can neither switch it on nor keep it on.
    policy.pop("usage", None)
    if s.usage and policy.get("mode") in ("kiosk", "restricted") and s.loan_state in _COLLECTING:
        policy["usage"] = True
    # Groups are joined from the kiosk (restricted too: a group is an appointment); a locked,
    # lost or unmanaged tablet gets none, and neither does an override that leaves the kiosk.
    policy.pop("groups", None)
    if s.groups and policy.get("mode") in ("kiosk", "restricted"):
        policy["groups"] = [dict(slot) for slot in s.groups]
    return policy


def _unmanaged(s: DeviceSituation) -> bool:
    return s.lifecycle is LifecycleState.RELEASED or s.lifecycle is LifecycleState.RETIRED


def _lost(s: DeviceSituation) -> bool:
    return s.lifecycle is LifecycleState.LOST or s.loan_state is LoanState.LOST


def _by_loan(s: DeviceSituation) -> dict[str, Any]:
    """What the loan and the lifecycle say the device should be."""
    policy: dict[str, Any]
    if _unmanaged(s):
        policy = {"mode": "unmanaged"}
    elif _lost(s):
        policy = {"mode": "lost", "message": MESSAGES["lost"], "support_phone": s.support_phone}
    elif s.lifecycle is LifecycleState.ON_LOAN and s.loan_state in (
        LoanState.ON_LOAN,
        LoanState.PAUSED,
    ):
        restricted = s.escalation is Escalation.RESTRICTED
        policy = {
            "mode": "restricted" if restricted else "kiosk",
            "kiosk": s.profile.as_policy(restricted),
            "reminder": s.escalation >= Escalation.REMINDER,
            "message": MESSAGES["reminder"] if s.escalation >= Escalation.REMINDER else None,
            "support_phone": s.support_phone,
            "offline_lock_at": _offline_lock_at(s),
        }
    else:  # in stock, awaiting wipe, in repair: nobody should be using it
        policy = {
            "mode": "locked",
            "message": MESSAGES["return_to_it"],
            "support_phone": s.support_phone,
        }
    return policy


_COLLECTING = (LoanState.ON_LOAN, LoanState.PAUSED)


def _offline_lock_at(s: DeviceSituation) -> str | None:
    if s.due_at is None or s.loan_state is LoanState.PAUSED or s.hold:
        return None
    moment = s.due_at + timedelta(days=s.rules.offline_lock_after_days)
    return moment.isoformat().replace("+00:00", "Z")


def canonical(policy: dict[str, Any]) -> str:
    """A stable text of a policy, to tell whether it changed."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
