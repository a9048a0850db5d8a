"""Administrators' users, units and policies.

Users: `service_layer.people`; kiosk profile, loan rules, agreements and usage collection: the
same handlers as the REST API (`loans.set_kiosk_profile`, `loans.set_rules`,
`loans.add_agreement`, `unit_admin.set_usage_collection`).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, InvalidInput
from server.domain.commands import SetUserActive
from server.domain.loans import LoanRules
from server.domain.model import Role, check_text
from server.domain.policy import KioskProfile
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import form_error, principal, render, roles
from server.entrypoints.console.documents import AGREEMENT_LANGUAGES, agreement_language_name
from server.entrypoints.console.i18n import _
from server.entrypoints.input_guard import whole_number
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import loans, people, unit_admin

Page = tuple[str, int] | BaseResponse
RULE_FIELDS = tuple(LoanRules.__dataclass_fields__)


def parse_rules(form: Any) -> tuple[str, LoanRules]:
    """Loan rules from a form: whole numbers, checked like the API's PUT .../loan-rules."""
    values: dict[str, int] = {}
    errors: list[dict[str, object]] = []
    for name in RULE_FIELDS:
        low = 0 if name == "max_renewals" else 1
        number = whole_number(form.get(name, "").strip(), low, 3650)
        if number is None:
            errors.append({"field": name, "message": _("A whole number %(lo)s–3650", lo=low)})
        else:
            values[name] = number
    if errors:
        raise InvalidInput("invalid loan rules", errors)
    model = check_text("model", form.get("model", ""), max_len=100, required=False)
    return model, LoanRules(**values)


def parse_profile(form: Any) -> KioskProfile:
    """A kiosk profile from a form: apps and shortcuts one per line (label | url | category)."""
    apps = tuple(a.strip() for a in form.get("apps", "").splitlines() if a.strip())
    shortcuts = []
    for number, line in enumerate(form.get("shortcuts", "").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3:
            raise InvalidInput(
                "invalid shortcut",
                [
                    {
                        "field": "shortcuts",
                        "message": _("Line %(n)s: label | url | category", n=number),
                    }
                ],
            )
        shortcuts.append({"label": parts[0], "url": parts[1], "category": parts[2]})
    return KioskProfile(apps, tuple(shortcuts), form.get("settings_locked") == "on")


@bp.route("/admin/users", methods=["GET", "POST"])
@roles(Role.ADMIN)
def users() -> Page:
    if request.method == "GET":
        return _users_page(200, {})
    form, svc = request.form, services()
    username = form.get("username", "").strip()
    try:
        user_id = people.create_user(
            svc.uow(),
            principal(),
            username,
            form.get("role", ""),
            tuple(form.getlist("units")),
            form.get("password", ""),
        )
    except DomainError as exc:
        return _users_page(http_status(exc), form_error(exc))
    flash(_("User %(name)s was created.", name=username), "info")
    return redirect(url_for("console.user_detail", user_id=user_id))


@bp.get("/admin/users/<int:user_id>")
@roles(Role.ADMIN)
def user_detail(user_id: int) -> Page:
    return _user_page(user_id, 200, {})


@bp.post("/admin/users/<int:user_id>/<action>")
@roles(Role.ADMIN)
def user_action(user_id: int, action: str) -> Page:
    svc, form, who = services(), request.form, principal()
    try:
        if action == "update":
            people.update_user(
                svc.uow(), who, user_id, form.get("role", ""), tuple(form.getlist("units"))
            )
            message = _("The role and units were saved.")
        elif action == "reactivate":
            people.set_active(svc.uow(), who, SetUserActive(user_id, True), svc.clock())
            message = _("The user was reactivated.")
        elif action == "unlock":
            people.unlock(svc.uow(), who, user_id)
            message = _("The account was unlocked.")
        elif action == "password":
            people.set_password(svc.uow(), who, user_id, form.get("password", ""), svc.clock())
            message = _("The new password was set; the user's sessions were ended.")
        else:
            abort(404)
    except DomainError as exc:
        return _user_page(user_id, http_status(exc), form_error(exc))
    flash(message, "info")
    return redirect(url_for("console.user_detail", user_id=user_id))


@bp.route("/admin/users/<int:user_id>/deactivate", methods=["GET", "POST"])
@roles(Role.ADMIN)
def user_deactivate(user_id: int) -> Page:
    """Deactivating ends sessions and revokes API tokens for good: confirmed, with a reason.
    A POST without the tick or the reason changes nothing and gets this page back."""
    if request.method == "GET":
        return _deactivate_page(user_id, 200, {})
    form, svc = request.form, services()
    errors = {}
    if form.get("confirm") != "yes":
        errors["confirm"] = _("Tick this box to confirm.")
    if not form.get("reason", "").strip():
        errors["reason"] = _("Say why: a reason is required.")
    if errors:
        flash(_("Nothing was changed: fill in the marked fields to confirm."), "error")
        return _deactivate_page(user_id, 422, errors)
    try:
        cmd = SetUserActive(user_id, False, form.get("reason", ""))
        people.set_active(svc.uow(), principal(), cmd, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        return _deactivate_page(user_id, http_status(exc), form_error(exc))
    flash(_("The user was deactivated: signed out, API tokens revoked."), "info")
    return redirect(url_for("console.user_detail", user_id=user_id))


@bp.route("/admin/units", methods=["GET", "POST"])
@roles(Role.ADMIN)
def unit_settings() -> Page:
    if request.method == "GET":
        return _units_page(200, {})
    form = request.form
    try:
        version = check_text("version", form.get("version", ""), max_len=40)
        text = form.get("text", "").strip()
        if not text:
            raise InvalidInput(
                "the agreement text is required", [{"field": "text", "message": "required"}]
            )
        language = form.get("language", "fi")
        loans.add_agreement(services().uow(), principal(), version, text, language)
    except DomainError as exc:
        return _units_page(http_status(exc), form_error(exc))
    name = agreement_language_name(language)
    flash(
        _("Agreement version %(v)s was published in %(language)s.", v=version, language=name),
        "info",
    )
    return redirect(url_for("console.unit_settings"))


@bp.get("/admin/units/<code>")
@roles(Role.ADMIN)
def unit_detail(code: str) -> Page:
    return _unit_page(code, 200, {})


@bp.post("/admin/units/<code>/<part>")
@roles(Role.ADMIN)
def unit_save(code: str, part: str) -> Page:
    svc, form, who = services(), request.form, principal()
    try:
        if part == "name":
            unit_admin.rename_unit(svc.uow(), who, code, form.get("name", ""))
        elif part == "kiosk":
            loans.set_kiosk_profile(svc.uow(), who, code, parse_profile(form), svc.clock())
        elif part == "rules":
            model, rules = parse_rules(form)
            loans.set_rules(svc.uow(), who, code, model, rules)
        elif part == "usage":
            enabled = form.get("usage_collection") == "on"
            unit_admin.set_usage_collection(svc.uow(), who, code, enabled, svc.clock(), "console")
        else:
            abort(404)
    except DomainError as exc:
        return _unit_page(code, http_status(exc), form_error(exc), form)
    flash(_("Saved."), "info")
    return redirect(url_for("console.unit_detail", code=code))


def _users_page(status: int, errors: dict[str, str]) -> Page:
    svc = services()
    found = people.users_page(svc.uow(), principal())
    return render(
        "admin/users.html",
        status,
        users=found.users,
        units=found.units,
        roles=[r.value for r in Role],
        errors=errors,
        form=request.form,
        now=svc.clock(),
    )


def _user_page(user_id: int, status: int, errors: dict[str, str]) -> Page:
    svc = services()
    found = people.user_page(svc.uow(), principal(), user_id)
    return render(
        "admin/user.html",
        status,
        user=found.user,
        member={u.code for u in found.user.units},
        units=found.units,
        roles=[r.value for r in Role],
        errors=errors,
        now=svc.clock(),
    )


def _deactivate_page(user_id: int, status: int, errors: dict[str, str]) -> Page:
    found = people.user_page(services().uow(), principal(), user_id)
    return render(
        "admin/deactivate.html",
        status,
        user=found.user,
        errors=errors,
        form=request.form,
    )


def _units_page(status: int, errors: dict[str, str]) -> Page:
    found = unit_admin.units_page(services().uow(), principal())
    return render(
        "admin/units.html",
        status,
        units=found.units,
        agreements=found.agreements,
        agreement_languages=AGREEMENT_LANGUAGES,
        errors=errors,
        form=request.form,
    )


def unit_values(found: unit_admin.UnitSettings) -> dict[str, Any]:
    """The unit page's form values as stored: the name, the kiosk profile, the rules for every
    model (the defaults when none are set)."""
    base = next((r for r in found.rules if r.model == ""), None)
    rules = {n: getattr(base, n) if base else getattr(LoanRules(), n) for n in RULE_FIELDS}
    profile = found.profile or KioskProfile()
    return {
        "name": found.unit.name,
        "apps": "\n".join(profile.apps),
        "shortcuts": "\n".join(
            f"{s['label']} | {s['url']} | {s['category']}" for s in profile.shortcuts
        ),
        "settings_locked": profile.settings_locked,
        "model": "",
        **{k: str(v) for k, v in rules.items()},
    }


def _unit_page(code: str, status: int, errors: dict[str, str], form: Any = None) -> Page:
    found = unit_admin.unit_settings(services().uow(), principal(), code)
    values = unit_values(found)
    if form is not None:
        values.update({k: form.get(k, "") for k in values if k in form})
    return render(
        "admin/unit.html",
        status,
        unit=found.unit,
        rules=found.rules,
        values=values,
        fields=RULE_FIELDS,
        errors=errors,
    )
