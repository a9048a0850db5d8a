"""Enrollment: single-use, expiring tokens that let a tablet register itself.

IT support creates a token (shown once, as text and as a QR code); the tablet's agent sends
it with its device id to `POST /api/v1/enroll` and receives what it needs to connect. Only
the SHA-256 of a token is stored.

A device id that already exists in the token's organisation is re-bound (a reinstalled
agent keeps its device's history, loans and lifecycle state); one that exists in another
organisation is refused, since device ids are also MQTT identities and globally unique.

Every enrollment issues the device a new broker password (see `broker_auth`), returned once
in the answer; re-enrolling revokes the previous one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from lainaamo.errors import ConfigError, Conflict, DomainError, Forbidden, InvalidInput, NotFound
from server.adapters import orm
from server.adapters.orm import utcnow
from server.adapters.signing import public_key_of
from server.domain.model import LifecycleState, Principal, check_device_id, check_text
from server.domain.privacy import refuse_identifiers
from server.service_layer import audit, broker_auth
from server.service_layer.accounts import hash_token
from server.service_layer.desired import refresh_desired
from server.service_layer.devices import device_id_taken
from server.service_layer.unit_of_work import UnitOfWork
from server.service_layer.views import iso

TOKEN_PREFIX = "lnm_enr_"
DEFAULT_VALIDITY = timedelta(hours=24)
MAX_VALIDITY = timedelta(days=7)
MAX_LISTED = 200


class EnrollmentRefused(DomainError):
    """The one refusal of an enrollment: never says which of the reasons applied."""

    code = "enrollment_refused"

    def __init__(self) -> None:
        super().__init__("the enrollment token is unknown, expired, already used or revoked")


def _require_it(principal: Principal) -> None:
    if not principal.manages_devices:
        raise Forbidden("only IT support and administrators enroll devices")


def create_token(
    uow: UnitOfWork,
    principal: Principal,
    unit_code: str | None,
    note: str,
    valid_for: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """A new enrollment token (shown once) and when it expires; default 24 h, at most 7 days."""
    _require_it(principal)
    now = now or utcnow()
    valid_for = DEFAULT_VALIDITY if valid_for is None else valid_for
    if not timedelta(minutes=5) <= valid_for <= MAX_VALIDITY:
        raise InvalidInput(
            "invalid validity", [{"field": "valid_hours", "message": "from 5 minutes to 7 days"}]
        )
    note = refuse_identifiers("note", check_text("note", note or "", max_len=200, required=False))
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    with uow:
        unit = None
        if unit_code:
            unit = uow.session.scalar(
                select(orm.Unit).where(
                    orm.Unit.organisation_id == principal.organisation_id,
                    orm.Unit.code == unit_code,
                )
            )
            if unit is None:
                raise InvalidInput(
                    "unknown unit", [{"field": "unit", "message": f"no unit {unit_code!r}"}]
                )
        row = orm.EnrollmentToken(
            organisation_id=principal.organisation_id,
            unit_id=unit.id if unit else None,
            token_hash=hash_token(token),
            note=note,
            created_by=principal.user_id or None,
            created_at=now,
            expires_at=now + valid_for,
        )
        uow.session.add(row)
        uow.session.flush()
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "enrollment_token:create"),
            subject_type="enrollment_token",
            subject_id=str(row.id),
            organisation_id=principal.organisation_id,
            after={"unit": unit_code or None, "note": note, "expires_at": iso(row.expires_at)},
            system_part=principal.via,
        )
        uow.commit()
        return token, row.expires_at


def state_of(row: orm.EnrollmentToken, now: datetime) -> str:
    """active, used, revoked or expired."""
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= now else "active"


def token_json(row: orm.EnrollmentToken, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "unit": row.unit.code if row.unit else None,
        "note": row.note,
        "state": state_of(row, now),
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "used_at": iso(row.used_at),
        "device_id": row.device_id,
        "revoked_at": iso(row.revoked_at),
    }


def list_tokens(
    uow: UnitOfWork, principal: Principal, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The organisation's newest enrollment tokens (never the tokens themselves)."""
    _require_it(principal)
    with uow:
        return _tokens(uow.session, principal, now or utcnow())


def _tokens(session: Session, principal: Principal, now: datetime) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(orm.EnrollmentToken)
        .where(orm.EnrollmentToken.organisation_id == principal.organisation_id)
        .order_by(orm.EnrollmentToken.created_at.desc(), orm.EnrollmentToken.id.desc())
        .limit(MAX_LISTED)
    ).all()
    return [token_json(r, now) for r in rows]


@dataclass(frozen=True)
class EnrollmentPage:
    """What the console's Enrollment page lists: the tokens (with their unit's name as
    `unit_name`: people read names, not codes), and the units to create one for."""

    tokens: list[dict[str, Any]]
    units: list[tuple[str, str]]  # (code, name), by name


def enrollment_page(uow: UnitOfWork, principal: Principal, now: datetime) -> EnrollmentPage:
    _require_it(principal)
    with uow:
        units = uow.session.execute(
            select(orm.Unit.code, orm.Unit.name)
            .where(orm.Unit.organisation_id == principal.organisation_id)
            .order_by(orm.Unit.name)
        ).all()
        names = {code: name for code, name in units}
        tokens = [
            token | {"unit_name": names.get(token["unit"]) if token["unit"] else None}
            for token in _tokens(uow.session, principal, now)
        ]
    return EnrollmentPage(tokens, [(code, name) for code, name in units])


def revoke(
    uow: UnitOfWork, principal: Principal, token_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Revoke an unused token; revoking a revoked one changes nothing. The token afterwards."""
    _require_it(principal)
    now = now or utcnow()
    with uow:
        row = uow.session.get(orm.EnrollmentToken, token_id)
        if row is None or row.organisation_id != principal.organisation_id:
            raise NotFound(f"no enrollment token {token_id}")
        if row.used_at is not None:
            raise Conflict(f"enrollment token {token_id} was already used by {row.device_id}")
        if row.revoked_at is not None:
            return token_json(row, now)
        row.revoked_at = now
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "enrollment_token:revoke"),
            subject_type="enrollment_token",
            subject_id=str(token_id),
            organisation_id=principal.organisation_id,
            after={"revoked_at": iso(now)},
            system_part=principal.via,
        )
        uow.commit()
        return token_json(row, now)


def device_broker(settings: Settings) -> tuple[str, int, bool]:
    """Host, port and TLS of the broker as tablets reach it (`device_mqtt_url`)."""
    if not settings.device_mqtt_url:
        return settings.mqtt_host, settings.mqtt_port, settings.mqtt_tls
    url = urlsplit(settings.device_mqtt_url)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(
            "device_mqtt_url must be mqtt:// or mqtts://host[:port], "
            f"not {settings.device_mqtt_url!r}"
        )
    tls = url.scheme == "mqtts"
    return url.hostname, url.port or (8883 if tls else 1883), tls


def agent_config(
    device_id: str,
    organisation: str,
    unit: str | None,
    rebound: bool,
    settings: Settings,
    password: str | None = None,
) -> dict[str, Any]:
    """What an enrolled agent needs to connect, with its own MQTT password (shown only here)."""
    host, port, tls = device_broker(settings)
    return {
        "device_id": device_id,
        "organisation": organisation,
        "unit": unit,
        "rebound": rebound,
        "mqtt": {
            "host": host,
            "port": port,
            "protocol": settings.mqtt_protocol,
            "tls": tls,
            "topic_prefix": settings.topic_prefix,
            "username": device_id,
            "password": password,
        },
        # The key the tablet trusts for signed destructive commands (docs/protocol.md §10.1).
        "command_public_key": public_key_of(settings),
    }


def enroll(
    uow: UnitOfWork,
    token: str,
    device_id: str,
    serial: str | None,
    model: str | None,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """Spend a token: create (or re-bind) the device in the token's unit; return its config."""
    check_device_id(device_id)
    serial = check_text("serial", serial or "", max_len=64, required=False)
    model = check_text("model", model or "", max_len=100, required=False)
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise EnrollmentRefused()
    if settings.mqtt_username and device_id == settings.mqtt_username:
        raise device_id_taken(device_id)
    table = orm.EnrollmentToken
    with uow:
        session = uow.session
        # Conditional: of two enrollments racing with one token, exactly one changes the row.
        spent = session.execute(
            update(table)
            .where(
                table.token_hash == hash_token(token),
                table.used_at.is_(None),
                table.revoked_at.is_(None),
                table.expires_at > now,
            )
            .values(used_at=now, device_id=device_id)
            .execution_options(synchronize_session=False)
        )
        if int(spent.rowcount or 0) != 1:  # type: ignore[attr-defined]
            raise EnrollmentRefused()
        row = session.scalar(select(table).where(table.token_hash == hash_token(token)))
        assert row is not None
        device, rebound = _bind_device(session, row, device_id, serial, model, now)
        refresh_desired(session, [device.id], now)
        replaced = broker_auth.has_live_credential(session, device.id)
        password = broker_auth.issue(session, device.id, row.organisation_id, now)
        audit.record(
            session,
            principal=None,
            action="agent:device:enroll",
            subject_type="device",
            subject_id=device.id,
            organisation_id=row.organisation_id,
            after={
                "enrollment_token": row.id,
                "rebound": rebound,
                "unit": device.unit.code if device.unit else None,
                "serial": device.serial,
                "model": device.model,
                "broker_credential": "replaced" if replaced else "issued",
            },
            system_part="enrollment",
        )
        org = session.get(orm.Organisation, row.organisation_id)
        config = agent_config(
            device.id,
            org.code if org else "",
            device.unit.code if device.unit else None,
            rebound,
            settings,
            password,
        )
        uow.commit()
    return config


def _bind_device(
    session: Session,
    token: orm.EnrollmentToken,
    device_id: str,
    serial: str,
    model: str,
    now: datetime,
) -> tuple[orm.Device, bool]:
    device = session.get(orm.Device, device_id)
    if device is not None:
        if device.organisation_id != token.organisation_id:
            raise device_id_taken(device_id)
        device.serial = serial or device.serial
        device.model = model or device.model
        if device.unit_id is None:  # a re-bound device keeps its unit (it may be on loan)
            device.unit_id = token.unit_id
        device.updated_at = now
        session.flush()
        session.refresh(device)
        return device, True
    asset_tag = device_id
    taken = session.scalar(
        select(orm.Device.id).where(
            orm.Device.organisation_id == token.organisation_id,
            orm.Device.asset_tag == asset_tag,
        )
    )
    if taken is not None:
        asset_tag = f"ENR-{token.id}"
    device = orm.Device(
        id=device_id,
        organisation_id=token.organisation_id,
        unit_id=token.unit_id,
        asset_tag=asset_tag,
        serial=serial,
        model=model,
        lifecycle_state=LifecycleState.IN_STOCK.value,
        created_at=now,
        updated_at=now,
        status=orm.DeviceStatus(device_id=device_id, online=False),
    )
    session.add(device)
    session.flush()
    session.refresh(device)
    return device, False
