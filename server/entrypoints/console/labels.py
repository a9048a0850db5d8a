"""What a person reads for the codes the server keeps: device and loan states, commands and
their outcomes, audit actions and actors — translated, never the code itself.

The templates call these as globals (`lifecycle_label(…)`, `command_label(…)`, …). An unknown
code (a newer server's row, a typo) reads as a neutral translated phrase, so a person never sees
`on_loan` or `api:command:lock`; tests/integration/test_console_languages.py renders every page
in Finnish and Swedish and fails on any code shown.
"""

from __future__ import annotations

import re

from server.domain.device_commands import CommandState
from server.domain.loans import LoanState
from server.domain.model import LifecycleState
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.console.i18n import lazy_gettext as _l

LIFECYCLE = {
    LifecycleState.IN_STOCK: _l("In stock"),
    LifecycleState.ON_LOAN: _l("On loan"),
    LifecycleState.AWAITING_WIPE: _l("Awaiting wipe"),
    LifecycleState.IN_REPAIR: _l("In repair"),
    LifecycleState.LOST: _l("Lost"),
    LifecycleState.RETIRED: _l("Retired"),
    LifecycleState.RELEASED: _l("Released"),
}

LOAN_STATES = {  # the loan pages' own (lower-case) labels
    LoanState.REQUESTED: _l("requested"),
    LoanState.READY: _l("device reserved"),
    LoanState.ON_LOAN: _l("on loan"),
    LoanState.PAUSED: _l("paused"),
    LoanState.LOST: _l("lost"),
    LoanState.RETURNED: _l("returned"),
    LoanState.RELEASED_TO_CLIENT: _l("released to client"),
    LoanState.CANCELLED: _l("cancelled"),
}

COMMANDS = {
    "lock": _l("Lock"),
    "unlock": _l("Unlock"),
    "ring": _l("Ring"),
    "message": _l("Message"),
    "reboot": _l("Restart"),
    "sync": _l("Update settings"),
    "wipe": _l("Wipe"),
    "release": _l("Release from management"),
}

COMMAND_STATES = {
    CommandState.QUEUED: _l("Waiting to be sent"),
    CommandState.SENT: _l("Sent"),
    CommandState.RECEIVED: _l("Received by the tablet"),
    CommandState.DONE: _l("Carried out"),
    CommandState.FAILED: _l("Failed"),
    CommandState.EXPIRED: _l("Expired"),
    CommandState.REJECTED: _l("Refused by the tablet"),
    CommandState.CANCELLED: _l("Cancelled"),
}

# Audit actions without their source ("console:", "api:", …): subject and verb.
ACTIONS = {
    "auth:sign_in": _l("Signed in"),
    "auth:sign_in_failed": _l("Sign-in failed"),
    "auth:sign_in_refused": _l("Sign-in refused (account locked or passwords off)"),
    "auth:sso_refused": _l("Single sign-on refused"),
    "auth:break_glass": _l("Break-glass password sign-in"),
    "auth:sign_out": _l("Signed out"),
    "auth:password_accepted": _l("Password accepted (second factor due)"),
    "auth:reauth": _l("Confirmed who they are again"),
    "auth:reauth_failed": _l("Confirming who they are failed"),
    "auth:reauth_refused": _l("Confirming who they are refused (account locked)"),
    "auth:totp_enrolment_started": _l("Second factor set-up begun"),
    "auth:totp_confirm_failed": _l("Second factor set-up: wrong code"),
    "auth:totp_enabled": _l("Second factor turned on"),
    "auth:totp_disabled": _l("Second factor turned off"),
    "auth:second_factor_failed": _l("Wrong second-factor code"),
    "auth:recovery_codes_created": _l("Recovery codes made"),
    "auth:recovery_code_used": _l("Recovery code used"),
    "user:second_factor_reset": _l("Second factor turned off by an administrator"),
    "user:sso_create": _l("User added at their first single sign-on"),
    "user:sso_update": _l("Role or units changed by the identity provider's groups"),
    "user:sso_remove": _l("Deactivated: in none of the mapped groups"),
    "user:sso_linked": _l("Local account linked to single sign-on"),
    "user:break_glass": _l("Break-glass account set"),
    "auth:token:create": _l("API token created"),
    "token:revoke": _l("API token revoked"),
    "user:create": _l("User added"),
    "user:update": _l("User changed"),
    "user:deactivate": _l("User deactivated"),
    "user:password_change": _l("Password changed"),
    "organisation:create": _l("Organisation created"),
    "unit:create": _l("Unit created"),
    "unit:rename": _l("Unit renamed"),
    "unit:usage_collection": _l("Usage collection changed"),
    "agreement:create": _l("Agreement text added"),
    "device:create": _l("Tablet added"),
    "device:update": _l("Tablet details changed"),
    "device:import": _l("Tablet imported"),
    "device:export": _l("Tablet list exported"),
    "device:enroll": _l("Tablet enrolled"),
    "device:lock": _l("Locked by staff"),
    "device:unlock": _l("Staff lock lifted"),
    "device:wipe_recorded": _l("Wipe recorded by staff"),
    "device:wiped": _l("Tablet reported it was wiped"),
    "device:desired_override": _l("Settings overridden"),
    "device:sequence_reset": _l("Message counter reset"),
    "device_credential:revoke": _l("Tablet password revoked"),
    "enrollment_token:create": _l("Enrollment code created"),
    "enrollment_token:revoke": _l("Enrollment code revoked"),
    "kiosk_profile:set": _l("Kiosk profile changed"),
    "loan_rules:set": _l("Loan rules changed"),
    "loan_rules:delete": _l("Loan rules removed"),
    "loan:list": _l("Loan list viewed"),
    "loan:view": _l("Loan viewed"),
    "loan:request": _l("Loan requested"),
    "loan:refer": _l("Referred from another unit"),
    "loan:professionals": _l("Responsible professionals named"),
    "referral:list": _l("Referrals viewed"),
    "loan:assign": _l("Tablet assigned"),
    "loan:hand_over": _l("Handed over"),
    "loan:renew": _l("Renewed"),
    "loan:pause": _l("Paused"),
    "loan:resume": _l("Resumed"),
    "loan:return": _l("Returned"),
    "loan:report_lost": _l("Reported lost"),
    "loan:found": _l("Found"),
    "loan:cancel": _l("Cancelled"),
    "loan:overdue": _l("Became overdue"),
    "loan:hold": _l("Reminders held"),
    "loan:witness": _l("Signing witnessed"),
    "loan:keep_propose": _l("Proposed that the client keeps the device"),
    "loan:keep_withdraw": _l("Proposal to keep the device withdrawn"),
    "loan:keep_decline": _l("Proposal to keep the device declined"),
    "loan:keep_approve": _l("Approved: the client keeps the device"),
    "keep:list": _l("Open proposals to keep devices viewed"),
    "loan:note:add": _l("Contact note added"),
    "loan:follow_up:set": _l("Follow-up date set"),
    "worklist:view": _l("Worklist viewed"),
    "clients:anonymise": _l("Ended loans anonymised"),
    "report:export": _l("Report exported"),
    "webhook:create": _l("Webhook added"),
    "webhook:delete": _l("Webhook removed"),
    "command_finished": _l("Command finished"),
    "session:request": _l("Remote support requested"),
    "session:refused": _l("Remote support refused"),
    "session:offer": _l("Remote support offered"),
    "session:consent": _l("Client answered the consent question"),
    "session:connected": _l("Remote support connected"),
    "session:end": _l("Remote support ended"),
}

# Where an action came from (the first part of the action, or of a system actor).
SOURCES = {
    "api": _l("API"),
    "console": _l("Console"),
    "cli": _l("Command line"),
    "scheduler": _l("Lainaamo, automatically"),
    "background": _l("Lainaamo, automatically"),
    "ingest": _l("Lainaamo, from the tablet's report"),
    "agent": _l("The tablet"),
    "enrollment": _l("Enrollment"),
    "support": _l("Remote support"),
    "auth": _l("Sign-in"),
}


def lifecycle_label(state: str | None) -> str:
    if state is None:
        return "–"
    label = LIFECYCLE.get(state)  # type: ignore[call-overload]
    return str(label) if label is not None else _("Unknown state")


def loan_state_label(state: str | None) -> str:
    if state is None:
        return "–"
    label = LOAN_STATES.get(state)  # type: ignore[call-overload]
    return str(label) if label is not None else _("Unknown state")


def command_label(name: str) -> str:
    label = COMMANDS.get(name)
    return str(label) if label is not None else _("Command")


def command_state_label(state: str) -> str:
    label = COMMAND_STATES.get(state)  # type: ignore[call-overload]
    return str(label) if label is not None else _("Unknown state")


def audit_action_label(action: str) -> str:
    """ "console:loan:renew" → "Renewed"; "api:command:lock" → "Command: Lock"."""
    source, _sep, rest = action.partition(":")
    if source not in SOURCES:
        rest = action
    if rest.startswith("command:"):
        name = rest.removeprefix("command:")
        if name.startswith("bulk_"):
            return _("Command to several tablets: %(name)s", name=command_label(name[5:]))
        return _("Command: %(name)s", name=command_label(name))
    label = ACTIONS.get(rest)
    return str(label) if label is not None else _("Other event")


def audit_source_label(action: str) -> str:
    label = SOURCES.get(action.partition(":")[0])
    return str(label) if label is not None else ""


def actor_label(actor: str) -> str:
    """ "user:2:anna" → "anna"; "system:scheduler" → "Lainaamo, automatically"."""
    kind, _sep, rest = actor.partition(":")
    if kind == "user":
        return rest.partition(":")[2] or _("A user")
    if kind == "system":
        label = SOURCES.get(rest)
        return str(label) if label is not None else _("Lainaamo, automatically")
    if kind == "device":
        return _("Tablet %(device)s", device=rest)
    return _("Unknown")


KIT = {  # the loan pages' labels of kit kinds and conditions
    "tablet": _l("Tablet"),
    "charger": _l("Charger"),
    "case": _l("Case"),
    "sim": _l("SIM card"),
    "headphones": _l("Headphones"),
    "stylus": _l("Stylus"),
    "other": _l("Other"),
}
CONDITIONS = {"ok": _l("OK"), "damaged": _l("damaged"), "missing": _l("missing")}

# What a return records as its reason (domain/loan_commands.return_reason): the conditions
# found, "tablet: ok; charger: damaged", then ". " and the note, if any.
_FOUND = r"[a-z]+: (?:ok|damaged|missing)"
_RETURN_SUMMARY = re.compile(rf"(?P<found>{_FOUND}(?:; {_FOUND})*)(?:\. (?P<note>.*))?", re.S)


def history_reason(verb: str, reason: str | None) -> str:
    """A loan history entry's reason as a person reads it: a return's conditions found are
    written in the user's language; any other reason is the note a person typed."""
    if not reason:
        return ""
    found = _RETURN_SUMMARY.fullmatch(reason) if verb == "return" else None
    if found is None:
        return reason
    items = []
    for pair in found.group("found").split("; "):
        kind, _sep, condition = pair.partition(": ")
        kit, state = KIT.get(kind), CONDITIONS.get(condition)
        items.append(f"{kit if kit is not None else _('Other')}: {state}")
    summary = "; ".join(items)
    return f"{summary}. {found.group('note')}" if found.group("note") else summary


ERRORS = {
    400: _l("The request could not be understood. Go back and try again."),
    401: _l("Sign in to continue."),
    403: _l("You do not have the rights to open this page or do this."),
    404: _l("There is no such page, or it is not in your units."),
    405: _l("This page cannot be used that way. Go back and try again."),
    409: _l("This changed in the meantime. Reload the page and try again."),
    413: _l("The file is too large."),
    422: _l("The input was not accepted. Go back and check the form."),
    429: _l("Too many attempts. Wait a moment and try again."),
}


def error_message(status: int) -> str:
    label = ERRORS.get(status)
    if label is not None:
        return str(label)
    if status >= 500:
        return _("Something went wrong on the server. Try again; if it recurs, tell IT support.")
    return _("The request could not be done.")


GLOBALS = {
    "lifecycle_label": lifecycle_label,
    "loan_state_label": loan_state_label,
    "command_label": command_label,
    "command_state_label": command_state_label,
    "audit_action_label": audit_action_label,
    "audit_source_label": audit_source_label,
    "actor_label": actor_label,
    "history_reason": history_reason,
}
