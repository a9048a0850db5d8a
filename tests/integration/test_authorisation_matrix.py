"""Every API endpoint × every role × own unit / other unit / other organisation × no token.

The endpoints come from the app's URL map, so a new endpoint without a row in RULES fails
`test_every_endpoint_has_a_rule`. Expectations:
- no token → 401 (public endpoints excepted);
- a role the endpoint does not allow → 403;
- an object out of the caller's scope → 404 (others' objects are not revealed): another
  organisation's for everyone, another unit's for counsellors, another user's support session;
- otherwise anything but 401/403/404 (a validation 4xx or a 409 is fine; a 500 fails the
  test through the error-log guard).

Runs on SQLite only: it makes ~500 requests and checks authorisation code paths that do not
depend on the database engine (the scope queries themselves are exercised on PostgreSQL by
the API tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.authz_world import (
    OTHER_ORG,
    OTHER_ORG_SCOPE,
    OTHER_UNIT_SCOPE,
    OWN,
    ROLES,
    World,
    build_world,
)
from support.fleet import make_fleet

from server.entrypoints.app import create_app

A, IT, C = "admin", "it_support", "counsellor"
ANYONE = frozenset(ROLES)
MANAGERS = frozenset({A, IT})
PUBLIC = "public"


@dataclass(frozen=True)
class Rule:
    """Who may call an endpoint and how its path object is scoped.

    scope: None (no path object), "org" (any unit of the caller's organisation), "unit"
    (counsellors: their own units only), "starter" (only the user who created it).
    """

    roles: frozenset[str] | str
    scope: str | None = None
    body: object = None


RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/v1/openapi.json"): Rule(PUBLIC),
    ("POST", "/api/v1/auth/tokens"): Rule(PUBLIC),
    ("POST", "/api/v1/enroll"): Rule(PUBLIC),
    ("GET", "/api/v1/me"): Rule(ANYONE),
    ("GET", "/api/v1/units"): Rule(ANYONE),
    ("GET", "/api/v1/devices"): Rule(ANYONE),
    ("POST", "/api/v1/devices"): Rule(MANAGERS, body={}),
    ("POST", "/api/v1/devices/import"): Rule(MANAGERS),
    ("GET", "/api/v1/devices/<device_id>"): Rule(ANYONE, "unit"),
    ("PATCH", "/api/v1/devices/<device_id>"): Rule(MANAGERS, "org", {"model": "X"}),
    ("GET", "/api/v1/devices/<device_id>/history"): Rule(ANYONE, "unit"),
    ("GET", "/api/v1/devices/<device_id>/commands"): Rule(ANYONE, "unit"),
    ("POST", "/api/v1/devices/<device_id>/commands"): Rule(ANYONE, "unit", {"name": "ring"}),
    ("POST", "/api/v1/devices/<device_id>/lock"): Rule(MANAGERS, "org", {"reason": "matrix"}),
    ("POST", "/api/v1/devices/<device_id>/unlock"): Rule(MANAGERS, "org", {"reason": "matrix"}),
    ("POST", "/api/v1/devices/<device_id>/sequence-reset"): Rule(
        MANAGERS, "org", {"reason": "matrix"}
    ),
    ("PUT", "/api/v1/devices/<device_id>/desired-override"): Rule(
        frozenset({IT}), "org", {"override": None, "reason": "matrix"}
    ),
    ("POST", "/api/v1/devices/<device_id>/wipes"): Rule(
        frozenset({IT}), "org", {"method": "manual", "reason": "matrix"}
    ),
    ("GET", "/api/v1/drift"): Rule(ANYONE),
    ("POST", "/api/v1/commands/bulk"): Rule(MANAGERS, body={}),
    ("GET", "/api/v1/commands/bulk/<bulk_id>"): Rule(MANAGERS, "org"),
    ("POST", "/api/v1/enrollment-tokens"): Rule(MANAGERS, body={"valid_hours": 0}),
    ("GET", "/api/v1/enrollment-tokens"): Rule(MANAGERS),
    ("POST", "/api/v1/enrollment-tokens/<int:token_id>/revoke"): Rule(MANAGERS, "org"),
    ("GET", "/api/v1/loans"): Rule(ANYONE),
    ("POST", "/api/v1/loans"): Rule(ANYONE, body={}),
    ("POST", "/api/v1/referrals"): Rule(ANYONE, body={}),
    ("GET", "/api/v1/referrals"): Rule(ANYONE),
    ("PUT", "/api/v1/loans/<int:loan_id>/professionals"): Rule(
        ANYONE, "unit", {"professionals": ["nobody"]}
    ),
    ("GET", "/api/v1/loans/<int:loan_id>"): Rule(ANYONE, "unit"),
    ("POST", "/api/v1/loans/<int:loan_id>/hold"): Rule(ANYONE, "unit", {"hold": True}),
    ("GET", "/api/v1/loans/<int:loan_id>/notes"): Rule(ANYONE, "unit"),
    ("POST", "/api/v1/loans/<int:loan_id>/notes"): Rule(ANYONE, "unit", {"kind": "other"}),
    ("PUT", "/api/v1/loans/<int:loan_id>/follow-up"): Rule(ANYONE, "unit", {"follow_up_on": None}),
    ("GET", "/api/v1/worklist"): Rule(ANYONE),
    ("POST", "/api/v1/agreements"): Rule(frozenset({A}), body={}),
    ("PUT", "/api/v1/units/<unit_code>/kiosk-profile"): Rule(MANAGERS, "org", {}),
    ("PUT", "/api/v1/units/<unit_code>/loan-rules"): Rule(frozenset({A}), "org", {}),
    # After the PUT: it made the default set that the DELETE (no ?model=) removes.
    ("GET", "/api/v1/units/<unit_code>/loan-rules"): Rule(frozenset({A}), "org"),
    ("DELETE", "/api/v1/units/<unit_code>/loan-rules"): Rule(frozenset({A}), "org"),
    ("PUT", "/api/v1/units/<unit_code>/usage-collection"): Rule(
        frozenset({A}), "org", {"enabled": True}
    ),
    # Admins may not watch clients' screens: the handler refuses them (403).
    ("POST", "/api/v1/support-sessions"): Rule(frozenset({IT, C}), body={"device_id": "tab-001"}),
    ("GET", "/api/v1/support-sessions/<session_id>"): Rule(ANYONE, "starter"),
    ("POST", "/api/v1/support-sessions/<session_id>/offer"): Rule(
        ANYONE, "starter", {"sdp": "v=0"}
    ),
    ("POST", "/api/v1/support-sessions/<session_id>/candidates"): Rule(
        ANYONE, "starter", {"candidate": "x"}
    ),
    ("POST", "/api/v1/support-sessions/<session_id>/hangup"): Rule(ANYONE, "starter", {}),
    # Events are scoped inside the page (counsellors: their units); webhooks by organisation.
    ("GET", "/api/v1/events"): Rule(ANYONE),
    ("GET", "/api/v1/webhooks"): Rule(MANAGERS),
    ("POST", "/api/v1/webhooks"): Rule(MANAGERS, body={"url": "https://hooks.example.org/x"}),
    ("GET", "/api/v1/webhooks/<int:webhook_id>/deliveries"): Rule(MANAGERS, "org"),
    ("DELETE", "/api/v1/webhooks/<int:webhook_id>"): Rule(MANAGERS, "org"),
}
# Bodies that pass the parsing every step does before it looks the loan up.
STEP_BODIES: dict[str, object] = {
    "assign": {"device_id": "tab-999"},
    "release": {"device_id": "tab-999", "reason": "matrix"},
    "handover": {"agreement_version": "2026-1", "agreement_accepted": True},
}
for _step in (
    "assign",
    "unassign",
    "handover",
    "return",
    "renew",
    "pause",
    "resume",
    "lost",
    "cancel",
):
    # A body every step accepts, so that the scope check is reached. Allowed requests run
    # after all refusals, so the state they change cannot hide a scope bug.
    RULES[("POST", f"/api/v1/loans/<int:loan_id>/{_step}")] = Rule(
        ANYONE, "unit", STEP_BODIES.get(_step, {"reason": "matrix"})
    )

# Releasing a tablet to its client for good is for IT support only (the handler says 403).
RULES[("POST", "/api/v1/loans/<int:loan_id>/release")] = Rule(
    frozenset({IT}), "unit", STEP_BODIES["release"]
)
# The client keeps the device: whoever may act on the loan proposes or withdraws; approving
# (the release step) and declining, and the list of open proposals, are IT support's.
RULES[("POST", "/api/v1/loans/<int:loan_id>/keep")] = Rule(ANYONE, "unit", {"reason": "matrix"})
RULES[("DELETE", "/api/v1/loans/<int:loan_id>/keep")] = Rule(ANYONE, "unit")
RULES[("POST", "/api/v1/loans/<int:loan_id>/keep/approve")] = Rule(
    frozenset({IT}), "unit", {"device_id": "tab-999"}
)
RULES[("POST", "/api/v1/loans/<int:loan_id>/keep/decline")] = Rule(
    frozenset({IT}), "unit", {"reason": "matrix"}
)
RULES[("GET", "/api/v1/keep-proposals")] = Rule(frozenset({IT}))


def api_endpoints(app: Flask) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return sorted(found)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, FlaskClient]]:
    fleet = make_fleet(f"sqlite:///{Path(tmp_path_factory.mktemp('authz')) / 'authz.db'}")
    client = create_app(fleet.services).test_client()
    try:
        world = build_world(fleet, client)
        hooks = {}
        for scope, org in ((OWN, "esavo"), (OTHER_ORG_SCOPE, OTHER_ORG)):
            response = client.post(
                "/api/v1/webhooks",
                json={"url": "https://hooks.example.org/matrix"},
                headers=world.headers(A, org),
            )
            hooks[scope] = str(response.json["id"])
        world.ids["webhook_id"] = hooks | {OTHER_UNIT_SCOPE: hooks[OWN]}
        yield world, client
    finally:
        fleet.services.close()


def test_every_endpoint_has_a_rule(world: tuple[World, FlaskClient]) -> None:
    app = create_app(world[0].fleet.services)
    missing = [e for e in api_endpoints(app) if e not in RULES]
    assert not missing, (
        "these API endpoints have no row in RULES of tests/integration/"
        f"test_authorisation_matrix.py; add one saying who may call them: {missing}"
    )
    stale = [e for e in RULES if e not in api_endpoints(app)]
    assert not stale, f"RULES names endpoints that no longer exist: {stale}"


def _path(world: World, rule: str, role: str, scope: str) -> str | None:
    """The URL with its parameter filled from `scope`, or None if no such object exists."""
    match = re.search(r"<(?:\w+:)?(\w+)>", rule)
    if match is None:
        return rule
    name = match.group(1)
    if name == "session_id":
        if scope == OWN:
            value = world.sessions.get(role)
        elif scope == OTHER_UNIT_SCOPE:
            value = world.sessions[C if role != C else IT]
        else:
            value = world.sessions[OTHER_ORG_SCOPE]
    else:
        value = world.ids[name].get(scope)
    if value is None:
        return None
    return rule[: match.start()] + value + rule[match.end() :]


def _expected(rule: Rule, role: str | None, scope: str) -> str:
    """'ok', 401, 403 or 404 as a string."""
    if rule.roles == PUBLIC:
        return "ok"
    if role is None:
        return "401"
    assert isinstance(rule.roles, frozenset)
    if role not in rule.roles:
        return "403"
    if scope == OTHER_ORG_SCOPE and rule.scope is not None:
        return "404"
    if scope == OTHER_UNIT_SCOPE:
        if rule.scope == "starter" or (rule.scope == "unit" and role == C):
            return "404"
    return "ok"


def _cases(world: World) -> list[tuple[str, str, str | None, str, str]]:
    """(method, rule, role, scope, expectation), refusals first: they must not change state."""
    cases = []
    for (method, rule_text), rule in RULES.items():
        scopes = [OWN] if rule.scope is None else [OWN, OTHER_UNIT_SCOPE, OTHER_ORG_SCOPE]
        for role in (*ROLES, None):
            for scope in scopes:
                cases.append((method, rule_text, role, scope, _expected(rule, role, scope)))
    return sorted(cases, key=lambda case: case[4] == "ok")


def test_authorisation_matrix(world: tuple[World, FlaskClient]) -> None:
    w, client = world
    wrong = []
    checked = 0
    for method, rule_text, role, scope, expected in _cases(w):
        path = _path(w, rule_text, role or A, scope)
        if path is None:
            continue
        rule = RULES[(method, rule_text)]
        headers = w.headers(role) if role else {}
        body = rule.body if method != "GET" else None
        response = client.open(path, method=method, json=body, headers=headers)
        status = response.status_code
        checked += 1
        ok = status not in (401, 403, 404, 405) and status < 500
        if (expected == "ok" and not ok) or (expected != "ok" and str(status) != expected):
            detail = response.json["error"]["message"] if response.is_json else ""
            wrong.append(
                f"{method} {path} as {role or 'no token'} ({scope}): expected {expected}, "
                f"got {status} {detail}"
            )
    assert not wrong, f"{len(wrong)} of {checked} requests wrong:\n" + "\n".join(wrong)
    assert checked > 300


def test_other_organisation_sees_none_of_ours(world: tuple[World, FlaskClient]) -> None:
    """Lists are scoped too: the other organisation's admin sees only its own device and loan."""
    w, client = world
    headers = w.headers(A, OTHER_ORG)
    devices = client.get("/api/v1/devices", headers=headers).json["items"]
    assert [d["device_id"] for d in devices] == ["tab-901"]
    loans = client.get("/api/v1/loans", headers=headers).json["items"]
    assert len(loans) == 1 and loans[0]["unit"] == "toinen-yksikko"
    units = client.get("/api/v1/units", headers=headers).json["items"]
    assert [u["code"] for u in units] == ["toinen-yksikko"]
    counsellor = client.get("/api/v1/loans", headers=w.headers(C)).json["items"]
    assert counsellor and {loan["unit"] for loan in counsellor} == {"aikuissosiaalityo"}


# Remote groups (issue 20 part 3): anyone schedules and reads the groups of units they see (a
# group of another unit does not exist for a counsellor); a unit's video link is the admin's.
RULES[("GET", "/api/v1/groups")] = Rule(ANYONE)
RULES[("POST", "/api/v1/groups")] = Rule(ANYONE, body={})
RULES[("GET", "/api/v1/groups/<int:group_id>")] = Rule(ANYONE, "unit")
RULES[("PATCH", "/api/v1/groups/<int:group_id>")] = Rule(ANYONE, "unit", {"minutes": 45})
RULES[("DELETE", "/api/v1/groups/<int:group_id>")] = Rule(ANYONE, "unit")
RULES[("POST", "/api/v1/groups/<int:group_id>/ring")] = Rule(ANYONE, "unit", {"loan_id": 1})
RULES[("PUT", "/api/v1/units/<unit_code>/group-link")] = Rule(
    frozenset({A}), "org", {"join_url": "https://meet.example.fi/matrix"}
)


@pytest.fixture(scope="module", autouse=True)
def _groups_in_world(world: tuple[World, FlaskClient]) -> None:
    """A group of each scope (the counsellor's unit's with loan 1, another unit's with loans
    2 and 1, another organisation's with no participant), made directly: the API's own checks are
    the API tests'."""
    from datetime import timedelta

    from sqlalchemy import select

    from server.adapters import orm

    w = world[0]
    start = w.fleet.services.clock() + timedelta(days=2)
    ids: dict[str, str] = {}
    with w.fleet.services.session_factory() as session:
        for scope, unit_code, loan_ids in (
            (OWN, "aikuissosiaalityo", [1]),
            (OTHER_UNIT_SCOPE, "mielenterveys", [2, 1]),
            (OTHER_ORG_SCOPE, "toinen-yksikko", []),
        ):
            unit = session.scalars(select(orm.Unit).where(orm.Unit.code == unit_code)).one()
            group = orm.GroupSession(
                organisation_id=unit.organisation_id,
                unit_id=unit.id,
                title="Matriisi",
                starts_at=start,
                minutes=60,
                weekly=True,
                join_url="https://meet.example.fi/matrix",
                participants=[session.get(orm.Loan, i) for i in loan_ids],
            )
            session.add(group)
            session.flush()
            ids[scope] = str(group.id)
        session.commit()
    w.ids["group_id"] = ids
