"""SQLAlchemy 2 tables. Every schema change comes with an Alembic migration."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from server.adapters.text_guard import machine_made, refuse_personal_data

# Named constraints so that migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no 64-bit autoincrement BIGINT primary key; INTEGER is its 64-bit rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Organisation(Base):
    """A wellbeing services county (hyvinvointialue) running a loan-device programme."""

    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Shown on lock and lost-mode screens: IT support's number, never a service's.
    support_phone: Mapped[str | None] = mapped_column(String(40))


class Unit(Base):
    """A service unit that lends devices (e.g. adult social work of one municipality)."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Whether its tablets on loan report daily usage totals (docs/protocol.md §18).
    usage_collection: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The join link of the region's video service for this unit's remote groups (a group may
    # name its own); None: each group names one.
    group_join_url: Mapped[str | None] = mapped_column(String(500))


class Device(Base):
    """A loan tablet; its id is also its MQTT identity."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("organisation_id", "asset_tag"),
        Index("ix_devices_org_unit_id", "organisation_id", "unit_id", "id"),
        Index("ix_devices_org_state_id", "organisation_id", "lifecycle_state", "id"),
        # The fleet list's staff-lock filter: few devices are locked, the index holds just those.
        Index(
            "ix_devices_staff_locked",
            "organisation_id",
            "id",
            postgresql_where=text("staff_locked_at IS NOT NULL"),
            sqlite_where=text("staff_locked_at IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    asset_tag: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(100), default="")
    lifecycle_state: Mapped[str] = mapped_column(String(20), default="in_stock")
    # The last verified wipe: by the agent's acknowledgement or recorded by hand by IT support.
    wiped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    wipe_method: Mapped[str | None] = mapped_column(String(20))
    # A lock ordered by IT support, part of the desired state until a person lifts it
    # (domain/staff_lock.py): when, by whom (audit actor) and why (never sent to the tablet).
    staff_locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    staff_locked_by: Mapped[str | None] = mapped_column(String(140))
    staff_lock_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    status: Mapped[DeviceStatus] = relationship(lazy="joined", uselist=False)
    desired: Mapped[DesiredStateRow | None] = relationship(lazy="joined", uselist=False)


class DeviceStatus(Base):
    """Latest presence and reported status of a device (one row per device, written by ingest)."""

    __tablename__ = "device_status"
    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    online: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    presence_boot: Mapped[int | None] = mapped_column(BigInteger)
    presence_seq: Mapped[int | None] = mapped_column(BigInteger)
    presence_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status_interval_s: Mapped[int | None] = mapped_column(Integer)
    status_boot: Mapped[int | None] = mapped_column(BigInteger)
    status_seq: Mapped[int | None] = mapped_column(BigInteger)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    battery_pct: Mapped[int | None] = mapped_column(Integer, index=True)
    charging: Mapped[bool | None] = mapped_column(Boolean)
    storage_free_mb: Mapped[int | None] = mapped_column(BigInteger)
    storage_total_mb: Mapped[int | None] = mapped_column(BigInteger)
    os_version: Mapped[str | None] = mapped_column(String(64))
    agent_version: Mapped[str | None] = mapped_column(String(32))
    network: Mapped[str | None] = mapped_column(String(16))
    signal_pct: Mapped[int | None] = mapped_column(Integer)
    uptime_s: Mapped[int | None] = mapped_column(BigInteger)
    locked: Mapped[bool | None] = mapped_column(Boolean)
    kiosk: Mapped[bool | None] = mapped_column(Boolean)
    desired_version: Mapped[int | None] = mapped_column(BigInteger)
    # What the device enforces of the policy of `desired_version`, as its latest report said
    # (docs/protocol.md §6.2: {"unsupported": [keys], "failed": {key: reason}}; None: it did
    # not say), and whether that is every key (None: not said). server/domain/policy_state.py
    # decides from these whether the device is in line with its desired state.
    enforcement: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    all_enforced: Mapped[bool | None] = mapped_column(Boolean)
    # What the device claimed that the server does not trust (domain/model.py): how far its
    # clock was off at its latest report (None: plausible), and the last position whose boot
    # jumped beyond any real count (not adopted; IT support can reset the sequence state).
    clock_skew_s: Mapped[int | None] = mapped_column(BigInteger)
    implausible_boot: Mapped[int | None] = mapped_column(BigInteger)
    implausible_seq: Mapped[int | None] = mapped_column(BigInteger)
    implausible_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set by a reset of the sequence state: the next position the device reports is adopted
    # whatever its boot.
    trust_next_position: Mapped[bool] = mapped_column(Boolean, default=False)


class StatusReport(Base):
    """Bounded history of status reports; unique by (device, boot, seq): redeliveries store once."""

    __tablename__ = "status_reports"
    __table_args__ = (
        UniqueConstraint("device_id", "boot", "seq", name="uq_status_reports_device_boot_seq"),
        Index("ix_status_reports_device_ts", "device_id", "reported_at"),
        Index("ix_status_reports_received_at", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    boot: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(String(16))
    battery_pct: Mapped[int] = mapped_column(Integer)
    charging: Mapped[bool] = mapped_column(Boolean)
    storage_free_mb: Mapped[int] = mapped_column(BigInteger)
    network: Mapped[str] = mapped_column(String(16))
    signal_pct: Mapped[int | None] = mapped_column(Integer)
    uptime_s: Mapped[int] = mapped_column(BigInteger)
    locked: Mapped[bool] = mapped_column(Boolean)
    kiosk: Mapped[bool] = mapped_column(Boolean)
    desired_version: Mapped[int] = mapped_column(BigInteger)


user_units = Table(
    "user_units",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """A professional using Lainaamo; never a client."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200), info=machine_made("argon2"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Console sign-in: failures since the last success, and the lockout they caused.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    language: Mapped[str | None] = mapped_column(String(5))  # fi, sv, en; None: the browser's
    # Work e-mail for the opt-in daily digest of one's overdue loans (never a client's data).
    email: Mapped[str | None] = mapped_column(String(254))
    overdue_digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    digest_sent_on: Mapped[date | None] = mapped_column(Date)
    # Single sign-on (docs/security.md): the provider's name in the SSO file and the subject
    # identifier it gives; None for a local account. An SSO user's role and units come from
    # their groups at every sign-in.
    sso_provider: Mapped[str | None] = mapped_column(String(40))
    sso_subject: Mapped[str | None] = mapped_column(String(255), info=machine_made("provider id"))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When a sign-in found the person in none of the mapped groups: the account was made
    # inactive by that, not by an administrator, and a later mapped sign-in restores it.
    sso_removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # May sign in with a password even where the organisation has switched passwords off.
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The second factor of a local account (TOTP, RFC 6238): the base32 secret, when it was
    # confirmed (None: not in use), and the last time step accepted (no code twice).
    totp_secret: Mapped[str | None] = mapped_column(String(64), info=machine_made("base32"))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    units: Mapped[list[Unit]] = relationship(secondary=user_units, lazy="selectin")

    __table_args__ = (UniqueConstraint("sso_provider", "sso_subject"),)


class RecoveryCode(Base):
    """A single-use code that stands in for the second factor; only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), info=machine_made("sha256"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SsoAttempt(Base):
    """A sign-in sent to an identity provider and not yet back: what the answer must match.

    Keyed by the SHA-256 of the OAuth `state`, which the browser also holds in a cookie, so an
    answer is taken only once, only in the browser that started it, and only for a while."""

    __tablename__ = "sso_attempts"
    state_hash: Mapped[str] = mapped_column(
        String(64), primary_key=True, info=machine_made("sha256")
    )
    provider: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(10))  # sign_in or reauth
    nonce: Mapped[str] = mapped_column(String(64), info=machine_made("random token"))
    code_verifier: Mapped[str] = mapped_column(String(128), info=machine_made("random token"))
    next_path: Mapped[str] = mapped_column(String(500), default="")
    # Re-authentication: the console session it is for (its id's SHA-256).
    session_hash: Mapped[str | None] = mapped_column(String(64), info=machine_made("sha256"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConsoleSession(Base):
    """A signed-in browser; the cookie holds a random id of which only the SHA-256 is stored."""

    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True, info=machine_made("sha256"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64), info=machine_made("random token"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # How the person proved who they are (password, password+totp, recovery_code, sso), and
    # when they last did: re-authentication before a wipe, a release, a bulk command or a
    # change of users and roles asks for a recent one (docs/security.md).
    auth_method: Mapped[str] = mapped_column(String(20), default="password")
    sso_provider: Mapped[str | None] = mapped_column(String(40))
    authenticated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The password was right and the second factor is still to come: not signed in yet.
    pending_second_factor: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # The provider's ID token, kept only as the hint of its single logout (RP-initiated
    # logout) and gone with the session; never written to the audit log.
    id_token_hint: Mapped[str | None] = mapped_column(Text, info=machine_made("signed token"))

    user: Mapped[User] = relationship(lazy="joined")


class EnrollmentToken(Base):
    """A single-use, expiring token that lets one tablet enroll; only its SHA-256 is stored."""

    __tablename__ = "enrollment_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info=machine_made("sha256"))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    device_id: Mapped[str | None] = mapped_column(String(64))  # the device that used it
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    unit: Mapped[Unit | None] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info=machine_made("sha256"))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class DeviceCredential(Base):
    """A device's broker password, as Mosquitto's `$7$` hash; the password itself is shown once.

    At most one live (not revoked) credential per device: re-enrolling revokes the old one."""

    __tablename__ = "device_credentials"
    __table_args__ = (Index("ix_device_credentials_device_revoked", "device_id", "revoked_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    password_hash: Mapped[str] = mapped_column(String(200), info=machine_made("mosquitto $7$"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    # re-enrolled, retired, lost, released or revoked (by hand)
    revoked_reason: Mapped[str | None] = mapped_column(String(20))


_audit_order = itertools.count()


class AuditEvent(Base):
    """Append-only record of every change and every access to client-related data."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject_type", "subject_id"),)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Events added in one flush are chained in the order they were created.
        self.created_order = next(_audit_order)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    actor: Mapped[str] = mapped_column(String(140))  # "user:<id>:<username>" or "system:<part>"
    role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(80))  # source:subject:action, e.g. api:device:create
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    # Hash chain: each event's hash covers its content and the previous event's hash.
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), info=machine_made("sha256"))
    hash: Mapped[str | None] = mapped_column(String(64), info=machine_made("sha256"))


class AuditHead(Base):
    """One row: the newest link of the audit hash chain. Locking it serialises appends."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64), info=machine_made("sha256"))


class Client(Base):
    """A pseudonymous client reference owned by a unit; never a name or an identity code."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("unit_id", "ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    unit: Mapped[Unit] = relationship(lazy="joined")


class Agreement(Base):
    """A version of the loan agreement text; a handover records which one was accepted."""

    __tablename__ = "agreements"
    __table_args__ = (UniqueConstraint("organisation_id", "version", "language"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    version: Mapped[str] = mapped_column(String(40))
    # One version of the agreement is written in several languages: fi, sv, en, and
    # "fi-plain" / "sv-plain" where the region writes a plain-language text.
    language: Mapped[str] = mapped_column(String(8), default="fi", server_default="fi")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LoanRulesRow(Base):
    """Loan length, renewals and overdue thresholds of a unit (optionally for one model)."""

    __tablename__ = "loan_rules"
    __table_args__ = (UniqueConstraint("unit_id", "model"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    model: Mapped[str] = mapped_column(String(100), default="")  # "": every model
    loan_days: Mapped[int] = mapped_column(Integer)
    renewal_days: Mapped[int] = mapped_column(Integer)
    max_renewals: Mapped[int] = mapped_column(Integer)
    reminder_after_days: Mapped[int] = mapped_column(Integer)
    restrict_after_days: Mapped[int] = mapped_column(Integer)
    offline_lock_after_days: Mapped[int] = mapped_column(Integer)


loan_professionals = Table(
    "loan_professionals",
    Base.metadata,
    Column("loan_id", ForeignKey("loans.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id"), primary_key=True),
)

# States in which a loan holds its device; a device is in at most one such loan (the index
# below makes the database itself refuse a second one).
_HOLDS_DEVICE = "state IN ('ready', 'on_loan', 'paused', 'lost')"


class Loan(Base):
    """A loan of one device (and its kit) to one client, from request to its end."""

    __tablename__ = "loans"
    __table_args__ = (
        Index(
            "uq_loans_device_active",
            "device_id",
            unique=True,
            sqlite_where=text(_HOLDS_DEVICE),
            postgresql_where=text(_HOLDS_DEVICE),
        ),
        Index("ix_loans_unit_state_requested", "unit_id", "state", "requested_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    state: Mapped[str] = mapped_column(String(24), default="requested")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # A referral: a professional of another unit filed the request ("one contact is enough");
    # the unit they filed it from and why. The referrer follows what becomes of it.
    referred_from_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    referral_reason: Mapped[str | None] = mapped_column(String(200))
    # Why a request was cancelled or declined (the referrer sees it).
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    # A counsellor's proposal that the client keeps the device, for IT support to approve.
    keep_proposed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    keep_proposed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    keep_reason: Mapped[str | None] = mapped_column(String(200))
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    handed_over_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    handed_over_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    agreement_accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The staff member who witnessed the client sign the printed handover document.
    witnessed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A counsellor's date to get back to the client (the worklist shows it; null: none).
    follow_up_on: Mapped[date | None] = mapped_column(Date, index=True)
    # Set when the scheduler notices the loan past its due date (audited: loan.overdue);
    # cleared when the loan is no longer overdue (renewed, returned), so it can happen again.
    overdue_noted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pause_reason: Mapped[str | None] = mapped_column(String(200))
    hold: Mapped[bool] = mapped_column(Boolean, default=False)  # counsellor: do not escalate
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    client: Mapped[Client] = relationship(lazy="joined")
    device: Mapped[Device | None] = relationship(lazy="joined")
    # In the order the accounts were made: a join's order is the database's choice otherwise,
    # and the pair would swap places between pages.
    professionals: Mapped[list[User]] = relationship(
        secondary=loan_professionals, lazy="selectin", order_by="User.id"
    )
    kit: Mapped[list[KitItem]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="KitItem.id"
    )


class LoanNote(Base):
    """A counsellor's contact note on a loan ("called, no answer"); guarded like every text."""

    __tablename__ = "loan_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(
        String(20)
    )  # called_no_answer | talked | agreed | visit | other
    text: Mapped[str] = mapped_column(String(500), default="")
    # A support contact for the evaluation: phone | home_visit | chat (remote-support sessions
    # are counted from their own records), and how many minutes it took; null: a plain note.
    channel: Mapped[str | None] = mapped_column(String(20))
    minutes: Mapped[int | None] = mapped_column(Integer)


group_participants = Table(
    "group_participants",
    Base.metadata,
    Column("group_id", ForeignKey("group_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("loan_id", ForeignKey("loans.id", ondelete="CASCADE"), primary_key=True),
)


class GroupSession(Base):
    """A remote or hybrid group session a counsellor scheduled (domain/groups.py), once or
    weekly; its participants are loans, its title is for staff only (never sent to a tablet)."""

    __tablename__ = "group_sessions"
    __table_args__ = (Index("ix_group_sessions_org_starts", "organisation_id", "starts_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    title: Mapped[str] = mapped_column(String(80))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    minutes: Mapped[int] = mapped_column(Integer)
    weekly: Mapped[bool] = mapped_column(Boolean, default=False)
    until: Mapped[date | None] = mapped_column(Date)
    join_url: Mapped[str | None] = mapped_column(String(500))  # None: the unit's
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    participants: Mapped[list[Loan]] = relationship(secondary=group_participants, lazy="selectin")


class GroupAttendance(Base):
    """Seconds a participant's tablet spent in one occurrence of a group on one local day, as
    its usage report says (docs/protocol.md §18 `groups`): that they joined, never what was
    said or seen. It holds no text: when the client reference is anonymised the rows stay with
    the loan, as the loan's dates and device do, so the report's past figures do not change.
    Deleted with the group or the loan."""

    __tablename__ = "group_attendance"
    __table_args__ = (
        UniqueConstraint(
            "occurrence_id", "device_id", "day", name="uq_group_attendance_occ_dev_day"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("group_sessions.id", ondelete="CASCADE"), index=True
    )
    occurrence_id: Mapped[str] = mapped_column(String(40))  # g<group id>-<start, UTC minute>
    occurrence_start: Mapped[datetime] = mapped_column(UtcDateTime)
    loan_id: Mapped[int | None] = mapped_column(
        ForeignKey("loans.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    device_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    seconds: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class KitItem(Base):
    """Something lent with the tablet (charger, case, SIM), checked at return."""

    __tablename__ = "loan_kit_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(100), default="")
    returned_condition: Mapped[str | None] = mapped_column(String(20))  # ok | damaged | missing


class KioskProfileRow(Base):
    """A unit's kiosk profile: allowed apps, home-screen shortcuts, locked settings."""

    __tablename__ = "kiosk_profiles"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    apps: Mapped[list[str]] = mapped_column(JSON, default=list)
    shortcuts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    settings_locked: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DesiredStateRow(Base):
    """The versioned desired state of a device and how far it has been published."""

    __tablename__ = "device_desired"
    __table_args__ = (
        # The fleet gauges compare versions of every device: an index-only scan, not the policies.
        Index("ix_device_desired_device_version", "device_id", "version"),
        # The scheduler asks for unpublished states several times a second: a partial index
        # holds just those, so the question costs nothing however large the fleet.
        Index(
            "ix_device_desired_unpublished",
            "changed_at",
            postgresql_where=text("published_version < version"),
            sqlite_where=text("published_version < version"),
        ),
    )
    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    override: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    published_version: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CommandRow(Base):
    """A one-shot command in the server-side outbox, from queued to its outcome.

    Never retained on the broker: a command reaches a device when it is online. Each send
    records the device's presence position `(sent_boot, sent_seq)` at the time; a command the
    device has not acknowledged is sent again while it is online once that position has moved
    (it has connected again since) or after a backoff (service_layer/device_commands.py).
    """

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_state_device", "state", "device_id"),
        Index("ix_commands_bulk", "bulk_id"),
    )
    id: Mapped[str] = mapped_column(  # the cmd_id
        String(64), primary_key=True, info=machine_made("new_hex_id()")
    )
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    name: Mapped[str] = mapped_column(String(20))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default="queued")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(140))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The device's presence (boot, seq) at the last send; NULL: unknown (taken as -1).
    sent_boot: Mapped[int | None] = mapped_column(BigInteger)
    sent_seq: Mapped[int | None] = mapped_column(BigInteger)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    detail: Mapped[str | None] = mapped_column(String(500))
    bulk_id: Mapped[str | None] = mapped_column(String(64), info=machine_made("new_hex_id()"))


class Lease(Base):
    """A named lease held by one process at a time (scheduler, dispatcher)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100), info=machine_made("host:pid:object id"))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SupportSession(Base):
    """A remote-support session (docs/protocol.md §17), bound to the professional who started it.

    Its id is a strong random token (never a PIN); SDPs are kept only while they are useful.
    """

    __tablename__ = "support_sessions"
    __table_args__ = (
        Index("ix_support_sessions_device_state", "device_id", "state"),
        Index("ix_support_sessions_org_created", "organisation_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(
        String(64), primary_key=True, info=machine_made("token_urlsafe(24)")
    )
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    started_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    started_by_name: Mapped[str] = mapped_column(String(120))  # the caller the client sees
    mode: Mapped[str] = mapped_column(String(10))
    control_granted: Mapped[bool] = mapped_column(Boolean, default=False)
    purpose: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), index=True)
    end_reason: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    consent_deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    consent_result: Mapped[str | None] = mapped_column(String(12))
    offer_sdp: Mapped[str | None] = mapped_column(Text, info=machine_made("SDP"))
    offer_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answer_sdp: Mapped[str | None] = mapped_column(Text, info=machine_made("SDP"))
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    connection_type: Mapped[str | None] = mapped_column(String(8))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    max_duration_s: Mapped[int] = mapped_column(Integer)


class SessionSignalRow(Base):
    """A signal for a device, published by the background (QoS 1, never retained).

    Each send records the device's presence position `(sent_boot, sent_seq)` at the time: a
    signal is sent again once the device has connected again since, while it is young and its
    session needs it (adapters/support_signals.py).
    """

    __tablename__ = "support_signals"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"),
        index=True,
        info=machine_made("token_urlsafe(24)"),
    )
    device_id: Mapped[str] = mapped_column(String(64))
    # SDPs, ICE candidates and TURN credentials; its caller and purpose are the session row's.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, info=machine_made("signals"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    sent_boot: Mapped[int | None] = mapped_column(BigInteger)
    sent_seq: Mapped[int | None] = mapped_column(BigInteger)
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class UsageDeviceDay(Base):
    """One device's usage totals of one local day within one loan (docs/protocol.md §18).

    Only totals, never a timeline. Deleted when the loan's client is anonymised; the unit's
    roll-up (UsageUnitDay) stays. A device lent twice on one day has a row for each loan."""

    __tablename__ = "usage_device_days"
    __table_args__ = (Index("ix_usage_device_days_loan_day", "loan_id", "day"),)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the tablet's local date
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    active_s: Mapped[int] = mapped_column(Integer, default=0)
    launches_chat: Mapped[int] = mapped_column(Integer, default=0)
    launches_appointment: Mapped[int] = mapped_column(Integer, default=0)
    launches_digipath: Mapped[int] = mapped_column(Integer, default=0)
    launches_group: Mapped[int] = mapped_column(Integer, default=0)
    launches_other: Mapped[int] = mapped_column(Integer, default=0)
    support_s: Mapped[int] = mapped_column(Integer, default=0)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    boot: Mapped[int] = mapped_column(BigInteger)  # position of the report the row holds
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class UsageUnitDay(Base):
    """A unit's usage per local day: the sums of its device-days, kept when they are deleted.

    Never holds a device or a loan; never deleted, so the sums only grow (Prometheus counters
    are made from them)."""

    __tablename__ = "usage_unit_days"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    device_days: Mapped[int] = mapped_column(Integer, default=0)
    active_s: Mapped[int] = mapped_column(BigInteger, default=0)
    launches_chat: Mapped[int] = mapped_column(BigInteger, default=0)
    launches_appointment: Mapped[int] = mapped_column(BigInteger, default=0)
    launches_digipath: Mapped[int] = mapped_column(BigInteger, default=0)
    launches_group: Mapped[int] = mapped_column(BigInteger, default=0)
    launches_other: Mapped[int] = mapped_column(BigInteger, default=0)
    support_s: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookSubscription(Base):
    """An outgoing webhook of an organisation; the secret signs every delivery (shown once)."""

    __tablename__ = "webhook_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)  # []: every type
    secret: Mapped[str] = mapped_column(String(100), info=machine_made("token_hex(32)"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """One event to one subscriber: queued, delivered, failed (retrying) or gave_up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_sub_event"),
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(BigInteger)  # the audit event's seq
    event_type: Mapped[str] = mapped_column(String(40))
    # Allow-listed fields of audit events and rows that were checked when written (and their
    # machine-made ids, which an old command id could make look like a code).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, info=machine_made("copy of checked"))
    state: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EventCursor(Base):
    """How far a consumer of the audit log has got (e.g. the webhook fan-out), by seq."""

    __tablename__ = "event_cursors"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)


GENESIS_HASH = "0" * 64


def audit_digest(event: AuditEvent) -> str:
    """SHA-256 over an event's content and the previous hash, in a canonical JSON form."""
    content = {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(),
        "organisation_id": event.organisation_id,
        "actor": event.actor,
        "role": event.role,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Every String/Text/JSON column is checked for personal identity codes unless its `info` says
# it is machine_made (text_guard.py). First among the flush listeners, so that a refused flush
# has not yet taken the audit chain's lock or numbered its events.
event.listen(Session, "before_flush", refuse_personal_data, insert=True)


@event.listens_for(Session, "before_flush")
def _audit_append_only_and_chained(session: Session, *_: object) -> None:
    """Refuse to change or delete an audit event; link new ones into the hash chain."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("audit events are append-only")
    new = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not new:
        return
    connection = session.connection()
    # A no-op write first: it takes the row lock (PostgreSQL) or the write lock (SQLite), so
    # concurrent transactions append one after another and the chain never forks.
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = connection.execute(
        select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)
    ).one()
    seq, last = head.seq, head.last_hash
    for audit in sorted(new, key=lambda e: e.created_order):
        seq += 1
        audit.at = audit.at or utcnow()
        audit.seq = seq
        audit.prev_hash = last
        audit.hash = last = audit_digest(audit)
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, last_hash=last))
