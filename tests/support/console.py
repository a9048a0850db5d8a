"""Signing in to the console with Flask's test client, as a browser would."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.entrypoints.console.core import PRE_CSRF_COOKIE

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(page: TestResponse) -> str:
    """The CSRF token a page embeds in its forms."""
    found = _CSRF_RE.search(page.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str) -> TestResponse:
    """Fetch the sign-in form (sets the pre-session CSRF cookie) and post it."""
    form = client.get("/login")
    assert client.get_cookie(PRE_CSRF_COOKIE) is not None
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form)},
    )


class Browser:
    """A signed-in test client that adds the CSRF token to every form it posts."""

    def __init__(self, client: FlaskClient, username: str, password: str) -> None:
        self.client = client
        response = sign_in(client, username, password)
        assert response.status_code == 302, response.get_data(as_text=True)
        self.csrf = csrf_of(client.get("/account"))

    def get(self, path: str, **kwargs: object) -> TestResponse:
        return self.client.get(path, **kwargs)  # type: ignore[arg-type]

    def post(
        self, path: str, data: dict[str, object] | None = None, **kwargs: object
    ) -> TestResponse:
        form = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(path, data=form, **kwargs)  # type: ignore[arg-type]

    def text(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data(as_text=True)
