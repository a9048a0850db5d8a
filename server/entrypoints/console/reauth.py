"""Re-authentication before the acts that cannot be undone or change who may do what.

A wipe, a release, a bulk command and every change of users and roles need a recent proof of
identity (`core.recent_identity`: signed in or re-authenticated within `reauth_minutes`). The
view decorator `fresh` (or `stale_identity()` where only some of a view's requests need it)
does not run the act for an older one: a GET goes to `/reauth?next=<the page>` first, so nobody
fills in a form twice; a POST gets the re-authentication page (401) saying nothing was done yet.

`/reauth` asks a local user with a second factor for a code (or a recovery code), another local
user for the password; a single sign-on user signs in again at their identity provider
(`console.sso_start` with purpose=reauth, where that is available). Wrong answers count against
the sign-in lockout.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, flash, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.service_layer import console_auth, second_factor

F = TypeVar("F", bound=Callable[..., Any])
Page = tuple[str, int] | BaseResponse


def stale_identity() -> Page | None:
    """None if the person proved who they are recently; else what to answer instead of the act
    (a redirect to /reauth for a GET, the re-authentication page with 401 for a POST)."""
    if core.recent_identity():
        return None
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("console.reauth", next=core.local_path(request.full_path)))
    back_to = core.local_path(request.form.get("next", "")) or core.local_path(
        request.referrer or ""
    )
    return page(401, back_to, interrupted=True)


def fresh(view: F) -> F:
    """The view runs only for a recent proof of identity (`stale_identity`)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        asked = stale_identity()
        return asked if asked is not None else view(*args, **kwargs)

    wrapper.needs_recent_identity = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@bp.route("/reauth", methods=["GET", "POST"])
def reauth() -> Page:
    next_path = core.local_path(request.values.get("next", ""))
    if request.method == "GET":
        return page(200, next_path)
    svc = services()
    try:
        console_auth.reauthenticate(
            svc.uow(), g.session_cookie, request.form.get("answer", ""), svc.clock()
        )
    except console_auth.AccountLocked as exc:
        core.flash_locked(exc, signing_in=False)
        return page(423, next_path)
    except second_factor.SsoAccount:
        return page(409, next_path)
    except console_auth.SignInFailed:
        flash(_("That was not right. Nothing was done."), "error")
        return page(401, next_path, errors={"answer": _("Try again.")})
    flash(_("Thank you. You can go on now."), "info")
    return redirect(next_path or url_for("console.home"), 303)


def page(
    status: int,
    next_path: str,
    interrupted: bool = False,
    errors: dict[str, str] | None = None,
) -> tuple[str, int]:
    """The re-authentication page: a code, a password, or a link to the identity provider."""
    factor = second_factor.state(services().uow(), core.principal())
    browser = g.get("browser")
    provider = (browser.sso_provider if browser else None) or factor.sso_provider
    kind = "sso" if not factor.local else ("code" if factor.enabled else "password")
    sso_url = None
    if kind == "sso" and provider and "console.sso_start" in current_app.view_functions:
        sso_url = url_for("console.sso_start", provider=provider, purpose="reauth", next=next_path)
    return core.render(
        "reauth.html",
        status,
        kind=kind,
        provider=services().sso.label(provider) or provider,
        sso_url=sso_url,
        next=next_path,
        interrupted=interrupted,
        minutes=services().settings.reauth_minutes,
        errors=errors or {},
    )
