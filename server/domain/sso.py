"""Single sign-on's rules: who a provider's claims make a person here.

The region's identity provider says who someone is and which groups they are in; the SSO
file maps groups to a role and units. Every sign-in applies the mapping again, so the
provider stays the one place where a professional is moved or removed. No I/O here: the
claims arrive already checked (server/adapters/oidc.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lainaamo.errors import DomainError
from server.domain.model import Role

# The more a role may do, the higher: someone in an IT group and a counsellor group is IT
# support (who sees every unit anyway), never the lesser of the two.
ROLE_RANK = {Role.COUNSELLOR: 0, Role.IT_SUPPORT: 1, Role.ADMIN: 2}
PROVIDER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_USERNAME = 120


# Why a sign-in was refused, as the person is told (the console words them in fi/sv/en); the
# audit log gets the operator's reason as well.
REFUSALS = {
    "failed": "Signing in through your organisation did not succeed. Try again.",
    "no_group": "Your account is in no group that may use Lainaamo.",
    "deactivated": "Your Lainaamo account has been deactivated.",
    "not_allowed": "This account may not sign in to Lainaamo.",
    "name_taken": "An account with your user name already exists. Ask an administrator.",
    "groups_missing": "Your organisation's sign-in service did not send your groups.",
    "name_too_long": "Your user name from the sign-in service is too long for Lainaamo.",
}


class SsoRefused(DomainError):
    """A sign-in through a provider that must not let the person in: `kind` (a key of
    REFUSALS) for the person, `reason` for the audit log and the operator (never tokens)."""

    code = "sso_refused"

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(REFUSALS[kind])
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class GroupRule:
    """Members of `group` get `role`; a counsellor group names the units (codes) it sees."""

    group: str
    role: Role
    units: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleGrant:
    """What a person's groups make them: the role, its units and the groups that counted."""

    role: Role
    units: tuple[str, ...]
    groups: tuple[str, ...]


def map_groups(groups: Iterable[str], rules: Sequence[GroupRule]) -> RoleGrant | None:
    """The role and units of someone in `groups`, or None if no rule names any of them.

    The role is the highest of the matched rules; the units are those of the matched rules
    of that role (a counsellor in two unit groups sees both units)."""
    member = set(groups)
    matched = [rule for rule in rules if rule.group in member]
    if not matched:
        return None
    role = max((rule.role for rule in matched), key=ROLE_RANK.__getitem__)
    units = sorted({unit for rule in matched if rule.role is role for unit in rule.units})
    return RoleGrant(role, tuple(units), tuple(sorted({rule.group for rule in matched})))


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name or dotted path (Keycloak's client roles sit at
    `resource_access.<client>.roles`); None if absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def groups_of(claims: Mapping[str, Any], path: str) -> list[str]:
    """The person's groups from the claim at `path`: a list of strings or one string.

    Entra ID leaves the groups out when someone is in too many (its "overage": the token
    names `_claim_names.groups` instead); that is refused in words an operator can act on
    rather than taken as "in no group"."""
    value = claim_at(claims, path)
    if value is None:
        names = claims.get("_claim_names")
        if isinstance(names, Mapping) and path in names:
            raise SsoRefused(
                "groups_missing",
                f"the provider left claim {path!r} out (group overage): map app roles "
                "(claim 'roles') instead of groups",
            )
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def username_from(claims: Mapping[str, Any], claim: str, allowed_domains: Sequence[str]) -> str:
    """The user name a provider's claims give: the configured claim (e-mail or
    preferred_username), else the subject; with `allowed_domains`, only names in them (a
    guest account of another tenant has a name outside them and is refused)."""
    value = claim_at(claims, claim)
    name = value.strip() if isinstance(value, str) and value.strip() else str(claims["sub"])
    if len(name) > MAX_USERNAME:
        raise SsoRefused(
            "name_too_long",
            f"user name over {MAX_USERNAME} characters",
        )
    if allowed_domains:
        domain = name.rpartition("@")[2].casefold()
        if "@" not in name or domain not in {d.casefold() for d in allowed_domains}:
            raise SsoRefused(
                "not_allowed",
                f"user name outside the allowed domains ({', '.join(allowed_domains)})",
            )
    return name
