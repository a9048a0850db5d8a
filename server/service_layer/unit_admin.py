"""Administrators' view and edits of a unit: its name, kiosk profile, loan rules, agreements,
usage collection.

The kiosk profile, loan rules and agreement texts are set with the same handlers as the REST
API (`loans.set_kiosk_profile`, `loans.set_rules`, `loans.add_agreement`); this module adds
renaming a unit, switching its usage collection (API and console) and the reads the console
page needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.errors import Forbidden, NotFound
from server.adapters import orm
from server.domain.loans import LoanRules
from server.domain.model import Principal, Role, check_text
from server.domain.policy import KioskProfile
from server.service_layer import audit
from server.service_layer.desired import refresh_desired, unit_devices
from server.service_layer.loans import store_rules, unit_for
from server.service_layer.people import UnitView, list_units, unit_view
from server.service_layer.rules import stored_rules
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ModelRules:
    """A unit's loan rules for one device model ("": every model), as stored."""

    model: str
    loan_days: int
    renewal_days: int
    max_renewals: int
    reminder_after_days: int
    restrict_after_days: int
    offline_lock_after_days: int


@dataclass(frozen=True)
class UnitSettings:
    unit: UnitView
    profile: KioskProfile | None  # None: none set yet
    rules: list[ModelRules]  # model "" first
    models: list[str] = field(default_factory=list)  # the models of the unit's tablets


@dataclass(frozen=True)
class AgreementView:
    version: str
    text: str
    created_at: datetime
    language: str = "fi"


@dataclass(frozen=True)
class UnitsPage:
    units: list[UnitView]
    agreements: list[AgreementView]  # newest first


def units_page(uow: UnitOfWork, principal: Principal) -> UnitsPage:
    """The organisation's units and agreement texts (console: /admin/units)."""
    with uow:
        return UnitsPage(
            [unit_view(u) for u in list_units(uow.session, principal)],
            [
                AgreementView(a.version, a.text, a.created_at, a.language)
                for a in agreements(uow.session, principal)
            ],
        )


def unit_settings(uow: UnitOfWork, principal: Principal, code: str) -> UnitSettings:
    """A unit's name, kiosk profile, loan-rule sets and its tablets' models (administrators;
    console: /admin/units/<code>, API: GET /units/<code>/loan-rules)."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators see a unit's settings")
    with uow:
        return settings_of(uow.session, principal, code)


def _model_rules(row: orm.LoanRulesRow) -> ModelRules:
    return ModelRules(model=row.model, **vars(stored_rules(row)))


def settings_of(session: Session, principal: Principal, code: str) -> UnitSettings:
    unit = unit_for(session, principal, code)
    row = session.get(orm.KioskProfileRow, unit.id)
    profile = (
        KioskProfile(tuple(row.apps), tuple(row.shortcuts), row.settings_locked) if row else None
    )
    rules = [
        _model_rules(row)
        for row in session.scalars(
            select(orm.LoanRulesRow)
            .where(orm.LoanRulesRow.unit_id == unit.id)
            .order_by(orm.LoanRulesRow.model)
        )
    ]
    return UnitSettings(unit_view(unit), profile, rules, fleet_models(session, unit.id))


def fleet_models(session: Session, unit_id: int) -> list[str]:
    """The device models of a unit's tablets, as the tablets name them."""
    return sorted(
        session.scalars(
            select(orm.Device.model)
            .where(orm.Device.unit_id == unit_id, orm.Device.model != "")
            .distinct()
        )
    )


@dataclass(frozen=True)
class RulesSaved:
    model: str  # as stored: the fleet's spelling when it names a model case-insensitively
    known_model: bool  # "" or a model of the unit's tablets


def save_rules(
    uow: UnitOfWork,
    principal: Principal,
    code: str,
    model: str,
    rules: LoanRules,
    replaces: str | None = None,
) -> RulesSaved:
    """Set a unit's loan rules for one device model ("": every model), audited.

    A model spelt like one of the unit's tablets' models but for case is stored as the tablets
    spell it (the rules are looked up by exact model). `replaces`: the model of the set being
    edited; when the model was changed, that set is removed, so an edit never leaves a copy.
    """
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators set loan rules")
    model = check_text("model", model, max_len=100, required=False)
    with uow:
        unit = unit_for(uow.session, principal, code)
        models = fleet_models(uow.session, unit.id)
        spelt = {m.casefold(): m for m in models}
        model = spelt.get(model.casefold(), model)
        if replaces is not None and replaces != model:
            _delete_rules(uow.session, principal, unit, replaces)
        store_rules(uow.session, principal, unit, model, rules)
        uow.commit()
    return RulesSaved(model, model == "" or model in models)


def delete_rules(uow: UnitOfWork, principal: Principal, code: str, model: str) -> None:
    """Remove a unit's loan rules for one model ("": its default set), audited; loans of that
    model then follow the unit's default set, or the built-in defaults."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators remove loan rules")
    with uow:
        unit = unit_for(uow.session, principal, code)
        _delete_rules(uow.session, principal, unit, model)
        uow.commit()


def _rules_row(session: Session, unit_id: int, model: str) -> orm.LoanRulesRow | None:
    return session.scalar(
        select(orm.LoanRulesRow).where(
            orm.LoanRulesRow.unit_id == unit_id, orm.LoanRulesRow.model == model
        )
    )


def _delete_rules(session: Session, principal: Principal, unit: orm.Unit, model: str) -> None:
    row = _rules_row(session, unit.id, model)
    if row is None:
        raise NotFound("no such loan rules")
    before = {"model": model, **vars(stored_rules(row))}
    session.delete(row)
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, "loan_rules:delete"),
        subject_type="unit",
        subject_id=unit.code,
        organisation_id=principal.organisation_id,
        before=before,
        after=None,
        system_part=principal.via,
    )


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
