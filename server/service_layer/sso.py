"""Signing staff in through their region's identity provider (OpenID Connect).

`start` sends the browser to the provider with a fresh state, nonce and PKCE verifier, kept
here (only the state's SHA-256 as the key) and bound to the browser by a cookie holding the
state. `finish` takes the provider's answer once: the state must match the cookie and a
pending attempt younger than ten minutes; the code is exchanged with the verifier; the ID
token must verify against the provider's JWKS (server/adapters/oidc.py). Then the groups
mapping decides who the person is here (server/domain/sso.py), creating the account on a
first sign-in and applying the mapping again on every one: moved in the provider, moved here;
in no mapped group, refused, with their sessions ended and API tokens revoked.

The audit log says how each person signed in (`console:auth:sign_in` with the method and the
provider) and why a sign-in was refused; it never holds a token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from lainaamo.errors import NotFound
from server.adapters.oidc import OidcClient, OidcError, Providers
from server.adapters.orm import ApiToken, ConsoleSession, Organisation, SsoAttempt, Unit, User
from server.adapters.sso_config import ProviderConfig
from server.domain.model import Principal, Role
from server.domain.sso import RoleGrant, SsoRefused, groups_of, map_groups, username_from
from server.service_layer import audit, console_auth, lockout
from server.service_layer.accounts import hash_token, principal_of
from server.service_layer.unit_of_work import UnitOfWork

ATTEMPT_LIFETIME = timedelta(minutes=10)
SIGN_IN, REAUTH = "sign_in", "reauth"


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the state its cookie must hold when it comes back."""

    url: str
    state: str


@dataclass(frozen=True)
class Finished:
    purpose: str
    next_path: str
    cookie: str | None  # a new console session (a sign-in); None for a re-authentication


@dataclass(frozen=True)
class ProviderButton:
    name: str
    label: str


def buttons(providers: Providers) -> list[ProviderButton]:
    """The sign-in page's "Sign in with …" buttons."""
    return [ProviderButton(p.name, p.label) for p in providers.config.providers.values()]


def start(
    uow: UnitOfWork,
    providers: Providers,
    name: str,
    purpose: str,
    next_path: str,
    redirect_uri: str,
    now: datetime,
    session_cookie: str | None = None,
) -> Started:
    """Begin a sign-in (or, for a signed-in SSO user, a re-authentication) at provider `name`."""
    provider, client = _provider(providers, name)
    if purpose not in (SIGN_IN, REAUTH):
        raise NotFound(f"no sign-in purpose {purpose}")
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    session_hash = None
    with uow:
        if purpose == REAUTH:
            row = uow.session.get(ConsoleSession, hash_token(session_cookie or ""))
            if row is None or row.sso_provider != name:
                raise SsoRefused(
                    "failed", "re-authentication at a provider the session did not use"
                )
            session_hash = row.id_hash
        uow.session.execute(
            delete(SsoAttempt).where(SsoAttempt.created_at < now - ATTEMPT_LIFETIME)
        )
        uow.session.add(
            SsoAttempt(
                state_hash=hash_token(state),
                provider=name,
                purpose=purpose,
                nonce=nonce,
                code_verifier=verifier,
                next_path=next_path[:500],
                session_hash=session_hash,
                created_at=now,
            )
        )
        uow.commit()
    try:
        url = client.authorization_url(
            redirect_uri, state, nonce, verifier, reauthenticate=purpose == REAUTH
        )
    except OidcError as exc:
        _refuse(uow, provider, None, f"the provider cannot be reached: {exc}")
    return Started(url, state)


def finish(
    uow: UnitOfWork,
    providers: Providers,
    name: str,
    *,
    state: str,
    cookie_state: str,
    code: str,
    error: str,
    redirect_uri: str,
    now: datetime,
) -> Finished:
    """Take the provider's answer; SsoRefused (audited) if anything does not hold."""
    provider, client = _provider(providers, name)
    attempt = _take_attempt(uow, provider, state, cookie_state, now)
    if error:
        _refuse(uow, provider, None, f"the provider answered {error[:60]!r}")
    reauth = attempt.purpose == REAUTH
    try:
        id_token = client.exchange(code, redirect_uri, attempt.code_verifier)
        claims = client.verify(
            id_token, attempt.nonce, auth_after=attempt.created_at.timestamp() if reauth else None
        )
        groups = groups_of(claims, provider.groups_claim)
    except OidcError as exc:
        _refuse(uow, provider, None, str(exc))
    except SsoRefused as exc:
        _refuse(uow, provider, None, exc.reason, exc.kind)
    grant = map_groups(groups, provider.rules)
    if reauth:
        _reauthenticated(uow, provider, attempt, str(claims["sub"]), grant, now)
        return Finished(REAUTH, attempt.next_path, None)
    cookie = _signed_in(uow, provider, claims, grant, id_token, now)
    return Finished(SIGN_IN, attempt.next_path, cookie)


def end_session_url(
    uow: UnitOfWork, providers: Providers, cookie: str, post_logout_redirect_uri: str
) -> str | None:
    """The provider's single logout for the session a cookie stands for (read before
    `console_auth.sign_out` ends it); None for a password session or a provider without it."""
    with uow:
        row = uow.session.get(ConsoleSession, hash_token(cookie)) if cookie else None
        if row is None or row.sso_provider is None:
            return None
        name, hint = row.sso_provider, row.id_token_hint
    client = providers.client(name)
    return client.end_session_url(hint, post_logout_redirect_uri) if client else None


# --- the steps


def _provider(providers: Providers, name: str) -> tuple[ProviderConfig, OidcClient]:
    provider = providers.config.providers.get(name)
    client = providers.client(name)
    if provider is None or client is None:
        raise NotFound(f"no sign-in provider {name}")
    return provider, client


def _take_attempt(
    uow: UnitOfWork, provider: ProviderConfig, state: str, cookie_state: str, now: datetime
) -> SsoAttempt:
    """The pending attempt this answer belongs to, removed so it is used once."""
    if not state or not hmac.compare_digest(state.encode(), cookie_state.encode()):
        _refuse(uow, provider, None, "the answer's state is not this browser's")
    with uow:
        attempt = uow.session.get(SsoAttempt, hash_token(state))
        if attempt is not None:
            uow.session.delete(attempt)
            uow.commit()
    if attempt is None or attempt.provider != provider.name:
        _refuse(uow, provider, None, "no sign-in is waiting for this answer")
    if attempt.created_at < now - ATTEMPT_LIFETIME:
        _refuse(uow, provider, None, "the answer came too late")
    return attempt


def _reauthenticated(
    uow: UnitOfWork,
    provider: ProviderConfig,
    attempt: SsoAttempt,
    subject: str,
    grant: RoleGrant | None,
    now: datetime,
) -> None:
    with uow:
        row = uow.session.get(ConsoleSession, attempt.session_hash or "")
        user = row.user if row is not None else None
        if user is None or (user.sso_provider, user.sso_subject) != (provider.name, subject):
            reason = "re-authenticated as another person, or the session has ended"
            _refuse_in(uow, provider, user, reason)
        if grant is None or not user.active:
            _refuse_in(uow, provider, user, "in none of the mapped groups any more", "no_group")
        assert row is not None  # for mypy: the user came from it
        row.authenticated_at = now
        _audit(uow.session, user, "console:auth:reauth", f"sso {provider.name}")
        uow.commit()


def _signed_in(
    uow: UnitOfWork,
    provider: ProviderConfig,
    claims: dict[str, Any],
    grant: RoleGrant | None,
    id_token: str,
    now: datetime,
) -> str:
    subject = str(claims["sub"])
    with uow:
        session = uow.session
        org = session.scalar(select(Organisation).where(Organisation.code == provider.organisation))
        if org is None:
            _refuse_in(uow, provider, None, f"no organisation {provider.organisation!r}")
        user = session.scalar(
            select(User).where(User.sso_provider == provider.name, User.sso_subject == subject)
        )
        if grant is None:
            if user is not None and user.active:
                _remove(session, user, now)
            _refuse_in(uow, provider, user, "in none of the mapped groups", "no_group")
        created = user is None
        if user is None:
            user = _first_sign_in(uow, provider, org, claims)
        elif not user.active and user.sso_removed_at is None:
            reason = "the account was deactivated by an administrator"
            _refuse_in(uow, provider, user, reason, "deactivated")
        _apply(uow, provider, org, user, grant, created)
        cookie, _csrf = console_auth.open_session(
            session, user, now, "sso", sso_provider=provider.name, id_token_hint=id_token
        )
        _audit(
            session,
            user,
            "console:auth:sign_in",
            f"sso {provider.name}: groups {', '.join(grant.groups)}",
            after={"method": "sso", "provider": provider.name},
        )
        uow.commit()
        return cookie


def _first_sign_in(
    uow: UnitOfWork, provider: ProviderConfig, org: Organisation, claims: dict[str, Any]
) -> User:
    """The account of someone signing in for the first time: new, or (with `link_existing`)
    the local account of the same name in the organisation."""
    try:
        username = username_from(claims, provider.username_claim, provider.allowed_domains)
    except SsoRefused as exc:
        _refuse_in(uow, provider, None, exc.reason, exc.kind)
    session = uow.session
    existing = session.scalar(select(User).where(User.username == username))
    if existing is not None:
        linkable = (
            provider.link_existing
            and existing.sso_provider is None
            and existing.organisation_id == org.id
        )
        if not linkable:
            _refuse_in(
                uow,
                provider,
                existing,
                f"an account named {username} exists and is not linked to this provider",
                "name_taken",
            )
        existing.sso_provider, existing.sso_subject = provider.name, str(claims["sub"])
        existing.password_hash = None  # the provider decides from now on
        _audit(session, existing, "console:user:sso_linked", f"linked to {provider.name}")
        return existing
    user = User(
        organisation_id=org.id,
        username=username,
        role=Role.COUNSELLOR.value,
        password_hash=None,
        sso_provider=provider.name,
        sso_subject=str(claims["sub"]),
    )
    session.add(user)
    session.flush()
    return user


def _apply(
    uow: UnitOfWork,
    provider: ProviderConfig,
    org: Organisation,
    user: User,
    grant: RoleGrant,
    created: bool,
) -> None:
    """Make the account what the groups say: role, units, active."""
    session = uow.session
    units = list(
        session.scalars(
            select(Unit).where(Unit.organisation_id == org.id, Unit.code.in_(grant.units))
        )
    )
    missing = sorted(set(grant.units) - {u.code for u in units})
    if missing:
        _refuse_in(uow, provider, user, f"the mapping names unknown unit(s) {', '.join(missing)}")
    before = _snapshot(user)
    user.role = grant.role.value
    user.units = units
    if not user.active:
        user.active, user.sso_removed_at = True, None
    after = _snapshot(user)
    if created:
        reason = f"first sign-in through {provider.name}"
        _audit(session, user, "console:user:sso_create", reason, after=after)
    elif after != before:
        _audit(session, user, "console:user:sso_update", "groups at sign-in", before, after)


def _remove(session: Session, user: User, now: datetime) -> None:
    """No mapped group any more: inactive, sessions ended, API tokens revoked."""
    before = _snapshot(user)
    user.active, user.sso_removed_at = False, now
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    _audit(session, user, "console:user:sso_remove", "in none of the mapped groups", before)


def _snapshot(user: User) -> dict[str, Any]:
    return {
        "role": user.role,
        "units": sorted(u.code for u in user.units),
        "active": user.active,
    }


def _refuse(
    uow: UnitOfWork,
    provider: ProviderConfig,
    user: User | None,
    reason: str,
    kind: str = "failed",
) -> NoReturn:
    """Audit a refused sign-in and raise SsoRefused."""
    with uow:
        _refuse_in(uow, provider, user, reason, kind)


def _refuse_in(
    uow: UnitOfWork,
    provider: ProviderConfig,
    user: User | None,
    reason: str,
    kind: str = "failed",
) -> NoReturn:
    """Inside an open unit of work: audit the refusal, commit what came before it (a removal
    must stick), raise SsoRefused."""
    session = uow.session
    org_id = (
        user.organisation_id
        if user is not None
        else session.scalar(
            select(Organisation.id).where(Organisation.code == provider.organisation)
        )
    )
    audit.record(
        session,
        principal=principal_of(user, "console") if user is not None else None,
        action="console:auth:sso_refused",
        subject_type="user" if user is not None else "sso_provider",
        subject_id=str(user.id) if user is not None else provider.name,
        organisation_id=org_id,
        reason=f"{provider.name}: {reason}"[:500],
        system_part="console",
    )
    uow.commit()
    raise SsoRefused(kind, reason)


def _audit(
    session: Session,
    user: User,
    action: str,
    reason: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    lockout.record(session, user, action, reason, "console", after, before)


@dataclass(frozen=True)
class SetupCheck:
    """One provider's set-up as `lainaamo sso check` reports it."""

    provider: str
    redirect_uri: str
    post_logout_redirect_uri: str
    problems: list[str]
    facts: list[str]


def check_setup(uow: UnitOfWork, providers: Providers, public_url: str) -> list[SetupCheck]:
    """Whether each provider of the SSO file can work: its discovery document and keys are
    reachable, its organisation and every mapped unit exist; and the addresses to register at
    the provider."""
    base = public_url.rstrip("/")
    found = []
    for name, provider in providers.config.providers.items():
        problems: list[str] = []
        facts: list[str] = []
        client = providers.clients[name]
        try:
            meta = client.metadata()
            facts.append(f"authorisation endpoint {meta.authorization_endpoint}")
            facts.append(f"token endpoint {meta.token_endpoint}")
            facts.append(
                f"single logout {meta.end_session_endpoint}"
                if meta.end_session_endpoint
                else "no single logout (the provider has no end_session_endpoint)"
            )
            facts.append(f"{len(client.key_ids())} signing key(s) in the JWKS")
        except OidcError as exc:
            problems.append(str(exc))
        with uow:
            org = uow.session.scalar(
                select(Organisation).where(Organisation.code == provider.organisation)
            )
            if org is None:
                problems.append(f"no organisation {provider.organisation!r} (lainaamo org add)")
            else:
                codes = set(
                    uow.session.scalars(select(Unit.code).where(Unit.organisation_id == org.id))
                )
                for rule in provider.rules:
                    missing = sorted(set(rule.units) - codes)
                    if missing:
                        problems.append(f"group {rule.group}: no unit {', '.join(missing)}")
                    units = f" in {', '.join(rule.units)}" if rule.units else ""
                    facts.append(f"group {rule.group} → {rule.role.value}{units}")
        found.append(
            SetupCheck(
                name,
                f"{base}/login/sso/{name}/callback",
                f"{base}/signed-out",
                problems,
                facts,
            )
        )
    return found


@dataclass(frozen=True)
class MappingRow:
    group: str
    role: str
    units: tuple[str, ...]  # the units' names


@dataclass(frozen=True)
class ProviderSummary:
    name: str
    label: str
    issuer: str
    groups_claim: str
    rows: list[MappingRow]


@dataclass(frozen=True)
class SignInSummary:
    """How an organisation's staff sign in, as its administrators see it (the users page):
    the mapping of groups to roles is where SSO set-ups most often go wrong."""

    local_passwords: bool
    providers: list[ProviderSummary]


def sign_in_summary(uow: UnitOfWork, providers: Providers, principal: Principal) -> SignInSummary:
    with uow:
        org = uow.session.get(Organisation, principal.organisation_id)
        if org is None:
            raise NotFound("no organisation")
        rows = uow.session.execute(
            select(Unit.code, Unit.name).where(Unit.organisation_id == org.id)
        )
        names = {code: name for code, name in rows}
        org_code = org.code
    config = providers.config
    return SignInSummary(
        config.local_passwords(org_code),
        [
            ProviderSummary(
                p.name,
                p.label,
                p.issuer,
                p.groups_claim,
                [
                    MappingRow(r.group, r.role.value, tuple(names.get(u, u) for u in r.units))
                    for r in p.rules
                ],
            )
            for p in config.for_organisation(org_code)
        ],
    )
