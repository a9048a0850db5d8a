"""The sign-in's second step: after the right password, the code of a user with a second factor.

The password step (`account.login`) leaves a pending session whose cookie is SECOND_FACTOR_COOKIE
(good for `console_auth.PENDING_LIFETIME`, for nothing but this form); the right code (or a
recovery code) replaces it with a signed-in session under a new id. Not signed in yet, so the
form is protected like the sign-in form: a double-submit token in PRE_CSRF_COOKIE.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.service_layer import console_auth


def ask_for_code(pending_cookie: str) -> BaseResponse:
    """After the right password: to the code's form, holding the pending session."""
    next_path = core.local_path(request.form.get("next", ""))
    response = redirect(url_for("console.login_second_factor", next=next_path or None), 303)
    response.set_cookie(
        core.SECOND_FACTOR_COOKIE,
        pending_cookie,
        max_age=int(console_auth.PENDING_LIFETIME.total_seconds()),
        httponly=True,
        secure=core.cookie_secure(),
        samesite="Strict",
    )
    return response


@bp.route("/login/second-factor", methods=["GET", "POST"])
def login_second_factor() -> BaseResponse:
    pending = request.cookies.get(core.SECOND_FACTOR_COOKIE, "")
    if request.method == "GET":
        if core.signed_in():
            return redirect(url_for("console.home"))
        if not pending:
            return redirect(url_for("console.login"))
        return _page(200)
    core.check_csrf(request.cookies.get(core.PRE_CSRF_COOKIE))
    svc = services()
    try:
        signed = console_auth.second_step(
            svc.uow(), pending, request.form.get("code", ""), svc.clock()
        )
    except console_auth.AccountLocked as exc:
        core.flash_locked(exc, signing_in=True)
        return _start_again()
    except console_auth.PendingExpired:
        flash(_("The time for the code ran out. Sign in again."), "error")
        return _start_again()
    except console_auth.SignInFailed:
        flash(_("Wrong or already used code."), "error")
        return _page(401, {"code": _("Type the code the app shows now, or a recovery code.")})
    response = core.back("console.home")
    core.set_session_cookie(response, signed.cookie)
    response.delete_cookie(core.SECOND_FACTOR_COOKIE)
    response.delete_cookie(core.PRE_CSRF_COOKIE)
    return response


def _page(status: int, errors: dict[str, str] | None = None) -> BaseResponse:
    return core.before_sign_in("second_factor.html", status, errors=errors or {})


def _start_again() -> BaseResponse:
    """The pending session is gone (ran out, or the account locked): back to the password."""
    response = redirect(url_for("console.login"), 303)
    response.delete_cookie(core.SECOND_FACTOR_COOKIE)
    return response
