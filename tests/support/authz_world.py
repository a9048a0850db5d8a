"""Two organisations with objects in every scope, for the authorisation matrix.

The `fleet` organisation (units aikuissosiaalityo/mielenterveys/paihde; its counsellor works
in aikuissosiaalityo) plus a second organisation with its own unit, device, loan, users,
enrollment token, bulk command and remote-support session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from server.adapters import orm
from server.domain.commands import AddUser, CreateDevice
from server.domain.loan_commands import RequestLoan
from server.domain.model import Principal, Role
from server.entrypoints.demo import seed_loans
from server.service_layer import accounts, devices, loans
from support.fleet import Fleet

ROLES = ("admin", "it_support", "counsellor")
OWN_UNIT, OTHER_UNIT = "aikuissosiaalityo", "mielenterveys"
OTHER_ORG, OTHER_ORG_UNIT = "toinen", "toinen-yksikko"
# Scopes an object can be in, seen from a user of the fleet organisation.
OWN, OTHER_UNIT_SCOPE, OTHER_ORG_SCOPE = "own", "other unit", "other organisation"


@dataclass
class World:
    fleet: Fleet
    tokens: dict[tuple[str, str], str]  # (organisation code, role) -> bearer token
    # path parameter -> scope -> id (strings, as they appear in URLs)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    # support sessions belong to whoever started them: role -> session id (fleet org)
    sessions: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str, org: str = "esavo") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(org, role)]}"}


def _post(client: FlaskClient, path: str, headers: dict[str, str], body: object) -> dict[str, Any]:
    response = client.post(f"/api/v1{path}", json=body, headers=headers)
    assert response.status_code in (200, 201, 202), (path, response.status_code, response.json)
    result: dict[str, Any] = response.json or {}
    return result


def build_world(fleet: Fleet, client: FlaskClient) -> World:
    uow = fleet.services.uow
    now = fleet.services.clock()
    # Loans 1-3: tab-001…003 lent in aikuissosiaalityo, mielenterveys and paihde.
    seed_loans(fleet.services, now - timedelta(days=1), lent=3, queued=0)
    tokens = {("esavo", role): fleet.logins[role].token for role in ROLES}
    org_id = accounts.add_organisation(uow(), OTHER_ORG, "Toinen hyvinvointialue")
    accounts.add_unit(uow(), OTHER_ORG, OTHER_ORG_UNIT, "Toinen yksikkö")
    for role in ROLES:
        username = f"{role}@{OTHER_ORG}.test"
        units = (OTHER_ORG_UNIT,) if role == "counsellor" else ()
        accounts.add_user(uow(), AddUser(OTHER_ORG, username, role, units, "x" * 16))
        tokens[(OTHER_ORG, role)], _ = accounts.create_token(uow(), username, "matrix")
    setup = Principal(0, "matrix-setup", org_id, Role.IT_SUPPORT, frozenset())
    devices.create_device(uow(), setup, CreateDevice("tab-901", "TOINEN-1", OTHER_ORG_UNIT))
    world = World(fleet, tokens)
    ids = world.ids
    ids["device_id"] = {OWN: "tab-001", OTHER_UNIT_SCOPE: "tab-002", OTHER_ORG_SCOPE: "tab-901"}
    ids["unit_code"] = {
        OWN: OWN_UNIT,
        OTHER_UNIT_SCOPE: OTHER_UNIT,
        OTHER_ORG_SCOPE: OTHER_ORG_UNIT,
    }
    other_it = _principal(fleet, f"it_support@{OTHER_ORG}.test")
    other_loan = loans.request_loan(uow(), other_it, RequestLoan(OTHER_ORG_UNIT, "ASK-9"), now)
    ids["loan_id"] = {OWN: "1", OTHER_UNIT_SCOPE: "2", OTHER_ORG_SCOPE: str(other_loan)}
    ids["token_id"] = {}
    ids["bulk_id"] = {}
    for scope, org in ((OWN, "esavo"), (OTHER_ORG_SCOPE, OTHER_ORG)):
        _post(client, "/enrollment-tokens", world.headers("it_support", org), {})
        with fleet.services.session_factory() as session:
            newest = session.scalar(
                select(orm.EnrollmentToken.id).order_by(orm.EnrollmentToken.id.desc())
            )
        ids["token_id"][scope] = str(newest)
        bulk = _post(client, "/commands/bulk", world.headers("it_support", org), {"name": "sync"})
        ids["bulk_id"][scope] = str(bulk["bulk_id"])
    _online(fleet)
    for role, device in (("counsellor", "tab-001"), ("it_support", "tab-002")):
        started = _post(client, "/support-sessions", world.headers(role), {"device_id": device})
        world.sessions[role] = started["id"]
    other = _post(
        client,
        "/support-sessions",
        world.headers("it_support", OTHER_ORG),
        {"device_id": "tab-901"},
    )
    world.sessions[OTHER_ORG_SCOPE] = other["id"]
    return world


def _principal(fleet: Fleet, username: str) -> Principal:
    with fleet.services.session_factory() as session:
        user = session.scalar(select(orm.User).where(orm.User.username == username))
        assert user is not None, username
        return accounts.principal_of(user)


def _online(fleet: Fleet) -> None:
    with fleet.services.session_factory() as session:
        for row in session.scalars(select(orm.DeviceStatus)):
            row.online = True
        session.commit()
