"""Password checks for the API's token endpoint, with the console's lockout.

A failed password here counts against the same per-user counter as a failed console sign-in
(`console_auth.MAX_FAILURES` in a row lock the account for `console_auth.LOCKOUT`), so an
attacker gains nothing by guessing through the API instead of the sign-in form. A user with a
second factor must send its code (or a recovery code) as well: without one the answer is
SecondFactorRequired (401, `second_factor_required`), never a token; a wrong one counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from server.domain.model import Principal
from server.service_layer import second_factor
from server.service_layer.accounts import create_token, principal_of
from server.service_layer.console_auth import checked_user, proved_second_factor
from server.service_layer.unit_of_work import UnitOfWork


def check_password(
    uow: UnitOfWork,
    username: str,
    password: str,
    now: datetime,
    otp: str | None = None,
    passwords_off: frozenset[str] = frozenset(),
) -> Principal:
    """The user's principal if the password (and the second factor `otp`, where the account
    has one) is right; SignInFailed, SecondFactorRequired or AccountLocked if not.

    The message is the same whether or not the user exists; every outcome of a known user is
    audited (`api:auth:sign_in`, `api:auth:sign_in_failed`, `api:auth:sign_in_refused`,
    `api:auth:password_accepted` before a second factor). Where the organisation has switched
    passwords off (`passwords_off`, organisation codes), only a break-glass account passes.
    """
    with uow:
        user = checked_user(uow, username, password, now, "api", passwords_off)
        if second_factor.enabled(user):
            proved_second_factor(uow, user, otp, now, part="api")
        uow.commit()
        return principal_of(user)


def sign_in(
    uow: UnitOfWork,
    username: str,
    password: str,
    name: str,
    lifetime: timedelta,
    now: datetime,
    otp: str | None = None,
    passwords_off: frozenset[str] = frozenset(),
) -> tuple[str, datetime | None]:
    """A new API token for a right password and second factor (`check_password`, then
    `accounts.create_token`): the token, shown once, and when it expires."""
    principal = check_password(uow, username, password, now, otp, passwords_off)
    return create_token(uow, principal.username, name, lifetime, principal=principal)
