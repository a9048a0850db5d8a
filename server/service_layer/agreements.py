"""The loan agreement's texts: publishing a version in one language, and finding the texts a
handover offers and records.

A version (e.g. "2026-1") is written in several languages (`domain/agreements.py`); each
language is its own row, published once and never changed. The current version is the one
published last; a handover offers the languages that version exists in and records the row
the client chose (`loan.agreement_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict, Forbidden, InvalidInput
from server.adapters import orm
from server.domain.agreements import check_language, default_choice, offered
from server.domain.model import Principal, Role, check_text
from server.service_layer import audit
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class AgreementText:
    """One language of one agreement version."""

    version: str
    language: str
    text: str


def publish(uow: UnitOfWork, principal: Principal, version: str, language: str, text: str) -> None:
    """Publish one language of an agreement version (administrators); a published text is
    never changed: a correction is a new version."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators publish agreement texts")
    version = check_text("version", version, max_len=40)
    check_language(language)
    if not text.strip():
        raise InvalidInput(
            "the agreement text is required", [{"field": "text", "message": "required"}]
        )
    with uow:
        exists = uow.session.scalar(
            select(orm.Agreement.id).where(
                orm.Agreement.organisation_id == principal.organisation_id,
                orm.Agreement.version == version,
                orm.Agreement.language == language,
            )
        )
        if exists:
            raise Conflict(
                f"agreement version {version} exists in {language}; texts are never changed"
            )
        uow.session.add(
            orm.Agreement(
                organisation_id=principal.organisation_id,
                version=version,
                language=language,
                text=text,
            )
        )
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "agreement:create"),
            subject_type="agreement",
            subject_id=version,
            organisation_id=principal.organisation_id,
            after={"version": version, "language": language},
            system_part=principal.via,
        )
        uow.commit()


def current_version(session: Session, organisation_id: int) -> str | None:
    """The version published last (in any language), or None."""
    return session.scalar(
        select(orm.Agreement.version)
        .where(orm.Agreement.organisation_id == organisation_id)
        .order_by(orm.Agreement.created_at.desc(), orm.Agreement.id.desc())
        .limit(1)
    )


def texts_of(session: Session, organisation_id: int, version: str) -> list[AgreementText]:
    """The languages `version` is written in, in the order they are offered."""
    rows = {
        row.language: row
        for row in session.scalars(
            select(orm.Agreement).where(
                orm.Agreement.organisation_id == organisation_id,
                orm.Agreement.version == version,
            )
        )
    }
    return [AgreementText(rows[lang].version, lang, rows[lang].text) for lang in offered(rows)]


def current_texts(session: Session, organisation_id: int) -> list[AgreementText]:
    """The current version's texts, in the order they are offered (empty: none published)."""
    version = current_version(session, organisation_id)
    return texts_of(session, organisation_id, version) if version else []


def chosen(texts: list[AgreementText], language: str | None) -> AgreementText | None:
    """The text in `language` if the version has it, else the default choice (Finnish first)."""
    by_language = {t.language: t for t in texts}
    if language in by_language:
        return by_language[language]
    fallback = default_choice(by_language)
    return by_language[fallback] if fallback else None


def for_handover(
    session: Session, organisation_id: int, version: str, language: str | None
) -> orm.Agreement:
    """The agreement row a handover records: `version` in `language` (None: the default
    choice, Finnish when the version has it); InvalidInput if there is no such text."""
    rows = {
        row.language: row
        for row in session.scalars(
            select(orm.Agreement).where(
                orm.Agreement.organisation_id == organisation_id,
                orm.Agreement.version == version,
            )
        )
    }
    if not rows:
        raise InvalidInput(
            "unknown agreement version",
            [{"field": "agreement_version", "message": "not an agreement of yours"}],
        )
    picked = language if language is not None else default_choice(rows)
    if picked not in rows:
        raise InvalidInput(
            "unknown agreement language",
            [
                {
                    "field": "agreement_language",
                    "message": f"one of {', '.join(offered(rows))} for version {version}",
                }
            ],
        )
    return rows[picked]
