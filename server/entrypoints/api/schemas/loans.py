"""Models of the loan routes, a unit's loan rules and kiosk profile (api/loans.py).

A loan step's body is made from its row of STEP_INPUT (web/loan_input.py): the fields it takes
besides `reason`, typed here once by name (`kit` by the step: handed over or checked back),
and `reason` required where the domain requires one (REASON_REQUIRED).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, create_model

from server.domain.agreements import LANGUAGES as AGREEMENT_LANGUAGES
from server.domain.loan_commands import CONDITIONS, KIT_KINDS, REASON_REQUIRED
from server.domain.loans import MAX_RULE_DAYS, LoanAction, LoanState
from server.domain.policy import CATEGORIES
from server.entrypoints.api.schemas.devices import TEXT_MESSAGE, Reason
from server.entrypoints.api.spec import ABSENT, Answer, Body, Flag, Query, QueryText, Says
from server.entrypoints.input_guard import INT_MAX
from server.entrypoints.web.loan_input import STEP_INPUT
from server.service_layer.views import MAX_PAGE

STATES = [s.value for s in LoanState]
KINDS = sorted(KIT_KINDS)
CHECKED = sorted(CONDITIONS)
CLIENT_REF = "^[A-Za-z0-9][A-Za-z0-9_.:/-]{2,63}$"


def _among(allowed: list[str]) -> Any:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _states(value: str | None) -> str | None:
    if value and set(value.split(",")) - {"", *STATES}:
        raise ValueError(", ".join(STATES))
    return value


# --- answers ---------------------------------------------------------------------------------


class LoanReferral(Answer):
    from_unit: str | None
    from_unit_name: str | None
    by: str | None = Field(description="The referring professional's user name.")
    reason: str | None


class Loan(Answer):
    loan_id: int
    state: Annotated[str, WithJsonSchema({"enum": STATES})]
    unit: str
    client_ref: str = Field(description="Pseudonymous reference only.")
    device_id: str | None
    professionals: list[str] = ABSENT
    requested_at: datetime | None = None
    handed_over_at: datetime | None = None
    due_at: datetime | None
    overdue: bool
    overdue_days: float = ABSENT
    escalation: Literal["none", "reminder", "restricted"]
    hold: bool = ABSENT
    renewals: int = ABSENT
    max_renewals: int = ABSENT
    paused_reason: str | None = None
    ended_at: datetime | None = None
    queue_position: int | None = Field(
        description="1 = next in the unit's queue; null unless requested."
    )
    referral: LoanReferral | None = Field(
        None, description="Where a referred request came from; null: filed in its own unit."
    )
    cancel_reason: str | None = Field(None, description="Why it was cancelled or declined.")


class Agreement(Answer):
    version: str = ABSENT
    language: Annotated[str, WithJsonSchema({"enum": list(AGREEMENT_LANGUAGES)})] = Field(
        ABSENT, description="The language of the text the client accepted."
    )
    accepted_at: datetime | None = None


class KitItem(Answer):
    id: int = ABSENT
    kind: Annotated[str, WithJsonSchema({"enum": KINDS})] = ABSENT
    label: str = ABSENT
    returned_condition: Annotated[str, WithJsonSchema({"enum": CHECKED})] | None = None


class LoanDetail(Loan):
    """A loan with its agreement and kit."""

    agreement: Agreement | None
    kit: list[KitItem]


class LoanList(Answer):
    items: list[Loan]
    next_cursor: str | None


class Worklist(Answer):
    items: list[Loan]


class WipeRecorded(Answer):
    device_id: str
    lifecycle_state: str


class AgreementPublished(Answer):
    version: str


class KioskProfileSet(Answer):
    """The profile in effect (apps, shortcuts, settings_locked) and how many devices got a new
    desired state."""

    model_config = ConfigDict(extra="allow")

    unit: str = ABSENT
    devices_updated: int = ABSENT


class RuleSet(Answer):
    """One set of a unit's loan rules: model "" is the unit's default set."""

    model: str
    loan_days: int
    renewal_days: int
    max_renewals: int
    reminder_after_days: int
    restrict_after_days: int
    offline_lock_after_days: int


class RuleSets(Answer):
    """Every loan-rule set of a unit (the default set "" first) and the models of its tablets
    (a set for a model none of them has applies to no loan yet)."""

    unit: str
    items: list[RuleSet]
    models: list[str]


class RuleSetQuery(Query):
    model: Annotated[
        QueryText,
        Says(TEXT_MESSAGE.format(100)),
        Field(description='"" or absent: the default set'),
    ] = None


class LoanRulesSet(Answer):
    """The rules in effect."""

    model_config = ConfigDict(extra="allow")

    unit: str = ABSENT
    model: str = ABSENT


# --- requests --------------------------------------------------------------------------------


class LoanQuery(Query):
    unit: QueryText = None
    state: Annotated[QueryText, AfterValidator(_states), Says(", ".join(STATES))] = None
    overdue: Flag = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE), Says(f"an integer 1–{MAX_PAGE}")] = 100
    cursor: Annotated[
        int | None,
        Field(ge=0, le=INT_MAX),
        Says(f"an integer 0–{INT_MAX}"),
        WithJsonSchema({"type": "string"}),
    ] = None


class NoWorklistQuery(Query):
    """No query parameters at all."""


class LoanRequest(Body):
    unit: str
    # The shape is the domain's check, so that an identity code is refused as one.
    client_ref: Annotated[str, WithJsonSchema({"type": "string", "pattern": CLIENT_REF})] = Field(
        description="Pseudonymous; a henkilötunnus is refused."
    )
    professionals: Annotated[list[str], Field(max_length=2), Says("user names, at most two")] = []


class Hold(Body):
    hold: Annotated[bool, Says("true or false")]
    reason: Reason = Field(
        None, description="Recorded in the audit log. Never a name or identity code."
    )


class WipeRecord(Body):
    method: Annotated[Literal["manual"], Says("manual")]
    reason: Reason = Field(
        None, description="Recorded in the audit log. Never a name or identity code."
    )


class AgreementAdd(Body):
    version: str
    text: str
    language: Annotated[
        str,
        _among(list(AGREEMENT_LANGUAGES)),
        Says(f"one of {', '.join(AGREEMENT_LANGUAGES)}"),
        WithJsonSchema({"enum": list(AGREEMENT_LANGUAGES)}),
    ] = Field("fi", description="Each language of a version is published once.")


class Shortcut(Body):
    label: Annotated[str, Field(max_length=60)]
    url: str
    category: Annotated[
        str, _among(sorted(CATEGORIES)), WithJsonSchema({"enum": sorted(CATEGORIES)})
    ]


class KioskProfileBody(Body):
    apps: Annotated[
        list[str],
        Field(
            max_length=64,
            description="App identifiers: Android package names or Linux desktop ids "
            "(fi.esavo.video). A refusal names each bad one: field apps.N, line N+1, code.",
        ),
        Says("up to 64 app identifiers"),
    ] = []
    shortcuts: Annotated[
        list[Shortcut],
        Field(max_length=32),
        Says(
            f"at most 32 of {{label ≤ 60, url (https:// or app:), category one of "
            f"{sorted(CATEGORIES)}}}"
        ),
    ] = []
    settings_locked: bool = True


Days = Annotated[int, Field(ge=1, le=MAX_RULE_DAYS), Says(f"1–{MAX_RULE_DAYS}")]


class LoanRulesBody(Body):
    """The rules to set (absent ones keep their defaults), for one device model or all."""

    model: Annotated[str, Says(TEXT_MESSAGE.format(100))] = ""
    loan_days: Days = ABSENT
    renewal_days: Days = ABSENT
    max_renewals: Annotated[int, Field(ge=0, le=MAX_RULE_DAYS), Says(f"0–{MAX_RULE_DAYS}")] = ABSENT
    reminder_after_days: Days = ABSENT
    restrict_after_days: Days = ABSENT
    offline_lock_after_days: Days = ABSENT


# --- a loan's steps --------------------------------------------------------------------------

REASON = "Recorded in the audit log. Never a name or identity code."


class HandedOver(Body):
    kind: Annotated[
        str, _among(KINDS), Says(f"one of {', '.join(KINDS)}"), WithJsonSchema({"enum": KINDS})
    ]
    label: str = ABSENT


class CheckedBack(Body):
    id: Annotated[int, Field(ge=1, le=INT_MAX), Says("a kit item id")]
    condition: Annotated[
        str,
        _among(CHECKED),
        Says(f"one of {', '.join(CHECKED)}"),
        WithJsonSchema({"enum": CHECKED}),
    ]


# The fields a step takes besides its reason (STEP_INPUT names them), with their types.
STEP_FIELDS: dict[str, Any] = {
    "device_id": (str, ...),
    "agreement_version": (str, ...),
    "agreement_language": (
        Annotated[
            str,
            _among(list(AGREEMENT_LANGUAGES)),
            Says(f"one of {', '.join(AGREEMENT_LANGUAGES)}"),
            WithJsonSchema(
                {
                    "enum": list(AGREEMENT_LANGUAGES),
                    "description": "The text the client chose; default: fi when the version "
                    "has it.",
                }
            ),
        ],
        ABSENT,
    ),
    "agreement_accepted": (
        Annotated[Literal[True], Says("true, with agreement_version")],
        ...,
    ),
}
# Why a step goes against the queue: a renewal although the unit's queue cannot be served from
# stock, a device for a request while older ones wait. Checked by the domain when it matters.
STEP_FIELDS["override_reason"] = (
    Annotated[str, Field(min_length=1, max_length=500), Says("1–500 characters")],
    Field(
        ABSENT,
        description="Renew although more clients of the unit wait than wiped devices are in "
        "stock (refused with 409 without it). Recorded in the audit log. Never a name or "
        "identity code.",
    ),
)
STEP_FIELDS["skip_reason"] = (
    Annotated[str, Field(min_length=1, max_length=500), Says("1–500 characters")],
    Field(
        ABSENT,
        description="Required when older requests of the unit wait (refused with 422 without "
        "it): why this client is served first. Recorded in the audit log. Never a name or "
        "identity code.",
    ),
)
STEP_KIT: dict[LoanAction, Any] = {
    LoanAction.HAND_OVER: (list[HandedOver], ABSENT),
    LoanAction.RETURN: (list[CheckedBack], ABSENT),
}
OPTIONAL_REASON = (
    Annotated[str, Field(max_length=500), Says(TEXT_MESSAGE.format(500))],
    Field(ABSENT, description=REASON),
)
NEEDED_REASON = (
    Annotated[str, Field(min_length=1, max_length=500), Says("required: 1–500 characters")],
    Field(
        description="Required: why. Recorded in the audit log and the loan's history. Never a "
        "name or identity code."
    ),
)


def step_body(action: LoanAction) -> type[Body]:
    """The body model of a loan step, from its row of STEP_INPUT."""
    segment, fields = STEP_INPUT[action]
    definitions: dict[str, Any] = {
        name: STEP_KIT[action] if name == "kit" else STEP_FIELDS[name] for name in sorted(fields)
    }
    definitions["reason"] = NEEDED_REASON if action in REASON_REQUIRED else OPTIONAL_REASON
    name = f"{segment.capitalize()}Step"
    return create_model(name, __base__=Body, **definitions)
