"""Every text field of every console form refuses an identity code, in every spelling, and
nothing holding one reaches the database (issue 14 §3).

The forms are not listed by hand: each role's pages are found from the app's URL map (with a
sample for each parameter) and by following the links on them, and every <form> on them is
read with its inputs, textareas and selects. Each text field (hidden ones included) is then
sent, with the form's other values as the page gave them, on a database rewound before every
request: first with a control text of the code's shape that is no code (991052-308T) — if the
form accepts it, every spelling of the code must be refused with a 4xx page that says why
(the canonical one with the identity-code error) — and after every spelling no text column
of any table, the audit log's included, may hold a code. Search forms (GET) store nothing
but may be audited: they must not leave a code behind either.

SQLite only, like test_identity_codes_api.py (why is said there).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.console import Browser
from support.fleet import make_fleet
from support.identity_codes import CODE, CONTROL, VARIANTS
from support.personal_data import SqliteSnapshot, World, leaks, stored
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse

from server.adapters import orm
from server.domain.model import Role
from server.entrypoints.app import create_app

ROLES = ("admin", "it_support", "counsellor")
# Endpoints that are no HTML page with forms.
NOT_PAGES = {
    "console.static",
    "console.devices_export",
    "console.devices_live",
    "console.devices_snapshot",
    "console.reports_csv",
    "console.support_state",
    "console.login",
    # Single sign-on's redirects to the identity provider and back (no page, no form here).
    "console.sso_start",
    "console.sso_callback",
    "console.signed_out",
}
NOT_SENT = {"console.logout"}  # it would sign the test's browser out
NOT_TEXT = {"csrf_token"}  # another token is refused as a forgery, whatever it holds
ERROR = 'class="flash error"'  # how a page shows a refusal (also after a redirect)
# Something valid for an empty field whose text has a format.
FILLERS = {"shortcuts": "Chat | https://chat.example.org/ | chat", "apps": "org.example.chat"}
TEXT_INPUTS = {"text", "search", "url", "tel", "email", "hidden", "password", "number", ""}


@dataclass
class Form:
    page: str
    method: str
    action: str
    values: dict[str, list[str]] = field(default_factory=dict)  # what the page sends as it is
    text: list[str] = field(default_factory=list)  # the text fields, in page order
    required: set[str] = field(default_factory=set)
    files: bool = False


class Reader(HTMLParser):
    """The forms and the links of a page."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page, self.forms, self.links = page, list[Form](), list[str]()
        self._form: Form | None = None
        self._textarea: str | None = None
        self._select: tuple[str, list[str], list[str]] | None = None  # name, options, chosen
        self._radios: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href", "").startswith("/"):
            self.links.append(a["href"])
        if tag == "form":
            action = a.get("action") or self.page
            self._form = Form(self.page, a.get("method", "get").upper(), action)
            self._radios = {}
            return
        if tag == "option" and self._select is not None:
            self._select[1].append(a.get("value", ""))
            if "selected" in a:
                self._select[2].append(a.get("value", ""))
        form, name = self._form, a.get("name", "")
        if form is None or not name:
            return
        kind = a.get("type", "").lower() if tag == "input" else tag
        if "required" in a:
            form.required.add(name)
        if tag == "input" and kind in TEXT_INPUTS:  # a name may repeat (kit=charger, kit=sim)
            form.values.setdefault(name, []).append(a.get("value", ""))
            if name not in form.text:
                form.text.append(name)
        elif tag == "textarea":
            self._textarea = name
            form.values[name] = [""]
            form.text.append(name)
        elif kind == "checkbox":  # all ticked: what makes the most text count
            form.values.setdefault(name, []).append(a.get("value", "on"))
        elif kind == "radio":
            self._radios.setdefault(name, []).append(a.get("value", "on"))
            if "checked" in a:
                form.values[name] = [a.get("value", "on")]
        elif kind == "file":
            form.files = True
        elif tag == "select":
            self._select = (name, [], [])

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea is not None:
            self._form.values[self._textarea][0] += data

    def handle_endtag(self, tag: str) -> None:
        form = self._form
        if tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select is not None and form is not None:
            name, options, chosen = self._select
            if options:
                form.values[name] = chosen[:1] or [o for o in options if o][:1] or options[:1]
            self._select = None
        elif tag == "form" and form is not None:
            for name, values in self._radios.items():
                form.values.setdefault(name, values[:1])
            self.forms.append(form)
            self._form = None


def endpoint_of(app: Flask, path: str, method: str = "GET") -> str | None:
    return route_of(app, path, method)[0]


def route_of(app: Flask, path: str, method: str = "GET") -> tuple[str | None, tuple]:
    """The endpoint of a path, and its parameters that are not ids (a loan step's segment)."""
    try:
        endpoint, args = app.url_map.bind("localhost").match(urlsplit(path).path, method=method)
    except HTTPException:
        return None, ()
    route = tuple(sorted((k, str(v)) for k, v in args.items() if k not in SAMPLED))
    return str(endpoint), (endpoint, *route)


SAMPLED = {"loan_id", "device_id", "code", "user_id", "token_id", "session_id"}


def seeds(app: Flask, world: World, role: str) -> list[str]:
    """Every console page from the URL map, with the world's samples for its parameters."""
    samples: dict[str, list[str]] = {
        "loan_id": [world.values[f"<{s}>"] for s in ("requested", "ready", "on_loan", "paused")],
        "device_id": ["tab-004", world.values["<wiped>"], world.values["<staff-locked>"]],
        "code": ["aikuissosiaalityo"],
        "user_id": [str(world.user_ids["counsellor"])],
    }
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in NOT_PAGES:
            continue
        allowed = getattr(app.view_functions[rule.endpoint], "allowed_roles", tuple(Role))
        if "GET" not in (rule.methods or ()) or Role(role) not in allowed:
            continue
        paths = [rule.rule]
        for name in rule.arguments:
            if name in ("segment", "session_id", "bulk_id", "group_id"):
                # reached through the links on loan pages, or after a bulk action
                paths = []
                break
            assert name in samples, f"add samples of {name} ({rule.endpoint}) to this test"
            paths = [
                p.replace(f"<{c}{name}>", value)
                for p in paths
                for value in samples[name]
                for c in ("", "int:")
                if f"<{c}{name}>" in p
            ]
        found += paths
    return found


def forms_of(app: Flask, browser: Browser, start: list[str]) -> list[Form]:
    """The forms of every page reachable from `start` through console links."""
    todo, seen, forms = list(start), set[str](), dict[tuple[str, str, tuple[str, ...]], Form]()
    routes = set()  # a linked page is read once per route, with the samples' ids or others'
    while todo:
        path = todo.pop(0)
        endpoint, route = route_of(app, path)
        if path in seen or endpoint is None or endpoint in NOT_PAGES:
            continue
        if not endpoint.startswith("console.") or (path not in start and route in routes):
            continue
        seen.add(path)
        routes.add(route)
        response = browser.get(path)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        reader = Reader(path)
        reader.feed(response.get_data(as_text=True))
        todo += reader.links
        for form in reader.forms:
            forms.setdefault((form.method, form.action, tuple(form.text)), form)
    return list(forms.values())


@dataclass
class Console:
    app: Flask
    world: World
    snapshot: SqliteSnapshot
    browsers: dict[str, Browser]
    forms: list[tuple[str, Form]] = field(default_factory=list)  # (role, form)

    def values(self, form: Form) -> dict[str, list[str]]:
        """What a person fills in: the page's values, and something valid in the required
        fields the page left empty."""
        data = {k: list(v) for k, v in form.values.items()}
        for name in form.text:
            if not data.get(name, [""])[0] and name in form.required:
                data[name] = [self.filler(form, name)]
        return data

    def filler(self, form: Form, name: str) -> str:
        path = urlsplit(form.action).path
        if name in ("confirm", "device_id"):  # a device id typed again, to confirm
            device = re.match(r"/devices/([^/]+)/", path)
            loan = re.match(r"/loans/(\d+)/", path)
            if device:
                return device.group(1)
            if loan:
                with self.world.fleet.services.session_factory() as session:
                    row = session.get(orm.Loan, int(loan.group(1)))
                    return (row.device_id if row else None) or ""
        return FILLERS.get(name, "Test-1-filler")

    def send(
        self, role: str, form: Form, data: dict[str, list[str]], follow: bool = True
    ) -> TestResponse:
        """The form sent on a database as it was before any form was sent."""
        self.snapshot.restore()
        browser = self.browsers[role]
        if form.method == "GET":
            return browser.get(form.action, query_string=data, follow_redirects=follow)
        data = data | {"csrf_token": [browser.csrf]}
        return browser.client.post(form.action, data=data, follow_redirects=follow)

    def wizard_forms(self, role: str, forms: list[Form]) -> list[Form]:
        """The forms of the pages that sending a form shows (the steps of a wizard)."""
        found, todo, keys = [], [(f, 0) for f in forms], {(f.action, tuple(f.text)) for f in forms}
        while todo:
            form, depth = todo.pop()
            if form.method != "POST" or form.files or depth > 3:
                continue
            response = self.send(role, form, self.values(form), follow=False)
            if response.status_code != 200 or response.mimetype != "text/html":
                continue
            reader = Reader(form.action)
            reader.feed(response.get_data(as_text=True))
            for new in reader.forms:
                if endpoint_of(self.app, new.action, new.method) in NOT_SENT:
                    continue
                if (new.action, tuple(new.text)) not in keys:
                    keys.add((new.action, tuple(new.text)))
                    found.append(new)
                    todo.append((new, depth + 1))
        return found


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    fleet = make_fleet(f"sqlite:///{Path(tmp_path_factory.mktemp('forms')) / 'forms.db'}")
    app = create_app(fleet.services)
    try:
        world = World(fleet, app.test_client())
        # A saved shortcut, so that the kiosk editor's first row holds text to walk.
        shortcut = {"label": "Chat", "url": "https://chat.example.org/", "category": "chat"}
        app.test_client().put(
            "/api/v1/units/aikuissosiaalityo/kiosk-profile",
            json={"apps": ["org.example.chat"], "shortcuts": [shortcut]},
            headers=fleet.headers("admin"),
        )
        browsers = {}
        for role in ROLES:
            client: FlaskClient = app.test_client()
            client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
            login = fleet.logins[role]
            browsers[role] = Browser(client, login.username, login.password)
        console = Console(app, world, SqliteSnapshot(fleet.services.engine), browsers)
        for role in ROLES:
            forms = [f for f in forms_of(app, browsers[role], seeds(app, world, role))]
            forms = [f for f in forms if endpoint_of(app, f.action, f.method) not in NOT_SENT]
            forms += console.wizard_forms(role, forms)
            console.forms += [(role, f) for f in forms if not f.files]
        yield console
    finally:
        fleet.services.close()


def with_text(console: Console, form: Form, name: str, text: str) -> dict[str, list[str]]:
    """The form as a person fills it in, with `text` before what the field held."""
    data = console.values(form)
    before = form.values.get(name, [""])[0] or FILLERS.get(name, "")
    data[name] = [f"{text} {before}" if before else text, *data.get(name, [])[1:]]
    return data


@pytest.fixture(scope="module")
def walked(console: Console) -> dict[tuple[str, str, str], list[str]]:
    """(role, form, field) → what went wrong with it. Each field is first sent with the
    control text; if it is stored, with every spelling of the code, each of which must be
    refused; if not (a wizard step, a lookup, a search), with the canonical code, which must
    be stored nowhere either. A field one role's form stores is walked for that role only."""
    engine = console.world.fleet.services.engine
    found: dict[tuple[str, str, str], list[str]] = {}
    done: set[tuple[object, ...]] = set()
    for role, form in console.forms:
        route = route_of(console.app, form.action, form.method)[1]
        for name in form.text:
            if name in NOT_TEXT or (route, name) in done:
                continue
            console.send(role, form, with_text(console, form, name, CONTROL))
            stores_text = stored(engine, CONTROL)  # else a wizard step, a lookup, a search
            if stores_text:
                done.add((route, name))
            problems = found[(role, f"{form.method} {form.action}", name)] = []
            for variant, code in VARIANTS.items() if stores_text else [("canonical", CODE)]:
                response = console.send(role, form, with_text(console, form, name, code))
                status, page = response.status_code, response.get_data(as_text=True)
                if status >= 500:
                    problems.append(f"{variant}: {status}")
                elif stores_text and status < 400 and ERROR not in page:
                    problems.append(f"{variant}: accepted ({status})")
                elif stores_text and variant == "canonical" and "identity code" not in page:
                    problems.append("refused without saying why")
                if leaks(engine):
                    problems.append(f"{variant}: stored in {leaks(engine)}")
            if stores_text:
                problems.append("stored")  # (a marker, not a problem: see the tests below)
    return found


def test_the_walk_finds_the_forms_and_fields_that_store_text(
    walked: dict[tuple[str, str, str], list[str]],
) -> None:
    storing = {
        (action.split()[1].split("/")[1], name)
        for (_, action, name), p in walked.items()
        if "stored" in p
    }
    for expected in [
        ("loans", "client_ref"),
        ("loans", "reason"),
        ("loans", "note"),
        ("loans", "label_charger"),
        ("devices", "text"),
        ("devices", "reason"),
        ("admin", "label-0"),
        ("admin", "text"),
        ("enrollment", "note"),
        ("support", "purpose"),
        ("account", "name"),
    ]:
        assert expected in storing, sorted(storing)


def test_a_code_in_any_form_field_is_refused_and_never_stored(
    walked: dict[tuple[str, str, str], list[str]],
) -> None:
    problems = [
        f"{role} {action} {name}: {problem}"
        for (role, action, name), found in walked.items()
        for problem in found
        if problem != "stored"
    ]
    assert not problems, "\n".join(problems)
