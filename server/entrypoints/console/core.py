"""What every console page shares: the signed-in user, CSRF, roles, rendering, errors.

Pages call the same service-layer handlers as the REST API; this module only turns browser
requests into calls and results into HTML.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, InvalidInput
from server.domain.model import Principal, Role
from server.entrypoints.console import domain_text, i18n, redirects
from server.entrypoints.security_headers import add_hsts
from server.entrypoints.web.context import services
from server.service_layer import console_auth

F = TypeVar("F", bound=Callable[..., Any])

SESSION_COOKIE = "lainaamo_session"
LANGUAGE_COOKIE = "lainaamo_lang"
PRE_CSRF_COOKIE = "lainaamo_pre"  # double-submit token for the sign-in form (no session yet)
SECOND_FACTOR_COOKIE = "lainaamo_second"  # the pending session between password and code
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Reachable without signing in (endpoint names).
PUBLIC = frozenset(
    {
        "console.login",
        "console.static",
        "console.set_language",
        # Single sign-on's way out to the provider and back, the second factor's step, and
        # the provider's return after single logout: not signed in (yet, or any more).
        "console.sso_start",
        "console.sso_callback",
        "console.login_second_factor",
        "console.signed_out",
    }
)
# Requests a page makes by itself: they do not count as the user being active.
PASSIVE = frozenset({"console.devices_live", "console.devices_snapshot"})

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def principal() -> Principal:
    found: Principal = g.principal
    return found


def signed_in() -> bool:
    return g.get("principal") is not None


def recent_identity() -> bool:
    """Whether the signed-in person proved who they are (signed in, or re-authenticated)
    within the setting `reauth_minutes`: a wipe, a release, a bulk command and changes of
    users and roles ask for it (`reauth.fresh`)."""
    browser = g.get("browser")
    if browser is None or browser.authenticated_at is None:
        return False
    svc = services()
    age: timedelta = svc.clock() - browser.authenticated_at
    return age < timedelta(minutes=int(svc.settings.reauth_minutes))


def load_user() -> BaseResponse | None:
    """Before every console request: language, session, sign-in redirect, CSRF check."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    touch = request.endpoint not in PASSIVE
    svc = services()
    browser = console_auth.load(svc.uow(), cookie, svc.clock(), touch) if cookie else None
    g.principal = browser.principal if browser else None
    g.csrf_token = browser.csrf_token if browser else None
    g.session_cookie = cookie if browser else None
    g.browser = browser  # how and when this person signed in (re-authentication)
    chosen = request.cookies.get(LANGUAGE_COOKIE) or (browser.language if browser else None)
    g.language = i18n.best_language(request.accept_languages, chosen)
    if request.endpoint not in PUBLIC and browser is None:
        # Pages send the browser to the sign-in form; scripts (JSON, live updates) get a 401.
        page = (
            request.endpoint not in PASSIVE and request.accept_mimetypes.best != "application/json"
        )
        if request.method == "GET" and page:
            return redirect(url_for("console.login", next=local_path(request.full_path)))
        abort(401)
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.endpoint not in PUBLIC:
        check_csrf(g.csrf_token)
    return None


def check_csrf(expected: str | None) -> None:
    """A form field or header must repeat the session's token; the Origin must be ours."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        abort(403, description="cross-site request refused")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        message = i18n.gettext("The form has expired. Reload the page and try again.")
        abort(403, description=i18n.ForPeople(message))


def csrf_field() -> Markup:
    token = g.get("csrf_token") or g.get("pre_csrf") or ""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


def new_pre_csrf() -> str:
    g.pre_csrf = secrets.token_urlsafe(24)
    return g.pre_csrf  # type: ignore[no-any-return]


def roles(*allowed: Role) -> Callable[[F], F]:
    """Allow a page only to the given roles (403 for the others)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if principal().role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


def flash_locked(exc: console_auth.AccountLocked, *, signing_in: bool) -> None:
    """The lockout's message with the time it ends, in the user's language (signing in, or
    another attempt such as re-authentication or a second-factor code on the account page)."""
    until = {"time": i18n.fmt_datetime(exc.until)}
    if signing_in:
        flash(i18n.gettext("Too many failed sign-ins. Try again after %(time)s.") % until, "error")
    else:
        flash(i18n.gettext("Too many failed attempts. Try again after %(time)s.") % until, "error")


def before_sign_in(template: str, status: int, **context: Any) -> BaseResponse:
    """A page of the sign-in (no session yet): its forms carry a new double-submit token,
    also set as the pre-session cookie that `check_csrf` compares it with."""
    token = new_pre_csrf()
    body, code = render(
        template, status, next=local_path(request.values.get("next", "")), **context
    )
    response = make_response(body, code)
    response.set_cookie(
        PRE_CSRF_COOKIE, token, httponly=True, secure=cookie_secure(), samesite="Strict"
    )
    return response


def form_error(exc: DomainError) -> dict[str, str]:
    """Flash a handler's refusal and return its per-field messages for the form, in the
    user's language (domain_text)."""
    flash(domain_text.refusal(str(exc)), "error")
    fields: dict[str, str] = {}
    if isinstance(exc, InvalidInput):
        for detail in exc.errors:
            message = domain_text.field_message(str(detail.get("message", "")))
            fields.setdefault(str(detail.get("field", "")), message)
    return fields


def back(default: str, **values: Any) -> BaseResponse:
    """Redirect to a local `next` (from the form or query) or to a default endpoint."""
    target = local_path(request.form.get("next") or request.args.get("next") or "")
    return redirect(target or url_for(default, **values))


def local_path(target: str) -> str:
    """`target` as a path of this site, or "" (see `redirects`: no open redirects)."""
    return redirects.local_path(target, request.host)


def add_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _csp())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return add_hsts(response)


def set_session_cookie(response: BaseResponse, cookie: str) -> None:
    """The signed-in session's cookie (a new id at every sign-in: a planted one is worthless)."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(console_auth.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=cookie_secure(),
        samesite="Lax",
    )


def _csp() -> str:
    """The CSP; with single sign-on, the sign-out form may also end at the providers (its
    single logout redirects there, and browsers hold form-action to a form's redirects)."""
    origins = services().sso.origins()
    if not origins:
        return CSP
    return CSP.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))


def cookie_secure() -> bool:
    """Secure cookies whenever the console is reached over HTTPS (always, in production)."""
    return request.is_secure or services().settings.public_url.startswith("https://")
