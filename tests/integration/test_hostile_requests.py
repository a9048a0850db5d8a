"""No 5xx for anything a client sends, on every route of the URL map (issue 14, point 5).

Each class of input that gave a 500 is sent to every route that could receive it, as every
role, on SQLite and on PostgreSQL (which refuses NUL in text and has 32-bit `integer` ids):

- ids beyond the id columns' range in every `<int:...>` path argument;
- NUL in every path argument and in the query string of every route;
- garbage paging cursors (`cursor`, `before`, `after`) to every page a role can open;
- every JSON body field of the OpenAPI document replaced by values of every other JSON type
  (an object where a string belongs: the kiosk shortcut's `category`), huge numbers, NUL,
  lone surrogates;
- hostile values in every form field the console reads.

Routes come from Flask's URL map and fields from the OpenAPI document and the console's own
sources, so a route or field added later is covered without editing this test. A 5xx
fails the test here; an unexpected exception would also be logged, which fails any test.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.console import Browser
from support.fleet import Fleet, make_fleet
from support.postgres import create_database, drop_database
from werkzeug.routing import AnyConverter, Rule
from werkzeug.test import TestResponse

from server.adapters import orm
from server.entrypoints.api.openapi import document
from server.entrypoints.app import create_app
from server.entrypoints.input_guard import BIGINT_MAX, INT_MAX

pytestmark = pytest.mark.integration

ROLES = ("admin", "it_support", "counsellor")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HUGE_IDS = (INT_MAX + 1, 34025408672, 114600551491, BIGINT_MAX, BIGINT_MAX + 1, 10**30)
# What each `<int:...>` argument names: its column's type bounds what the route may accept.
ID_COLUMNS = {
    "loan_id": (orm.Loan.id,),
    "group_id": (orm.GroupSession.id,),
    "token_id": (orm.EnrollmentToken.id, orm.ApiToken.id),
    "user_id": (orm.User.id,),
    "webhook_id": (orm.WebhookSubscription.id,),
}
# Plausible values of the string path arguments, so the request reaches its handler.
PATH_VALUES = {
    "device_id": "tab-001",
    "unit_code": "paihde",
    "code": "paihde",
    "session_id": "no-such-session",
    "bulk_id": "no-such-bulk",
    "segment": "renew",
    "action": "activate",
    "filename": "console.css",
}
PAGING = ("cursor", "before", "after")
GARBAGE_CURSORS = (
    "garbage",
    "AA",  # base64 of a NUL byte
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwLjE",  # base64 of "12345...890.1"
    "LTE",  # base64 of "-1"
    "-1",
    "99999999999999999999999",
    "2147483648",
    "\u00b9",  # a digit to str.isdigit(), not to int()
    "\u0663",
    "====",
    "x" * 5000,
)
QUERY_NAMES = (
    *PAGING,
    "unit",
    "state",
    "online",
    "low_battery",
    "limit",
    "history",
    "overdue",
    "q",
    "drift",
    "next",
    "preset",
    "start",
    "end",
    "first_row",
    "client_ref",
    "ids",
)
JSON_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    INT_MAX + 1,
    BIGINT_MAX + 1,
    10**30,
    1.5,
    "",
    "x" * 70000,
    "a\x00b",
    "\ud800",
    "=cmd|' /C calc'!A0",
    [],
    [None],
    [{}],
    {},
    {"a": {"b": []}},
)
FORM_VALUES = (
    "",
    "-1",
    "99999999999999999999",
    "\u00b9",
    "x" * 5000,
    "a\x00b",
    "\r\n//evil.example",
)
# Console forms whose success would end the test's own sessions or users.
NOT_FUZZED = {"console.logout", "console.user_action", "console.user_deactivate"}
CONSOLE = Path(__file__).resolve().parents[2] / "server" / "entrypoints" / "console"


@dataclass
class World:
    fleet: Fleet
    app: Flask
    api: FlaskClient
    browsers: dict[str, Browser]

    def send(self, role: str, method: str, url: str, **kwargs: Any) -> TestResponse:
        """A request as `role`: with its token to the API, with its session to the console."""
        if url.startswith("/api/"):
            headers = {**self.fleet.headers(role), **kwargs.pop("headers", {})}
            response = self.api.open(url, method=method, headers=headers, **kwargs)
        else:
            browser = self.browsers[role]
            if method != "GET" and "json" not in kwargs:
                kwargs["data"] = {"csrf_token": browser.csrf, **kwargs.get("data", {})}
            headers = {"X-CSRF-Token": browser.csrf, **kwargs.pop("headers", {})}
            response = browser.client.open(url, method=method, headers=headers, **kwargs)
        response.close()  # a stream (live updates, events) gives its slot back
        return response


def _database(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp / 'hostile.db'}"
        return
    url = create_database(request.getfixturevalue("pg_base_url"))
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ],
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    for url in _database(request, tmp_path_factory.mktemp("hostile")):
        fleet = make_fleet(url)
        app = create_app(fleet.services)
        app.config.update(EVENTS_STREAM_DURATION_S=0, FLEET_LIVE_DURATION_S=0)
        api = app.test_client()
        # Something to act on: an agreement, a reserved loan, a webhook, an enrollment token.
        admin, it = fleet.headers("admin"), fleet.headers("it_support")
        api.post("/api/v1/agreements", json={"version": "1", "text": "x"}, headers=admin)
        api.post("/api/v1/loans", json={"unit": "paihde", "client_ref": "ASK-1"}, headers=it)
        api.post("/api/v1/loans/1/assign", json={"device_id": "tab-003"}, headers=it)
        api.post("/api/v1/webhooks", json={"url": "https://hooks.example/x"}, headers=it)
        api.post("/api/v1/enrollment-tokens", json={}, headers=it)
        browsers = {}
        for role in ROLES:
            client = app.test_client()
            client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
            login = fleet.logins[role]
            browsers[role] = Browser(client, login.username, login.password)
        yield World(fleet, app, api, browsers)
        fleet.services.close()


def _rules(app: Flask) -> list[Rule]:
    return sorted(app.url_map.iter_rules(), key=lambda r: r.rule)


def _methods(rule: Rule) -> list[str]:
    return [m for m in METHODS if m in (rule.methods or ())]


def _roles(app: Flask, rule: Rule) -> tuple[str, ...]:
    """The roles that get past the route's role check (all, if it has none)."""
    allowed = getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
    return tuple(r for r in ROLES if allowed is None or r in {a.value for a in allowed})


def _int_args(rule: Rule) -> list[str]:
    return [name for name, conv in rule._converters.items() if conv.regex == r"\d+"]


def _url(rule: Rule, **values: str) -> str:
    """The rule's path with `values`, raw (already percent-encoded where needed)."""
    url = rule.rule
    for name, conv in rule._converters.items():
        default = "1" if name in _int_args(rule) else PATH_VALUES.get(name, "x")
        if isinstance(conv, AnyConverter):
            default = sorted(conv.items)[0]
        url = re.sub(rf"<(?:[^<>]+:)?{name}>", values.get(name, default), url)
    return url


def _check(response: TestResponse, *where: object) -> None:
    assert response.status_code < 500, (response.status_code, *where)


# --- ids beyond the columns ----------------------------------------------------------------


def test_every_int_route_argument_names_a_column_it_fits(world: World) -> None:
    limits = {"Integer": INT_MAX, "BigInteger": BIGINT_MAX}
    for rule in _rules(world.app):
        for name in _int_args(rule):
            assert name in ID_COLUMNS, f"{rule.rule}: say in ID_COLUMNS which column {name} is"
            bound = rule._converters[name].max
            for column in ID_COLUMNS[name]:
                type_name = type(column.type).__name__
                assert bound <= limits[type_name], (rule.rule, name, type_name, bound)


def test_huge_ids_in_every_int_route_are_not_found(world: World) -> None:
    int_rules = [r for r in _rules(world.app) if _int_args(r)]
    assert len(int_rules) >= 20
    for rule in int_rules:
        for huge in HUGE_IDS:
            url = _url(rule, **{name: str(huge) for name in _int_args(rule)})
            for method in _methods(rule):
                for role in _roles(world.app, rule):
                    response = world.send(role, method, url, json={})
                    _check(response, method, url, role)
                    assert response.status_code == 404, (method, url, role)


# --- NUL in paths and query strings --------------------------------------------------------


def test_nul_in_every_path_argument_and_query_is_refused(world: World) -> None:
    for rule in _rules(world.app):
        string_args = [a for a in rule.arguments if a not in _int_args(rule)]
        urls = [_url(rule, **{a: "a%00b" for a in string_args})] if string_args else []
        plain = _url(rule)
        urls += [f"{plain}?{name}=%00" for name in ("unit", "cursor", "next", "x")]
        urls.append(f"{plain}?%00=1")
        for url in urls:
            for method in _methods(rule):
                for role in _roles(world.app, rule):
                    response = world.send(role, method, url)
                    _check(response, method, url, role)
                    assert response.status_code in (404, 422), (method, url, role)


# --- garbage cursors -----------------------------------------------------------------------


def _pagers(app: Flask) -> Iterator[tuple[Rule, str]]:
    """(route, paging parameter) of every page that takes one: the API's from its OpenAPI
    document, the console's from the modules whose views read one from the query string."""
    routes = app.url_map.bind("localhost")
    for path, operations in document()["paths"].items():
        url = "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m[1], "1"), path)
        for method, op in operations.items():
            for p in op.get("parameters", []) if isinstance(op, dict) else ():
                if p.get("in") == "query" and p["name"] in PAGING:
                    yield routes.match(url, method.upper(), return_rule=True)[0], p["name"]
    for rule in _rules(app):
        if rule.endpoint.startswith("console.") and "GET" in _methods(rule):
            source = Path(
                inspect.getsourcefile(inspect.unwrap(app.view_functions[rule.endpoint])) or ""
            )
            text = source.read_text()
            yield from ((rule, n) for n in PAGING if f'get("{n}"' in text)


def test_garbage_cursors_on_every_page_that_takes_one(world: World) -> None:
    pagers = list(_pagers(world.app))
    endpoints = {rule.endpoint for rule, _ in pagers}
    assert {"api.list_devices", "api.list_loans", "api.list_events"} <= endpoints
    assert {"api.device_history", "console.devices", "console.loans"} <= endpoints
    for rule, name in pagers:
        for garbage in GARBAGE_CURSORS:
            url = f"{_url(rule)}?{name}={quote(garbage, safe='')}"
            for role in _roles(world.app, rule):
                _check(world.send(role, "GET", url), url, role)


# --- JSON bodies ---------------------------------------------------------------------------


def _resolve(node: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _example(schema: dict[str, Any], doc: dict[str, Any]) -> Any:
    """A plausible value of `schema`: enough for a request to get past the first checks."""
    schema = _resolve(schema, doc)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(v, doc) for k, v in props.items() if k in schema.get("required", [])}
    if kind == "array":
        return [_example(schema.get("items", {}), doc)]
    return {"string": "x", "integer": 1, "number": 1, "boolean": True}.get(kind, "x")


def _field_paths(schema: dict[str, Any], doc: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Every property of a body schema, and of the objects in its arrays, as key paths."""
    schema = _resolve(schema, doc)
    for key, sub in schema.get("properties", {}).items():
        yield (key,)
        sub = _resolve(sub, doc)
        if sub.get("type") == "array" and "properties" in _resolve(sub.get("items", {}), doc):
            for inner in _field_paths(sub["items"], doc):
                yield (key, 0, *inner)


def _with(
    body: Any, schema: dict[str, Any], doc: dict[str, Any], path: tuple[Any, ...], value: Any
) -> Any:
    """`body` with `value` at `path`, building the containers the path goes through."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    schema = _resolve(schema, doc)
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) and body else [_example(schema["items"], doc)]
        items[0] = _with(items[0], schema["items"], doc, rest, value)
        return items
    copy = dict(body)
    sub = schema.get("properties", {}).get(head, {})
    copy[head] = _with(copy.get(head, _example(sub, doc)), sub, doc, rest, value)
    return copy


def test_every_json_field_takes_any_json_value_without_a_5xx(world: World) -> None:
    doc = document()
    routes = world.app.url_map.bind("localhost")
    sent = 0
    for path, operations in doc["paths"].items():
        url = "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m[1], "1"), path)
        for method, op in operations.items():
            if not isinstance(op, dict):
                continue
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" not in content:
                continue
            rule, _args = routes.match(url, method.upper(), return_rule=True)
            schema = content["application/json"]["schema"]
            base = _example(schema, doc)
            role = _roles(world.app, rule)[0]
            bodies = [*JSON_VALUES]  # the whole body of the wrong type, too
            bodies += [
                _with(base, schema, doc, field, value)
                for field in _field_paths(schema, doc)
                for value in JSON_VALUES
            ]
            for body in bodies:
                response = world.send(role, method.upper(), url, json=body)
                _check(response, method, url, role, repr(body)[:200])
                sent += 1
    assert sent > 1000


def test_the_reported_kiosk_category_object_is_refused(world: World) -> None:
    shortcut = {"label": "Chat", "url": "https://chat.example/", "category": {}}
    response = world.send(
        "admin",
        "PUT",
        "/api/v1/units/paihde/kiosk-profile",
        json={"apps": [], "shortcuts": [shortcut]},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"


# --- console forms -------------------------------------------------------------------------


def _console_fields() -> list[str]:
    """Every form field the console reads or renders (from its sources and templates)."""
    names: set[str] = set()
    for path in CONSOLE.rglob("*.py"):
        names.update(
            re.findall(r"form(?:\.get|\.getlist|\[)\(?\"([a-z_0-9-]+)\"", path.read_text())
        )
    for path in CONSOLE.rglob("*.html"):
        names.update(re.findall(r'name="([a-z_0-9-]+)"', path.read_text()))
    names.discard("csrf_token")
    return sorted(names | {"loan_days", "max_renewals", "kit-1", "label_charger", "valid_hours"})


def test_every_console_form_takes_hostile_values_without_a_5xx(world: World) -> None:
    fields = _console_fields()
    assert len(fields) > 30
    for rule in _rules(world.app):
        if (
            rule.rule.startswith("/api/")
            or "POST" not in _methods(rule)
            or rule.endpoint in NOT_FUZZED
        ):
            continue
        for value in FORM_VALUES:
            for role in _roles(world.app, rule):
                response = world.send(role, "POST", _url(rule), data=dict.fromkeys(fields, value))
                _check(response, rule.rule, role, value[:20])
