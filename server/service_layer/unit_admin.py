"""Administrators' view and edits of a unit: its name, kiosk profile, loan rules, agreements,
usage collection.

The kiosk profile, loan rules and agreement texts are set with the same handlers as the REST
API (`loans.set_kiosk_profile`, `loans.set_rules`, `loans.add_agreement`); this module adds
renaming a unit, switching its usage collection (API and console) and the reads the console
page needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.errors import Forbidden
from server.adapters import orm
from server.domain.model import Principal, Role, check_text
from server.domain.policy import KioskProfile
from server.service_layer import audit
from server.service_layer.desired import refresh_desired, unit_devices
from server.service_layer.loans import unit_for
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class UnitSettings:
    unit: orm.Unit
    profile: KioskProfile | None  # None: none set yet
    rules: list[orm.LoanRulesRow]  # model "" first


def settings_of(session: Session, principal: Principal, code: str) -> UnitSettings:
    unit = unit_for(session, principal, code)
    row = session.get(orm.KioskProfileRow, unit.id)
    profile = (
        KioskProfile(tuple(row.apps), tuple(row.shortcuts), row.settings_locked) if row else None
    )
    rules = list(
        session.scalars(
            select(orm.LoanRulesRow)
            .where(orm.LoanRulesRow.unit_id == unit.id)
            .order_by(orm.LoanRulesRow.model)
        )
    )
    return UnitSettings(unit, profile, rules)


def agreements(session: Session, principal: Principal) -> list[orm.Agreement]:
    """The organisation's agreement texts, newest first."""
    return list(
        session.scalars(
            select(orm.Agreement)
            .where(orm.Agreement.organisation_id == principal.organisation_id)
            .order_by(orm.Agreement.created_at.desc(), orm.Agreement.id.desc())
        )
    )


def rename_unit(uow: UnitOfWork, principal: Principal, code: str, name: str) -> None:
    """Change a unit's display name (its code stays: the API and imports use it)."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators rename units")
    name = check_text("name", name, max_len=200)
    with uow:
        unit = unit_for(uow.session, principal, code)
        before = {"name": unit.name}
        unit.name = name
        audit.record(
            uow.session,
            principal=principal,
            action="console:unit:rename",
            subject_type="unit",
            subject_id=code,
            organisation_id=principal.organisation_id,
            before=before,
            after={"name": name},
            system_part="console",
        )
        uow.commit()


def set_usage_collection(
    uow: UnitOfWork, principal: Principal, code: str, enabled: bool, now: datetime, source: str
) -> int:
    """Switch a unit's usage collection (docs/protocol.md §18); its tablets get a new desired
    state with or without `usage`. Returns how many changed. `source`: "api" or "console"."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators switch usage collection")
    with uow:
        unit = unit_for(uow.session, principal, code)
        before = {"usage_collection": unit.usage_collection}
        unit.usage_collection = enabled
        uow.session.flush()
        changed = refresh_desired(uow.session, unit_devices(uow.session, unit.id), now)
        audit.record(
            uow.session,
            principal=principal,
            action=f"{source}:unit:usage_collection",
            subject_type="unit",
            subject_id=code,
            organisation_id=principal.organisation_id,
            before=before,
            after={"usage_collection": enabled},
            system_part=source,
        )
        uow.commit()
        return len(changed)
