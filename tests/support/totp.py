"""A seeded user's second factor for tests: enrolled through the service, codes from pyotp."""

from __future__ import annotations

from datetime import datetime

import pyotp
from sqlalchemy import select

from server.adapters import orm
from server.service_layer import second_factor
from server.service_layer.accounts import principal_of
from support.fleet import Fleet


def user_row(fleet: Fleet, role: str) -> orm.User:
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins[role].username)
        )
        assert user is not None
        session.expunge(user)
        return user


def enrol(fleet: Fleet, role: str, now: datetime | None = None) -> tuple[str, list[str]]:
    """Turn on the second factor of the fleet's user of `role`: (secret, recovery codes).

    The confirming code uses now's time step: the next code to be taken is the next step's."""
    now = now or fleet.services.clock()
    who = principal_of(user_row(fleet, role), "console")
    enrolment = second_factor.start_enrolment(fleet.services.uow(), who, now)
    codes = second_factor.confirm(
        fleet.services.uow(), who, pyotp.TOTP(enrolment.secret).at(now), now
    )
    return enrolment.secret, codes


def next_code(fleet: Fleet, role: str, secret: str) -> str:
    """A code that has not been taken: the app's code of now, after moving the user's last
    accepted step back as if the minute had passed (tests cannot wait 30 s per code)."""
    totp = pyotp.TOTP(secret)
    now = fleet.services.clock()
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins[role].username)
        )
        assert user is not None
        user.totp_last_step = totp.timecode(now) - 2
        session.commit()
    return totp.at(now)


def wrong_code(secret: str, now: datetime) -> str:
    """A six-digit code that is none of the codes around `now`."""
    totp = pyotp.TOTP(secret)
    near = {totp.at(now.timestamp() + 30 * k) for k in range(-2, 3)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)
