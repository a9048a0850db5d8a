"""Loan requests and actions, validated on construction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lainaamo.errors import InvalidInput
from server.domain.agreements import check_language
from server.domain.loans import LoanAction
from server.domain.model import check_device_id, check_text
from server.domain.privacy import check_client_ref, refuse_identifiers

KIT_KINDS = frozenset({"charger", "case", "sim", "headphones", "stylus", "other"})
CONDITIONS = frozenset({"ok", "damaged", "missing"})
# Steps that take something from the client or end the loan for good say why, in the console
# and the API alike; the reason goes to the audit log (free text, never an identity code).
REASON_REQUIRED: dict[LoanAction, str] = {
    LoanAction.CANCEL: "say why the request is cancelled",
    LoanAction.PAUSE: "say why the loan is paused (e.g. hospital stay)",
    LoanAction.REPORT_LOST: "say why the device is reported lost (e.g. stolen)",
    LoanAction.RELEASE: "say why the client keeps the device",
}


def free_text(name: str, value: str | None, max_len: int = 500) -> str | None:
    if value is None:
        return None
    return refuse_identifiers(name, check_text(name, value, max_len=max_len, required=False))


@dataclass(frozen=True)
class RequestLoan:
    unit: str
    client_ref: str
    # User names of the organisation, from any unit (the pair across health and social
    # services); empty: the requester, or for a referral nobody yet (the receiving unit's
    # professional who hands the tablet over becomes responsible).
    professionals: tuple[str, ...] = ()
    # A referral from another unit (domain/referrals.py): why, and the referrer's unit (code;
    # None: their only unit).
    referral_reason: str | None = None
    from_unit: str | None = None
    # Filed through the referral route: an ordinary request is refused rather than made.
    referral_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_ref", check_client_ref(self.client_ref))
        check_text("unit", self.unit, max_len=40)
        if self.from_unit is not None:
            check_text("from_unit", self.from_unit, max_len=40)
        if self.referral_reason is not None:
            reason = check_text(
                "referral_reason", self.referral_reason, max_len=200, required=False
            )
            object.__setattr__(self, "referral_reason", reason or None)
        check_professionals(self.professionals)


def check_professionals(names: Sequence[str]) -> None:
    """A loan names one or two different responsible professionals (none while a referral
    waits for the receiving unit)."""
    if len(names) > 2 or len(set(names)) != len(names):
        raise InvalidInput(
            "a loan names one or two responsible professionals",
            [{"field": "professionals", "message": "one or two different user names"}],
        )


@dataclass(frozen=True)
class KitLine:
    kind: str
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KIT_KINDS:
            raise InvalidInput(
                "unknown kit item",
                [{"field": "kit", "message": f"kind one of {sorted(KIT_KINDS)}"}],
            )
        object.__setattr__(self, "label", free_text("kit", self.label, 100) or "")


@dataclass(frozen=True)
class LoanStep:
    """One action on a loan with whatever that action needs."""

    loan_id: int
    action: LoanAction
    reason: str | None = None
    device_id: str | None = None  # assign; release (repeated as confirmation)
    agreement_version: str | None = None  # hand_over
    agreement_accepted: bool = False  # hand_over
    agreement_language: str | None = None  # hand_over; None: the version's default (fi)
    kit: tuple[KitLine, ...] = ()  # hand_over
    returned: dict[int, str] = field(default_factory=dict)  # return: kit item id → condition
    # renew: why the loan is renewed although the unit's queue cannot be served from stock
    override_reason: str | None = None
    # assign: why this request is served before older ones of its unit
    skip_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", free_text("reason", self.reason))
        for name, action in (
            ("override_reason", LoanAction.RENEW),
            ("skip_reason", LoanAction.ASSIGN),
        ):
            value = free_text(name, getattr(self, name))
            if value and self.action is not action:
                raise InvalidInput(
                    f"{name} is not used by this step", [{"field": name, "message": "not used"}]
                )
            object.__setattr__(self, name, value or None)
        if self.action in (LoanAction.ASSIGN, LoanAction.RELEASE):
            if self.device_id is None:
                message = (
                    "repeat the device id to confirm that the client keeps the device"
                    if self.action is LoanAction.RELEASE
                    else "which device to reserve"
                )
                raise InvalidInput(
                    "device_id is required", [{"field": "device_id", "message": message}]
                )
            check_device_id(self.device_id)
        if self.action is LoanAction.HAND_OVER:
            if not self.agreement_version or not self.agreement_accepted:
                raise InvalidInput(
                    "the handover needs the client's acceptance of the loan agreement",
                    [{"field": "agreement_accepted", "message": "true, with agreement_version"}],
                )
        if self.agreement_language is not None:
            check_language(self.agreement_language, "agreement_language")
        bad = {k: v for k, v in self.returned.items() if v not in CONDITIONS}
        if bad:
            raise InvalidInput(
                "unknown condition",
                [
                    {"field": "kit", "message": f"item {k}: one of ok, damaged, missing"}
                    for k in bad
                ],
            )
        if self.action in REASON_REQUIRED and not self.reason:
            raise InvalidInput(
                REASON_REQUIRED[self.action], [{"field": "reason", "message": "required"}]
            )


def check_returned_kit(kit: Mapping[int, str], returned: Mapping[int, str]) -> None:
    """A return checks every kit item lent with the loan, and only those.

    `kit`: the loan's items, id → kind; `returned`: id → condition found."""
    unknown = set(returned) - set(kit)
    if unknown:
        raise InvalidInput(
            "unknown kit items",
            [{"field": "kit", "message": f"no item {i} in this loan"} for i in sorted(unknown)],
        )
    unchecked = set(kit) - set(returned)
    if unchecked:
        raise InvalidInput(
            "check every kit item at return",
            [
                {"field": "kit", "message": f"item {i} ({kit[i]}) not checked"}
                for i in sorted(unchecked)
            ],
        )


def recorded_reason(*parts: str | None) -> str | None:
    """What a step records as its reason in the audit log: its reason and the reason it gave
    for an override or a queue skip, joined (each at most 500 characters, so the column, a
    text, holds them)."""
    given = [p for p in parts if p]
    return " / ".join(given) if given else None


class ReturnFormRefused(InvalidInput):
    """The return form misses a condition or has too long a note (details per form field)."""


def checked_return(
    kit: Mapping[int, str], tablet: str, found: Mapping[int, str], note: str | None
) -> tuple[dict[int, str], str | None]:
    """The console's return form: the tablet's condition, each kit item's (id → condition) and
    a note. Returns the items' conditions and the reason the return records; refuses with one
    detail per form field ("tablet", "kit-<id>", "note") whatever is missing or too long."""
    errors: list[dict[str, object]] = []
    if tablet not in CONDITIONS:
        errors.append({"field": "tablet", "message": "one of ok, damaged, missing"})
    errors += [
        {"field": f"kit-{item}", "message": "one of ok, damaged, missing"}
        for item in kit
        if found.get(item) not in CONDITIONS
    ]
    if len((note or "").strip()) > RETURN_NOTE_MAX:
        errors.append({"field": "note", "message": f"at most {RETURN_NOTE_MAX} characters"})
    if errors:
        raise ReturnFormRefused("check the condition of the tablet and of every kit item", errors)
    returned = {item: found[item] for item in kit}
    reason = return_reason(note, tablet, [(kind, returned[item]) for item, kind in kit.items()])
    return returned, reason


# The return form's note: short enough that the conditions found and the note together stay
# within a step's reason (500 characters, `free_text`).
RETURN_NOTE_MAX = 300


def return_reason(
    note: str | None, tablet: str | None = None, kit: Sequence[tuple[str, str]] = ()
) -> str | None:
    """What a return records as its reason (the loan's history shows it).

    Given the conditions found (the console's return form: the tablet's, and each kit item's
    as (kind, condition)), they come first, then the note, which is at most RETURN_NOTE_MAX
    characters. Without them (the API, which sends only the items' conditions, stored on the
    items) the reason is the note as sent. Either way `LoanStep` checks it as any reason."""
    if tablet is None and not kit:
        return note
    note = (note or "").strip()
    if len(note) > RETURN_NOTE_MAX:
        raise InvalidInput(
            "the return note is too long",
            [{"field": "note", "message": f"at most {RETURN_NOTE_MAX} characters"}],
        )
    summary = "; ".join([f"tablet: {tablet}"] + [f"{kind}: {cond}" for kind, cond in kit])
    return f"{summary}. {note}" if note else summary
