"""Single sign-on's pages: out to the organisation's identity provider and back.

`/login/sso/<provider>` starts a sign-in (or, with `purpose=reauth`, a re-authentication of
a signed-in SSO user) and sends the browser to the provider; the provider sends it back to
`/login/sso/<provider>/callback`. The state travels in a short-lived cookie as well, so an
answer is taken only in the browser that asked (service_layer/sso.py checks the rest).
"""

from __future__ import annotations

from typing import Any

from flask import flash, make_response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from server.domain.sso import SsoRefused
from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.service_layer import console_auth, sso

STATE_COOKIE = "lainaamo_sso"
PURPOSES = (sso.SIGN_IN, sso.REAUTH)


@bp.app_template_global()
def sso_buttons() -> list[sso.ProviderButton]:
    return sso.buttons(services().sso)


@bp.app_template_global()
def sso_label(name: str | None) -> str:
    """A provider as people know it (its label in the SSO file), else its name."""
    return services().sso.label(name) or name or ""


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute address of ours, at `public_url` when it is set (behind a proxy)."""
    public = services().settings.public_url.rstrip("/")
    if public:
        return public + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


@bp.get("/login/sso/<provider>")
def sso_start(provider: str) -> BaseResponse:
    purpose = request.args.get("purpose", sso.SIGN_IN)
    if purpose not in PURPOSES:
        purpose = sso.SIGN_IN
    svc = services()
    try:
        started = sso.start(
            svc.uow(),
            svc.sso,
            provider,
            purpose,
            core.local_path(request.args.get("next", "")),
            external_url("console.sso_callback", provider=provider),
            svc.clock(),
            session_cookie=request.cookies.get(core.SESSION_COOKIE),
        )
    except SsoRefused:
        flash(_("Signing in through your organisation did not succeed. Try again."), "error")
        return redirect(url_for("console.login"))
    response = redirect(started.url, 303)
    # Lax: the provider's answer is a top-level GET from its site, which Lax cookies go with.
    response.set_cookie(
        STATE_COOKIE,
        started.state,
        max_age=int(sso.ATTEMPT_LIFETIME.total_seconds()),
        httponly=True,
        secure=core.cookie_secure(),
        samesite="Lax",
    )
    return response


@bp.get("/login/sso/<provider>/callback")
def sso_callback(provider: str) -> BaseResponse:
    svc = services()
    try:
        done = sso.finish(
            svc.uow(),
            svc.sso,
            provider,
            state=request.args.get("state", "")[:200],
            cookie_state=request.cookies.get(STATE_COOKIE, "")[:200],
            code=request.args.get("code", "")[:2000],
            error=request.args.get("error", "")[:100],
            redirect_uri=external_url("console.sso_callback", provider=provider),
            now=svc.clock(),
        )
    except SsoRefused as exc:
        return _refused(exc)
    target = core.local_path(done.next_path) or url_for("console.home")
    response = redirect(target)
    response.delete_cookie(STATE_COOKIE)
    if done.cookie is None:
        flash(_("Thank you: you have confirmed who you are."), "info")
        return response
    earlier = request.cookies.get(core.SESSION_COOKIE, "")
    if earlier:  # a sign-in over another: the earlier session ends rather than linger
        console_auth.sign_out(svc.uow(), earlier)
    core.set_session_cookie(response, done.cookie)
    return response


@bp.get("/signed-out")
def signed_out() -> BaseResponse:
    """Where the provider's single logout sends the browser back to."""
    flash(_("You have signed out."), "info")
    return redirect(url_for("console.login"))


def _refused(exc: SsoRefused) -> BaseResponse:
    flash(_refusal_text(exc.kind), "error")
    response = make_response(redirect(url_for("console.login")))
    response.delete_cookie(STATE_COOKIE)
    return response


def _refusal_text(kind: str) -> str:
    """The person's words for a refusal (domain/sso.REFUSALS), in their language."""
    if kind == "no_group":
        return _(
            "Your account is in no group that may use Lainaamo. If you should have access, "
            "ask your organisation's IT support to add you to the right group."
        )
    if kind == "deactivated":
        return _("Your Lainaamo account has been deactivated. Ask an administrator.")
    if kind == "not_allowed":
        return _("This account may not sign in to Lainaamo.")
    if kind == "name_taken":
        return _("An account with your user name already exists. Ask an administrator.")
    if kind == "groups_missing":
        return _(
            "Your organisation's sign-in service did not send your groups. Ask your "
            "organisation's IT support."
        )
    if kind == "name_too_long":
        return _("Your user name from the sign-in service is too long for Lainaamo.")
    return _("Signing in through your organisation did not succeed. Try again.")
