"""Administrators' users, units and policies.

Users: `service_layer.people`; kiosk profile, loan rules, agreements and usage collection: the
same handlers as the REST API (`loans.set_kiosk_profile`, `loans.set_rules`,
`loans.add_agreement`, `unit_admin.set_usage_collection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import Conflict, DomainError, InvalidInput
from server.domain import kiosk_input, privacy
from server.domain.commands import SetUserActive
from server.domain.loans import MAX_RULE_DAYS, LoanRules
from server.domain.model import Role, check_text
from server.domain.policy import KioskProfile
from server.entrypoints.console import core, reauth
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import form_error, principal, render, roles
from server.entrypoints.console.documents import AGREEMENT_LANGUAGES, agreement_language_name
from server.entrypoints.console.i18n import _, ngettext
from server.entrypoints.console.i18n import lazy_gettext as _l
from server.entrypoints.console.reports import usage_categories
from server.entrypoints.input_guard import whole_number
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import loans, people, second_factor, sso, unit_admin

Page = tuple[str, int] | BaseResponse
RULE_FIELDS = tuple(LoanRules.__dataclass_fields__)
RULE_LABELS = {
    "loan_days": _l("Loan length (days)"),
    "renewal_days": _l("Days added by a renewal"),
    "max_renewals": _l("Renewals at most"),
    "reminder_after_days": _l("Reminder after overdue (days)"),
    "restrict_after_days": _l("Restricted mode after overdue (days)"),
    "offline_lock_after_days": _l("Offline lock after due date (days)"),
}
EMPTY_ROWS = 3  # empty shortcut rows under the saved ones; "Add more rows" adds as many
MAX_ROWS = kiosk_input.MAX_SHORTCUTS + 8  # rows a form may post (more are not read)
# The launcher's mark of each category (agent/platform/kiosk/launcher.py), for the preview.
CATEGORY_MARKS = {
    "chat": "\u2709",
    "appointment": "\u260e",
    "digipath": "\u27a4",
    "group": "\u25cf\u25cf",
    "other": "\u2605",
}


class Refused(InvalidInput):
    """A refusal already in the reader's language (its message and its fields' messages)."""


def shown(exc: Refused) -> dict[str, str]:
    """Flash a console-side refusal as it is; its per-field messages for the form."""
    flash(str(exc), "error")
    return {str(e.get("field", "")): str(e.get("message", "")) for e in reversed(exc.errors)}


def parse_rules(form: Any) -> tuple[str, LoanRules]:
    """Loan rules from a form: whole numbers, checked like the API's PUT .../loan-rules; every
    refusal names the field and its limits, in the reader's language."""
    values: dict[str, int] = {}
    errors: list[dict[str, object]] = []
    for name in RULE_FIELDS:
        low = 0 if name == "max_renewals" else 1
        number = whole_number(form.get(name, "").strip(), low, MAX_RULE_DAYS)
        if number is None:
            message = _(
                "%(field)s: a whole number from %(lo)s to %(hi)s.",
                field=RULE_LABELS[name],
                lo=low,
                hi=MAX_RULE_DAYS,
            )
            errors.append({"field": name, "message": message})
        else:
            values[name] = number
    model = form.get("model", "").strip()
    if len(model) > 100:
        errors.append({"field": "model", "message": _("At most 100 characters.")})
    if not errors:
        try:
            return model, LoanRules(**values)
        except InvalidInput:
            # The only rule across fields (domain.loans.LoanRules): reminder, then restriction.
            message = _(
                "%(field)s: at least %(n)s, since the reminder comes first.",
                field=RULE_LABELS["restrict_after_days"],
                n=values["reminder_after_days"],
            )
            errors.append({"field": "restrict_after_days", "message": message})
    raise Refused(
        _(
            "The loan rules were not saved. %(problems)s",
            problems=" ".join(str(e["message"]) for e in errors),
        ),
        errors,
    )


@dataclass(frozen=True)
class ShortcutRow:
    """One row of the kiosk editor as posted (index: its place on the form)."""

    index: int
    label: str = ""
    url: str = ""
    category: str = ""
    remove: bool = False

    @property
    def blank(self) -> bool:
        return not self.label.strip() and not self.url.strip()


def posted_rows(form: Any) -> list[ShortcutRow]:
    """The shortcut rows a kiosk form posted (`rows` says how many it had)."""
    count = whole_number(form.get("rows", "").strip(), 0, MAX_ROWS) or 0
    return [
        ShortcutRow(
            i,
            form.get(f"label-{i}", "")[:200],
            form.get(f"url-{i}", "")[:600],
            form.get(f"category-{i}", "")[:40],
            # A listed row stays unless its "Keep" tick was taken off.
            f"listed-{i}" in form and form.get(f"keep-{i}") != "on",
        )
        for i in range(count)
    ]


def parse_profile(form: Any) -> KioskProfile:
    """A kiosk profile from the editor: apps one a line, shortcuts in rows (blank rows and rows
    marked for removal are left out). Refusals name the line or row and its field."""
    lines = [a.strip() for a in form.get("apps", "").splitlines() if a.strip()]
    kept = [r for r in posted_rows(form) if not r.remove and not r.blank]
    shortcuts = tuple(
        {"label": r.label.strip(), "url": r.url.strip(), "category": r.category} for r in kept
    )
    try:
        return KioskProfile(tuple(lines), shortcuts, form.get("settings_locked") == "on")
    except InvalidInput as exc:
        if str(exc) == privacy.REFUSED:
            message = _("Lainaamo stores no personal identity codes.")
            raise Refused(message, personal(kept, lines)) from None
        errors = kiosk_errors(exc.errors, lines, [r.index for r in kept])
        raise Refused(
            ngettext(
                "The kiosk profile was not saved: %(num)s problem, marked below.",
                "The kiosk profile was not saved: %(num)s problems, marked below.",
                len(errors),
            ),
            errors,
        ) from None


def personal(rows: list[ShortcutRow], apps: list[str]) -> list[dict[str, object]]:
    """The form's fields that hold an identity code, each with the one hint."""
    hint = _(
        "This looks like a personal identity code, which Lainaamo never stores: refer to the "
        "client only by the pseudonymous reference from the client information system."
    )
    fields = ["apps"] if any(privacy.contains_identity_code(a) for a in apps) else []
    for row in rows:
        for part in ("label", "url"):
            if privacy.contains_identity_code(getattr(row, part)):
                fields.append(f"{part}-{row.index}")
    return [{"field": f, "message": hint} for f in fields or ["shortcuts"]]


def kiosk_errors(
    details: list[dict[str, object]], apps: list[str], rows: list[int]
) -> list[dict[str, object]]:
    """The domain's refusals (kiosk_input.Problem details) as the form's fields and messages:
    all the apps' lines under `apps`, each shortcut part under `label-N`, `url-N`, `category-N`
    of its row on the form."""
    app_lines: list[str] = []
    errors: list[dict[str, object]] = []
    for detail in details:
        field, code = str(detail.get("field", "")), str(detail.get("code", ""))
        raw = detail.get("line")
        line = raw if isinstance(raw, int) else 0
        value = apps[line - 1] if field.startswith("apps.") and 0 < line <= len(apps) else ""
        message = kiosk_message(code, line, value)
        parts = field.split(".")
        if parts[0] == "apps":
            app_lines.append(message)
        elif len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            errors.append({"field": f"{parts[2]}-{rows[int(parts[1])]}", "message": message})
        elif len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < len(rows):
            errors.append({"field": f"label-{rows[int(parts[1])]}", "message": message})
        else:
            errors.append({"field": "shortcuts", "message": message})
    if app_lines:
        errors.insert(0, {"field": "apps", "message": " ".join(app_lines)})
    return errors


def kiosk_message(code: str, line: int, value: str) -> str:
    """A refusal of the kiosk editor in the reader's language (codes: domain.kiosk_input)."""
    k = kiosk_input
    if code == "app_id":
        return _(
            "Line %(line)s: “%(value)s” is not an app identifier. An identifier is like "
            "fi.esavo.video: letters, digits, _ or - in parts separated by dots, each part "
            "starting with a letter.",
            line=line,
            value=value[:80],
        )
    if code == "app_long":
        return _(
            "Line %(line)s: an app identifier is at most %(max)s characters.",
            line=line,
            max=k.APP_ID_MAX,
        )
    if code == "app_repeated":
        return _(
            "Line %(line)s: “%(value)s” is already on an earlier line.", line=line, value=value
        )
    if code == "too_many_apps":
        return _("At most %(max)s apps.", max=k.MAX_APPS)
    if code == "too_many_shortcuts":
        return _("At most %(max)s shortcuts.", max=k.MAX_SHORTCUTS)
    if code == "label_required":
        return _("Give the tile a label.")
    if code in ("label_long", "url_long"):
        limit = k.LABEL_MAX if code == "label_long" else k.URL_MAX
        return _("At most %(max)s characters.", max=limit)
    if code == "url_required":
        return _("Give the address the tile opens.")
    if code == "url_scheme":
        return _(
            "An address starting with https:// and a site, e.g. https://chat.example.fi/ "
            "(or app: and an allowed app's identifier)."
        )
    if code == "url_app":
        return _("After app: comes an app identifier, e.g. app:fi.esavo.video.")
    if code == "category":
        return _("Choose a category from the list.")
    return _("Fill in the label, the address and the category.")


@bp.route("/admin/users", methods=["GET", "POST"])
@roles(Role.ADMIN)
def users() -> Page:
    """The users (anyone may look); creating one needs a recent sign-in, and the page offers
    its form only then (else a way to confirm who you are first: nobody fills it twice)."""
    if request.method == "GET":
        return _users_page(200, {})
    asked = reauth.stale_identity()
    if asked is not None:
        return asked
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
    """The user; its forms (role, units, password, access) appear after a recent sign-in."""
    return _user_page(user_id, 200, {})


@bp.post("/admin/users/<int:user_id>/<action>")
@roles(Role.ADMIN)
@reauth.fresh
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
@reauth.fresh
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


@bp.post("/admin/users/<int:user_id>/second-factor/reset")
@roles(Role.ADMIN)
@reauth.fresh
def user_second_factor_reset(user_id: int) -> Page:
    """Turn off a user's second factor (a lost phone): ticked, else nothing changes."""
    svc = services()
    if request.form.get("confirm") != "yes":
        flash(_("Nothing was changed: fill in the marked fields to confirm."), "error")
        return _user_page(user_id, 422, {"confirm": _("Tick this box to confirm.")})
    try:
        second_factor.reset(svc.uow(), principal(), user_id, svc.clock())
    except second_factor.SsoAccount:
        flash(_("This user's identity provider handles their second factor."), "error")
        return _user_page(user_id, 409, {})
    except Conflict as exc:
        if exc.why is second_factor.Why.OWN_ACCOUNT:
            flash(_("Turn off your own second factor on your account page."), "error")
        else:
            flash(_("This user has no second factor to turn off."), "error")
        return _user_page(user_id, 409, {})
    flash(
        _(
            "The second factor was turned off. The user signs in with the password and sets "
            "it up again."
        ),
        "info",
    )
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
    """The unit's settings; `?rules=<model>` opens that rule set in the rules form, `?rules=new`
    a new set for a device model."""
    return _unit_page(code, 200, {})


@bp.post("/admin/units/<code>/<part>")
@roles(Role.ADMIN)
def unit_save(code: str, part: str) -> Page:
    svc, form, who = services(), request.form, principal()
    anchor = ""
    try:
        if part == "name":
            unit_admin.rename_unit(svc.uow(), who, code, form.get("name", ""))
        elif part == "kiosk":
            if form.get("more"):  # "Add more rows": the same form back, nothing saved
                return _unit_page(code, 200, {}, form, more=EMPTY_ROWS)
            loans.set_kiosk_profile(svc.uow(), who, code, parse_profile(form), svc.clock())
            anchor = "kiosk-heading"
        elif part == "rules":
            model, rules = parse_rules(form)
            replaces = form.get("replaces") if "replaces" in form else None
            try:
                saved = unit_admin.save_rules(svc.uow(), who, code, model, rules, replaces)
            except InvalidInput as exc:
                raise Refused(
                    _("The loan rules were not saved: check the model."),
                    [{"field": "model", "message": _("Plain text on one line, no identity code.")}]
                    if any(e.get("field") == "model" for e in exc.errors)
                    else exc.errors,
                ) from None
            if not saved.known_model:
                flash(
                    _(
                        "No tablet of this unit is of model “%(model)s”: these rules apply only "
                        "once one is. Check the spelling against the models listed.",
                        model=saved.model,
                    ),
                    "error",
                )
            anchor = "rules-heading"
        elif part == "rules-delete":
            model = form.get("model", "")
            unit_admin.delete_rules(svc.uow(), who, code, model)
            flash(_("The loan rules were removed.") + " " + _rules_name(model), "info")
            return redirect(url_for("console.unit_detail", code=code, _anchor="rules-heading"))
        elif part == "usage":
            enabled = form.get("usage_collection") == "on"
            unit_admin.set_usage_collection(svc.uow(), who, code, enabled, svc.clock(), "console")
        else:
            abort(404)
    except Refused as exc:
        return _unit_page(code, 422, shown(exc), form)
    except DomainError as exc:
        if part == "rules-delete" and http_status(exc) == 404:
            raise
        return _unit_page(code, http_status(exc), form_error(exc), form)
    flash(_("Saved."), "info")
    return redirect(url_for("console.unit_detail", code=code, _anchor=anchor or None))


def _rules_name(model: str) -> str:
    if model:
        return _("Rules for model %(model)s.", model=model)
    return _("The unit's default rules (every model).")


def _users_page(status: int, errors: dict[str, str]) -> Page:
    svc = services()
    found = people.users_page(svc.uow(), principal())
    return render(
        "admin/users.html",
        status,
        users=found.users,
        units=found.units,
        sign_in=sso.sign_in_summary(svc.uow(), svc.sso, principal()),
        fresh=core.recent_identity(),
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
        factor=second_factor.admin_state(svc.uow(), principal(), user_id),
        member={u.code for u in found.user.units},
        fresh=core.recent_identity(),
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


def unit_values(found: unit_admin.UnitSettings, model: str | None = "") -> dict[str, Any]:
    """The unit page's form values as stored: the name, the kiosk profile, and the rules of the
    set being edited (`model`; None: a new set), else of the unit's default set, else the
    built-in defaults."""
    chosen = next((r for r in found.rules if model is not None and r.model == model), None)
    base = chosen or next((r for r in found.rules if r.model == ""), None)
    rules = {n: getattr(base, n) if base else getattr(LoanRules(), n) for n in RULE_FIELDS}
    profile = found.profile or KioskProfile()
    return {
        "name": found.unit.name,
        "apps": "\n".join(profile.apps),
        "settings_locked": profile.settings_locked,
        "model": chosen.model if chosen else "",
        **{k: str(v) for k, v in rules.items()},
    }


def _rows(found: unit_admin.UnitSettings, form: Any, more: int) -> list[ShortcutRow]:
    """The editor's rows: as posted when the form comes back (and `more` empty ones when asked
    for), else as saved and a few empty ones."""
    if form is not None and "rows" in form:
        rows = [r for r in posted_rows(form) if not r.remove]
        extra = more or (0 if rows and rows[-1].blank else EMPTY_ROWS)
    else:
        saved = found.profile.shortcuts if found.profile else ()
        rows = [ShortcutRow(0, s["label"], s["url"], s["category"]) for s in saved]
        extra = EMPTY_ROWS
    rows = [ShortcutRow(i, r.label, r.url, r.category) for i, r in enumerate(rows)]
    extra = max(0, min(extra, MAX_ROWS - len(rows)))
    return rows + [ShortcutRow(len(rows) + i) for i in range(extra)]


def _unit_page(
    code: str, status: int, errors: dict[str, str], form: Any = None, more: int = 0
) -> Page:
    found = unit_admin.unit_settings(services().uow(), principal(), code)
    wanted = request.args.get("rules")
    editing = None if wanted == "new" else (wanted or "")
    if form is not None and "replaces" in form:
        editing = form.get("replaces", "")
    if editing and not any(r.model == editing for r in found.rules):
        editing = ""  # a set that is gone: the default one
    values = unit_values(found, editing)
    if form is not None:
        values.update({k: form.get(k, "") for k in values if k in form})
        if "apps" in form and "settings_locked" not in form:
            values["settings_locked"] = False
    rows = _rows(found, form, more)
    replaces = (
        editing if editing is not None and any(r.model == editing for r in found.rules) else None
    )
    profile = found.profile or KioskProfile()
    return render(
        "admin/unit.html",
        status,
        unit=found.unit,
        rules=found.rules,
        models=found.models,
        values=values,
        fields=RULE_FIELDS,
        rule_labels=RULE_LABELS,
        replaces=replaces,
        new_set=editing is None,
        rows=rows,
        categories=usage_categories(),
        marks=CATEGORY_MARKS,
        preview=profile.shortcuts,
        essential=profile.essential_categories,
        settings_locked=profile.settings_locked,
        errors=errors,
    )
