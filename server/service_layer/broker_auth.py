"""Per-device broker credentials: issued at enrollment, revoked when a device leaves service.

A device's MQTT password is random (`secrets.token_urlsafe(32)`), shown once in the
enrollment answer and stored only as Mosquitto's `$7$` hash. Each device has at most one live
credential: re-enrolling revokes the old one. Retiring a device, releasing it to its client
and marking it lost revoke it too (audited).

`BrokerAuthSync` renders the broker's `passwd` and `acl` files from the live credentials and
makes Mosquitto reload them; the scheduler's broker_auth job calls it (`sync_files`) every
second, and it writes only when the set of live credentials changed.

The last word: a device revoked because it left service (not one replaced by re-enrolling)
keeps its login while a wipe or release command for it is still pending, so that the wipe
that comes with releasing a tablet, or that IT support sent to a lost one, can still reach
it. When the command finishes or expires, the login goes at the next sync.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from server.adapters import mosquitto_auth, orm
from server.domain.model import LifecycleState, Principal
from server.service_layer import audit
from server.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

PASSWORD_BYTES = 32
# Lifecycle states in which a device loses its broker login.
REVOKING = {
    LifecycleState.RETIRED.value: "retired",
    LifecycleState.RELEASED.value: "released",
    LifecycleState.LOST.value: "lost",
}
REENROLLED = "re-enrolled"
# Commands that may still reach a device after its credential was revoked (see above).
LAST_WORD_COMMANDS = ("wipe", "release")
PENDING_COMMANDS = ("queued", "sent")


def issue(session: Session, device_id: str, organisation_id: int, now: datetime) -> str:
    """A new password for the device (returned once); its earlier credential is revoked."""
    _revoke_live(session, device_id, now, REENROLLED)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    session.add(
        orm.DeviceCredential(
            device_id=device_id,
            organisation_id=organisation_id,
            password_hash=mosquitto_auth.hash_password(password),
            created_at=now,
        )
    )
    session.flush()
    return password


def _revoke_live(session: Session, device_id: str, now: datetime, reason: str) -> int:
    rows = session.scalars(
        select(orm.DeviceCredential).where(
            orm.DeviceCredential.device_id == device_id,
            orm.DeviceCredential.revoked_at.is_(None),
        )
    ).all()
    for row in rows:
        row.revoked_at = now
        row.revoked_reason = reason
    return len(rows)


def revoke(
    session: Session,
    device: orm.Device,
    now: datetime,
    *,
    principal: Principal | None,
    reason: str,
    system_part: str,
) -> bool:
    """Revoke the device's live credential (audited); False if it had none."""
    if not _revoke_live(session, device.id, now, reason):
        return False
    audit.record(
        session,
        principal=principal,
        action=f"{system_part}:device_credential:revoke",
        subject_type="device",
        subject_id=device.id,
        organisation_id=device.organisation_id,
        after={"reason": reason},
        system_part=system_part,
    )
    return True


def follow_lifecycle(
    session: Session,
    device: orm.Device,
    now: datetime,
    *,
    principal: Principal | None,
    system_part: str,
) -> bool:
    """Revoke the credential of a device that was just retired, released or marked lost."""
    reason = REVOKING.get(device.lifecycle_state)
    if reason is None:
        return False
    return revoke(session, device, now, principal=principal, reason=reason, system_part=system_part)


def has_live_credential(session: Session, device_id: str) -> bool:
    return (
        session.scalar(
            select(orm.DeviceCredential.id).where(
                orm.DeviceCredential.device_id == device_id,
                orm.DeviceCredential.revoked_at.is_(None),
            )
        )
        is not None
    )


def broker_logins(session: Session, now: datetime) -> list[tuple[str, str]]:
    """(device id, password hash) of every device that may log in to the broker now."""
    cred = orm.DeviceCredential
    rows = session.scalars(
        select(cred).where(
            (cred.revoked_at.is_(None)) | (cred.revoked_reason.in_(sorted(REVOKING.values())))
        )
    ).all()
    newest: dict[str, orm.DeviceCredential] = {}
    for row in rows:
        known = newest.get(row.device_id)
        if known is None or (row.created_at, row.id) > (known.created_at, known.id):
            newest[row.device_id] = row
    revoked = [d for d, row in newest.items() if row.revoked_at is not None]
    last_word: set[str] = set()
    if revoked:
        last_word = set(
            session.scalars(
                select(orm.CommandRow.device_id).where(
                    orm.CommandRow.device_id.in_(revoked),
                    orm.CommandRow.name.in_(LAST_WORD_COMMANDS),
                    orm.CommandRow.state.in_(PENDING_COMMANDS),
                    orm.CommandRow.expires_at > now,
                )
            ).all()
        )
    return sorted(
        (device_id, row.password_hash)
        for device_id, row in newest.items()
        if row.revoked_at is None or device_id in last_word
    )


@dataclass
class BrokerAuthSync:
    """Keeps `<broker_auth_dir>/passwd` and `acl` equal to the live credentials."""

    directory: Path
    prefix: str
    server_username: str
    server_password: str
    pid_file: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerAuthSync | None:
        """None when the server does not manage the broker's authentication."""
        if not settings.broker_auth_dir:
            return None
        if settings.mqtt_username and not settings.mqtt_password:
            log.warning("mqtt_username is set without mqtt_password: the server cannot log in")
        return cls(
            Path(settings.broker_auth_dir),
            settings.topic_prefix,
            settings.mqtt_username,
            settings.mqtt_password,
            settings.broker_pid_file,
        )

    @property
    def password_path(self) -> Path:
        return self.directory / mosquitto_auth.PASSWORD_FILE

    @property
    def acl_path(self) -> Path:
        return self.directory / mosquitto_auth.ACL_FILE

    def sync(self, session: Session, now: datetime, *, force: bool = False) -> bool:
        """Rewrite the files and reload the broker if the logins changed; True if it did."""
        logins = broker_logins(session, now)
        server = (self.server_username, self.server_password)
        digest = hashlib.sha256(repr((logins, server, self.prefix)).encode()).hexdigest()
        if digest == self._fingerprint and not force:
            return False
        entries = [(d, h) for d, h in logins if d != self.server_username]
        if self.server_username and self.server_password:
            entries.append(
                (self.server_username, mosquitto_auth.hash_password(self.server_password))
            )
        mosquitto_auth.write_atomic(
            self.acl_path, mosquitto_auth.render_acl(self.prefix, self.server_username)
        )
        mosquitto_auth.write_atomic(
            self.password_path, mosquitto_auth.render_password_file(entries)
        )
        reloaded = bool(self.pid_file) and mosquitto_auth.reload_broker(self.pid_file)
        if self.pid_file and not reloaded:
            log.warning("broker auth files written but no broker to reload at %s", self.pid_file)
        log.info("broker auth files written: %d device login(s)", len(logins))
        self._fingerprint = digest
        return True


def sync_files(
    uow: UnitOfWork, sync: BrokerAuthSync, now: datetime, *, force: bool = False
) -> bool:
    """The scheduler's handler: `sync.sync` over a unit of work of its own (it only reads);
    True if the files were written."""
    with uow:
        return sync.sync(uow.session, now, force=force)
