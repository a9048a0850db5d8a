"""Every writable string of the API refuses an identity code, in every spelling, and nothing
holding one reaches the database (issue 14 §3).

The fields come from the OpenAPI document (every string in every JSON request body, every
string query parameter), not from a list: a new field is walked as soon as it is documented.
BODIES holds one valid request per operation (a new operation without one fails
`test_every_operation_with_text_has_a_valid_request`). For each field, on a database rewound
before every request:
- the valid request must succeed (else BODIES is wrong, and the test says so);
- the field with a control text of the code's shape that is no code (991052-308T) tells
  whether the field takes such text at all; if it does, every spelling of the code must be
  refused with 422 and the identity-code error naming the field; if not (a unit code, a user
  name to look up), every spelling must be refused too;
- after each spelling, no text column of any table, the audit log's included, holds a code.

SQLite only: the rewinding uses SQLite's backup API, and the check runs in SQLAlchemy's
flush, the same on both databases (test_identity_codes.py shows the errors on PostgreSQL).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.fleet import make_fleet
from support.identity_codes import CONTROL, VARIANTS
from support.personal_data import SqliteSnapshot, World, leaks

from lainaamo.protocol import Kind
from lainaamo.protocol.messages import load_schema
from server.domain.privacy import REFUSED
from server.entrypoints.api.openapi import document
from server.entrypoints.app import create_app

DOC = document()
SDP_FIELDS = {"sdp", "candidate", "sdp_mid"}  # machine-made (support_sessions: machine_made)
# The override's shape is the protocol's policy (the API documents it as an object).
OVERRIDE_SCHEMA = load_schema(Kind.DESIRED)["properties"]["policy"]


@dataclass(frozen=True)
class Call:
    """A valid request: who sends it, with what path parameters and body."""

    role: str
    body: dict[str, Any]
    params: dict[str, str] | None = None


def loan(state: str) -> dict[str, str]:
    return {"loan_id": f"<{state}>"}


KIT = [{"kind": "charger", "label": "USB-C"}]
SHORTCUT = {"label": "Chat", "url": "https://chat.example.org/", "category": "chat"}
BODIES: dict[tuple[str, str], Call] = {
    ("POST", "/auth/tokens"): Call(
        "counsellor", {"username": "<username>", "password": "<password>", "name": "laptop"}
    ),
    ("POST", "/devices"): Call(
        "it_support",
        {
            "device_id": "tab-new",
            "asset_tag": "NEW-1",
            "unit": "aikuissosiaalityo",
            "serial": "SN-1",
            "model": "Tab A",
        },
    ),
    ("PATCH", "/devices/{device_id}"): Call(
        "it_support",
        {
            "asset_tag": "ES-9",
            "unit": "aikuissosiaalityo",
            "serial": "SN-2",
            "model": "Tab B",
            "reason": "label fixed",
        },
        {"device_id": "tab-004"},
    ),
    ("POST", "/devices/{device_id}/wipes"): Call(
        "it_support", {"method": "manual", "reason": "reset by hand"}, {"device_id": "<wiped>"}
    ),
    ("POST", "/devices/{device_id}/commands"): Call(
        "it_support", {"name": "message", "args": {"text": "Hello"}}, {"device_id": "tab-004"}
    ),
    ("POST", "/devices/{device_id}/lock"): Call(
        "it_support", {"reason": "found"}, {"device_id": "tab-004"}
    ),
    ("POST", "/devices/{device_id}/unlock"): Call(
        "it_support", {"reason": "back"}, {"device_id": "<staff-locked>"}
    ),
    ("POST", "/devices/{device_id}/sequence-reset"): Call(
        "it_support", {"reason": "frozen status"}, {"device_id": "tab-004"}
    ),
    ("POST", "/commands/bulk"): Call(
        "it_support",
        {
            "name": "message",
            "args": {"text": "Hello"},
            "filter": {"unit": "aikuissosiaalityo", "state": "in_stock"},
        },
    ),
    ("PUT", "/devices/{device_id}/desired-override"): Call(
        "it_support",
        {
            "override": {
                "message": "Return me",
                "support_phone": "044 123",
                "kiosk": {"apps": ["org.example.chat"], "shortcuts": [SHORTCUT]},
            },
            "reason": "test",
        },
        {"device_id": "tab-004"},
    ),
    ("POST", "/loans"): Call(
        "counsellor",
        {"unit": "aikuissosiaalityo", "client_ref": "ASK-77", "professionals": ["<username>"]},
    ),
    ("POST", "/loans/{loan_id}/hold"): Call(
        "counsellor", {"hold": True, "reason": "in hospital"}, loan("on_loan")
    ),
    ("POST", "/loans/{loan_id}/assign"): Call(
        "counsellor", {"device_id": "tab-010", "reason": "r"}, loan("requested")
    ),
    ("POST", "/loans/{loan_id}/unassign"): Call("counsellor", {"reason": "r"}, loan("ready")),
    ("POST", "/loans/{loan_id}/cancel"): Call("counsellor", {"reason": "r"}, loan("requested")),
    ("POST", "/loans/{loan_id}/handover"): Call(
        "counsellor",
        {"agreement_version": "2026-1", "agreement_accepted": True, "kit": KIT, "reason": "r"},
        loan("ready"),
    ),
    # Where nobody queues: a loan is not renewed while others wait.
    ("POST", "/loans/{loan_id}/renew"): Call("it_support", {"reason": "r"}, loan("quiet")),
    ("POST", "/loans/{loan_id}/pause"): Call("counsellor", {"reason": "r"}, loan("on_loan")),
    ("POST", "/loans/{loan_id}/notes"): Call(
        "counsellor", {"kind": "called_no_answer", "text": "no answer"}, loan("on_loan")
    ),
    ("POST", "/loans/{loan_id}/resume"): Call("counsellor", {"reason": "r"}, loan("paused")),
    ("POST", "/loans/{loan_id}/return"): Call("counsellor", {"reason": "r"}, loan("on_loan")),
    ("POST", "/loans/{loan_id}/lost"): Call("counsellor", {"reason": "r"}, loan("on_loan")),
    ("POST", "/loans/{loan_id}/release"): Call(
        "it_support", {"device_id": "<on_loan device>", "reason": "r"}, loan("on_loan")
    ),
    ("POST", "/loans/{loan_id}/keep"): Call(
        "counsellor", {"reason": "continues online"}, loan("on_loan")
    ),
    ("POST", "/loans/{loan_id}/keep/approve"): Call(
        "it_support", {"device_id": "<paused device>"}, loan("paused")
    ),
    ("POST", "/loans/{loan_id}/keep/decline"): Call(
        "it_support", {"reason": "needed in the queue"}, loan("paused")
    ),
    ("POST", "/referrals"): Call(
        "counsellor",
        {
            "unit": "mielenterveys",
            "client_ref": "ASK-78",
            "reason": "Needs a tablet for a remote group",
            "from_unit": "aikuissosiaalityo",
            "professionals": ["<username>"],
        },
    ),
    ("PUT", "/loans/{loan_id}/professionals"): Call(
        "counsellor", {"professionals": ["<username>"]}, loan("on_loan")
    ),
    ("POST", "/groups"): Call(
        "counsellor",
        {
            "unit": "aikuissosiaalityo",
            "title": "Torstairyhmä",
            "date": "<next week>",
            "time": "10:00",
            "minutes": 45,
            "participants": ["<on_loan id>"],
            "weekly": True,
            "until": "",
            "join_url": "https://meet.example.org/thursday",
        },
    ),
    ("PATCH", "/groups/{group_id}"): Call(
        "counsellor",
        {
            "title": "Tiistain ryhmä",
            "date": "<next week>",
            "time": "15:00",
            "join_url": "https://meet.example.org/other",
            "until": "",
        },
        {"group_id": "<group>"},
    ),  # fmt: skip
    ("PUT", "/units/{unit_code}/group-link"): Call(
        "admin", {"join_url": "https://meet.example.org/unit"}, {"unit_code": "aikuissosiaalityo"}
    ),
    ("POST", "/agreements"): Call("admin", {"version": "2026-2", "text": "Terms."}),
    ("PUT", "/units/{unit_code}/loan-rules"): Call(
        "admin", {"model": "Tab A", "loan_days": 30}, {"unit_code": "aikuissosiaalityo"}
    ),
    ("PUT", "/units/{unit_code}/kiosk-profile"): Call(
        "it_support",
        {"apps": ["org.example.chat"], "shortcuts": [SHORTCUT], "settings_locked": True},
        {"unit_code": "aikuissosiaalityo"},
    ),
    ("POST", "/enrollment-tokens"): Call(
        "it_support", {"unit": "aikuissosiaalityo", "note": "new tablets"}
    ),
    ("POST", "/enroll"): Call(
        "it_support",
        {"token": "<enrollment token>", "device_id": "tab-enr", "serial": "S", "model": "M"},
    ),
    ("POST", "/support-sessions"): Call(
        "it_support", {"device_id": "<online device>", "purpose": "Help with the tablet"}
    ),
    ("POST", "/webhooks"): Call("it_support", {"url": "https://hooks.example.org/lainaamo"}),
}


# Fields that only one kind of request reads.
FIELD_BODIES: dict[tuple[str, str, tuple[str | int, ...]], Call] = {
    ("POST", "/devices/{device_id}/commands", ("confirm",)): Call(
        "it_support", {"name": "wipe", "confirm": "tab-004"}, {"device_id": "tab-004"}
    ),
}


# --- the OpenAPI document -----------------------------------------------------------------


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def text_fields(schema: dict[str, Any], path: tuple[str | int, ...] = ()) -> Iterator[tuple]:
    """Paths of the free-text strings a JSON schema allows (not enums, dates or files)."""
    schema = resolve(schema)
    for key in ("oneOf", "anyOf", "allOf"):
        for part in schema.get(key, []):
            yield from text_fields(part, path)
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "string" in types and not {"enum", "const"} & schema.keys():
        if schema.get("format") not in ("binary", "date-time", "date"):
            yield path
    if path and path[-1] == "override" and not schema.get("properties"):
        yield from text_fields(OVERRIDE_SCHEMA, path)
    for name, inner in schema.get("properties", {}).items():
        yield from text_fields(inner, (*path, name))
    if "array" in types and "items" in schema:
        yield from text_fields(schema["items"], (*path, 0))


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def body_fields(operation: dict[str, Any]) -> list[tuple]:
    content = resolve(operation.get("requestBody", {})).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    found = list(dict.fromkeys(text_fields(schema))) if schema else []
    return [f for f in found if f[-1] not in SDP_FIELDS]


WALKED = [(m, p, f) for m, p, op in operations() for f in body_fields(op)]
QUERIES = [
    (m, p, resolve(q)["name"])
    for m, p, op in operations()
    for q in op.get("parameters", []) + DOC["paths"][p].get("parameters", [])
    if resolve(q)["in"] == "query" and list(text_fields(resolve(q)["schema"]))
]


# --- the world ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, SqliteSnapshot]]:
    fleet = make_fleet(f"sqlite:///{Path(tmp_path_factory.mktemp('codes')) / 'codes.db'}")
    client = create_app(fleet.services).test_client()
    try:
        built = World(fleet, client)
        snapshot = SqliteSnapshot(fleet.services.engine)
        yield built, snapshot
        snapshot.close()
    finally:
        fleet.services.close()


def place(body: dict[str, Any], path: tuple, value: str) -> dict[str, Any]:
    """A copy of the body with `value` at `path`, made from the text there before."""
    changed = copy.deepcopy(body)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    before = node[path[-1]] if path[-1] in node or isinstance(node, list) else ""
    if isinstance(before, list):  # a list of user names: one more
        node[path[-1]] = [*before, value]
    else:
        node[path[-1]] = f"{before}-{value}" if before else value
    return changed


def url(world: World, path: str, call: Call) -> str:
    for name, value in (call.params or {}).items():
        path = path.replace("{" + name + "}", str(world.values.get(value, value)))
    return path


def test_every_operation_with_text_has_a_valid_request() -> None:
    operations_with_text = {(m, p) for m, p, _ in WALKED}
    missing = sorted(operations_with_text - BODIES.keys())
    assert not missing, f"add a valid request for these operations to BODIES: {missing}"
    assert len(WALKED) > 40, "the OpenAPI walk found suspiciously few fields"
    assert ("PUT", "/units/{unit_code}/kiosk-profile", ("shortcuts", 0, "label")) in WALKED
    assert ("POST", "/devices/{device_id}/commands", ("args", "text")) in WALKED


@pytest.mark.parametrize(("method", "path", "field"), WALKED, ids=lambda v: str(v))
def test_a_code_in_any_body_field_is_refused_and_never_stored(
    world: tuple[World, SqliteSnapshot], method: str, path: str, field: tuple
) -> None:
    here, snapshot = world
    call = FIELD_BODIES.get((method, path, field)) or BODIES[(method, path)]
    target, body = url(here, path, call), here.fill(call.body)

    def send(value: dict[str, Any]) -> Any:
        snapshot.restore()
        return here.send(call.role, method, target, value)

    valid = send(body)
    assert valid.status_code < 300, ("BODIES has an invalid request", valid.json)
    takes_text = send(place(body, field, CONTROL)).status_code < 300
    names = [k for k in field if isinstance(k, str)]
    for variant, code in VARIANTS.items():
        response = send(place(body, field, code))
        assert 400 <= response.status_code < 500, (variant, response.status_code)
        error = response.json["error"]
        if takes_text and variant == "canonical":
            assert error["message"] == REFUSED, (variant, error)
            named = [str(d.get("field")) for d in error["details"]]
            assert any(n in f for n in names for f in named), error
        assert not leaks(here.fleet.services.engine), variant


@pytest.mark.parametrize(("method", "path", "name"), QUERIES, ids=lambda v: str(v))
def test_a_code_in_a_query_is_never_stored(
    world: tuple[World, SqliteSnapshot], method: str, path: str, name: str
) -> None:
    """Queries are not stored, but some are audited (who listed which loans)."""
    here, snapshot = world
    target = path.replace("{device_id}", "tab-004")
    for variant, code in VARIANTS.items():
        snapshot.restore()
        response = here.client.open(
            f"/api/v1{target}",
            method=method,
            query_string={name: code},
            headers=here.fleet.headers("it_support"),
        )
        assert response.status_code < 500, variant
        assert not leaks(here.fleet.services.engine), variant
