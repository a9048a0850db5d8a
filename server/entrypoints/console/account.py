"""Signing in and out, the language switch, and the user's own page (password, second factor,
API tokens, the opt-in daily e-mail of overdue loans). The sign-in's second step (the code) is
in `sign_in_step`, re-authentication in `reauth`."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import Conflict, DomainError
from server.domain.model import Role
from server.entrypoints.console import core, i18n, sign_in_step
from server.entrypoints.console import reauth as reauth  # noqa: F401 (views on import)
from server.entrypoints.console import sso as sso_pages
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.enrollment_page import qr_data_uri
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import accounts, console_auth, digest, second_factor, sso

HOME_BY_ROLE = {
    Role.IT_SUPPORT: "console.devices",
    Role.COUNSELLOR: "console.loans",
    Role.ADMIN: "console.reports",
}
TOKEN_LIFETIMES = {"30": 30, "90": 90, "365": 365}  # days offered for a new API token


@bp.get("/")
def home() -> BaseResponse:
    return redirect(url_for(HOME_BY_ROLE[core.principal().role]))


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    if request.method == "GET":
        if core.signed_in():
            return redirect(url_for("console.home"))
        return _login_page(200)
    core.check_csrf(request.cookies.get(core.PRE_CSRF_COOKIE))
    svc = services()
    try:
        signed = console_auth.sign_in(
            svc.uow(),
            request.form.get("username", ""),
            request.form.get("password", ""),
            svc.clock(),
            svc.sso.config.passwords_off,
        )
    except console_auth.PasswordsOff:
        flash(
            _("Your organisation signs you in with its own account: use the button above."),
            "error",
        )
        return _login_page(403)
    except console_auth.AccountLocked as exc:
        core.flash_locked(exc, signing_in=True)
        return _login_page(423)
    except console_auth.SignInFailed:
        flash(_("Wrong user name or password."), "error")
        return _login_page(401)
    if signed.second_factor_due:
        return sign_in_step.ask_for_code(signed.cookie)
    response = core.back("console.home")
    # A new session id on every sign-in: a cookie planted before it is worthless.
    core.set_session_cookie(response, signed.cookie)
    response.delete_cookie(core.PRE_CSRF_COOKIE)
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out here and, for an SSO session, at the provider too (single logout), which
    then sends the browser back to `/signed-out`."""
    svc = services()
    at_provider = sso.end_session_url(
        svc.uow(), svc.sso, g.session_cookie, sso_pages.external_url("console.signed_out")
    )
    console_auth.sign_out(svc.uow(), g.session_cookie)
    response = redirect(at_provider or url_for("console.login"))
    response.delete_cookie(core.SESSION_COOKIE)
    if at_provider is None:
        flash(_("You have signed out."), "info")
    return response


@bp.post("/language")
def set_language() -> BaseResponse:
    language = request.form.get("language", "")
    if language not in i18n.LANGUAGES:
        abort(400)
    if core.signed_in():
        core.check_csrf(g.csrf_token)
        console_auth.set_language(services().uow(), core.principal(), language)
    response = core.back("console.home")
    response.set_cookie(
        core.LANGUAGE_COOKIE,
        language,
        max_age=365 * 86400,
        secure=core.cookie_secure(),
        samesite="Lax",
    )
    return response


@bp.get("/account")
def account() -> tuple[str, int]:
    return _account_page(200)


@bp.post("/account/password")
def change_password() -> BaseResponse | tuple[str, int]:
    form = request.form
    if form.get("new_password", "") != form.get("repeat_password", ""):
        flash(_("The new passwords do not match."), "error")
        return _account_page(422, {"repeat_password": _("Does not match")})
    svc = services()
    try:
        console_auth.change_password(
            svc.uow(),
            core.principal(),
            g.session_cookie,
            form.get("current_password", ""),
            form.get("new_password", ""),
            svc.clock(),
        )
    except DomainError as exc:
        return _account_page(http_status(exc), core.form_error(exc))
    flash(_("Your password has been changed. Your other sessions were signed out."), "info")
    return redirect(url_for("console.account"))


@bp.post("/account/tokens")
def create_token() -> tuple[str, int]:
    name = request.form.get("name", "").strip()[:100] or "console"
    days = TOKEN_LIFETIMES.get(request.form.get("valid_days", "90"), 90)
    principal = core.principal()
    token, expires = accounts.create_token(
        services().uow(), principal.username, name, timedelta(days=days), principal
    )
    return _account_page(201, new_token=token, new_token_expires=expires)


@bp.post("/account/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> BaseResponse:
    accounts.revoke_token(services().uow(), core.principal(), token_id)
    flash(_("The token was revoked."), "info")
    return redirect(url_for("console.account"))


@bp.post("/account/email")
def set_digest() -> BaseResponse | tuple[str, int]:
    """The work e-mail and whether the daily e-mail of overdue loans is sent to it."""
    if not services().settings.smtp_host:
        flash(_("E-mail is not available: no e-mail server is configured."), "error")
        return _account_page(409)
    form = request.form
    opted_in = form.get("overdue_digest") == "1"
    try:
        digest.set_digest(services().uow(), core.principal(), form.get("email", ""), opted_in)
    except DomainError as exc:
        errors = core.form_error(exc)
        if "email" in errors:
            errors["email"] = _("Give an e-mail address, e.g. name@example.fi.")
        return _account_page(http_status(exc), errors, email_form=form)
    flash(
        _("You will get a daily e-mail of your overdue loans.")
        if opted_in
        else _("Your e-mail settings were saved. You get no daily e-mail."),
        "info",
    )
    return redirect(url_for("console.account", _anchor="email-heading"), 303)


@bp.post("/account/second-factor/begin")
def second_factor_begin() -> BaseResponse | tuple[str, int]:
    """A new secret for the authenticator app; the page shows it until a code confirms it."""
    svc = services()
    try:
        second_factor.start_enrolment(svc.uow(), core.principal(), svc.clock())
    except DomainError as exc:
        return _account_page(http_status(exc), _second_factor_errors(exc))
    return redirect(url_for("console.account", _anchor="second-factor-heading"), 303)


@bp.post("/account/second-factor/confirm")
def second_factor_confirm() -> tuple[str, int]:
    """The first code turns the second factor on; the recovery codes are shown this once."""
    svc = services()
    try:
        codes = second_factor.confirm(
            svc.uow(), core.principal(), request.form.get("code", ""), svc.clock()
        )
    except DomainError as exc:
        return _account_page(http_status(exc), _second_factor_errors(exc))
    flash(_("The second factor is on. From now on you sign in with a code as well."), "info")
    return _account_page(200, recovery_codes=codes)


@bp.post("/account/second-factor/recovery-codes")
def second_factor_recovery_codes() -> tuple[str, int]:
    """New recovery codes for a current code; the old ones stop working."""
    svc = services()
    try:
        codes = second_factor.regenerate(
            svc.uow(), core.principal(), request.form.get("regen_code", ""), svc.clock()
        )
    except DomainError as exc:
        return _account_page(http_status(exc), _second_factor_errors(exc, "regen_code"))
    flash(_("New recovery codes were made. The old ones no longer work."), "info")
    return _account_page(200, recovery_codes=codes)


@bp.post("/account/second-factor/off")
def second_factor_off() -> BaseResponse | tuple[str, int]:
    """Turn the second factor off with a code, a recovery code or the password."""
    svc = services()
    try:
        second_factor.turn_off(
            svc.uow(), core.principal(), request.form.get("answer", ""), svc.clock()
        )
    except DomainError as exc:
        return _account_page(http_status(exc), _second_factor_errors(exc, "answer"))
    flash(_("The second factor is off. You sign in with your password only."), "info")
    return redirect(url_for("console.account", _anchor="second-factor-heading"), 303)


def _second_factor_errors(exc: DomainError, field: str = "code") -> dict[str, str]:
    if isinstance(exc, console_auth.AccountLocked):
        core.flash_locked(exc, signing_in=False)
        return {}
    if isinstance(exc, second_factor.WrongCode):
        flash(_("Nothing was changed: the code was wrong or already used."), "error")
        return {field: _("Wrong or already used code. Type the code the app shows now.")}
    why = exc.why if isinstance(exc, Conflict) else None
    if isinstance(exc, second_factor.SsoAccount):
        flash(_("Your organisation's identity provider handles your second factor."), "error")
    elif why is second_factor.Why.ON_ALREADY:
        flash(_("The second factor is on already. Turn it off first to set it up again."), "error")
    elif why is second_factor.Why.NOT_SET_UP:
        flash(_("Set up the second factor first."), "error")
    elif why is second_factor.Why.NOT_ON:
        flash(_("The second factor is not on."), "error")
    else:
        return core.form_error(exc)
    return {}


def _login_page(status: int) -> BaseResponse:
    return core.before_sign_in("login.html", status)


def _account_page(
    status: int, errors: dict[str, str] | None = None, **extra: object
) -> tuple[str, int]:
    svc = services()
    page = digest.account_page(svc.uow(), core.principal())
    factor = second_factor.state(svc.uow(), core.principal())
    return core.render(
        "account.html",
        status,
        second_factor=factor,
        totp_qr=qr_data_uri(factor.enrolment.uri) if factor.enrolment else None,
        tokens=page.tokens,
        digest=page.digest,
        email_available=bool(svc.settings.smtp_host),
        errors=errors or {},
        lifetimes=TOKEN_LIFETIMES,
        now=svc.clock(),
        **extra,
    )
