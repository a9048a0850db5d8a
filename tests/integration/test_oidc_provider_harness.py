"""The SSO tests' OpenID Connect provider (support.oidc_provider) is a real one.

These tests act as the client without a browser: `requests` for the browser's part (the
provider's cookie, the sign-in form), authlib for the client's requests and joserfc for the
ID token's validation, as a correct relying party does it (signature against the JWKS, then
iss, aud, exp and nonce).
"""

from __future__ import annotations

import html
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import (  # type: ignore[import-untyped, unused-ignore]
    OAuth2Session,
)
from authlib.oauth2.rfc7636 import (  # type: ignore[import-untyped, unused-ignore]
    create_s256_code_challenge,
)
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet, KeySetSerialization
from support.oidc_provider import MISCHIEF, OidcProvider
from support.ports import LOCALHOST, port_is_open

pytestmark = pytest.mark.integration

CLIENT_ID = "lainaamo-console"
# URL-safe: pyop splits the Basic credentials at every ":" and authlib does not escape them.
SECRET = "Xq3-vT9_kLm2pR8wZ4yN6bC1dF5gH7jK"
# Nothing listens here: the tests read the provider's redirects and never follow them.
REDIRECT_URI = "http://127.0.0.1:9/console/sso/callback"
POST_LOGOUT_URI = "http://127.0.0.1:9/console/signed-out"
SCOPE = "openid profile email"


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        provider.register_client(CLIENT_ID, SECRET, [REDIRECT_URI], [POST_LOGOUT_URI])
        provider.add_user(
            "maija",
            "correct horse",
            email="maija@example.org",
            name="Maija Meikäläinen",
            groups=["lainaamo-admins", "staff"],
        )
        yield provider


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


class Attempt:
    """One authorization request's secrets, as the client keeps them."""

    def __init__(self) -> None:
        self.state = secrets.token_urlsafe(16)
        self.nonce = secrets.token_urlsafe(16)
        self.verifier = secrets.token_urlsafe(48)

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": create_s256_code_challenge(self.verifier),
            "code_challenge_method": "S256",
            **extra,
        }


def authorize(
    browser: requests.Session, idp: OidcProvider, params: dict[str, str]
) -> requests.Response:
    return browser.get(f"{idp.issuer}/authorize", params=params, allow_redirects=False)


def is_form(response: requests.Response) -> bool:
    body = response.text
    return (
        response.status_code == 200
        and "<title>Test identity provider</title>" in body
        and ">Username</label>" in body
        and ">Password</label>" in body
        and ">Sign in</button>" in body
    )


def sign_in(
    browser: requests.Session, idp: OidcProvider, form: requests.Response, password: str
) -> requests.Response:
    assert is_form(form), form.text
    found = re.search(r'name="request" value="([^"]*)"', form.text)
    assert found is not None
    data = {"request": html.unescape(found.group(1)), "username": "maija", "password": password}
    return browser.post(f"{idp.issuer}/authorize", data=data, allow_redirects=False)


def code_from(response: requests.Response, attempt: Attempt) -> str:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == [attempt.state]
    return query["code"][0]


def signed_in_code(browser: requests.Session, idp: OidcProvider, attempt: Attempt) -> str:
    form = authorize(browser, idp, attempt.params())
    return code_from(sign_in(browser, idp, form, "correct horse"), attempt)


def exchange(idp: OidcProvider, code: str, verifier: str | None) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier is not None:
        data["code_verifier"] = verifier
    return requests.post(f"{idp.issuer}/token", data=data, auth=(CLIENT_ID, SECRET), timeout=5)


def jwks(idp: OidcProvider) -> KeySetSerialization:
    keys: KeySetSerialization = requests.get(f"{idp.issuer}/jwks", timeout=5).json()
    return keys


def verify_signature(token: str, key_set: KeySetSerialization) -> dict[str, Any]:
    return dict(jwt.decode(token, KeySet.import_key_set(key_set), algorithms=["RS256"]).claims)


def validate(token: str, idp: OidcProvider, nonce: str) -> dict[str, Any]:
    """A relying party's validation: signature, then iss, aud, exp and nonce."""
    claims = verify_signature(token, jwks(idp))
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": idp.issuer},
        aud={"essential": True, "value": CLIENT_ID},
        exp={"essential": True},
        nonce={"essential": True, "value": nonce},
    ).validate(claims)
    return claims


def test_discovery_names_the_endpoints_and_only_s256(idp: OidcProvider) -> None:
    config = requests.get(idp.discovery_url, timeout=5).json()

    assert config["issuer"] == idp.issuer == f"http://{LOCALHOST}:{idp.port}"
    for endpoint in ("authorize", "token", "userinfo", "jwks", "end_session"):
        assert f"{idp.issuer}/{endpoint}" in config.values()
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["response_types_supported"] == ["code"]
    assert set(config["scopes_supported"]) == {"openid", "profile", "email"}
    assert "groups" in config["claims_supported"]
    assert [k["kid"] for k in requests.get(config["jwks_uri"], timeout=5).json()["keys"]] == [
        idp.kid
    ]


def test_code_flow_with_pkce_gives_an_id_token_that_verifies(
    idp: OidcProvider, browser: requests.Session
) -> None:
    client = OAuth2Session(
        CLIENT_ID,
        SECRET,
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = client.create_authorization_url(
        f"{idp.issuer}/authorize", code_verifier=verifier, nonce=nonce
    )
    form = browser.get(url, allow_redirects=False)
    before = int(time.time())
    redirect = sign_in(browser, idp, form, "correct horse")
    after = int(time.time())

    assert redirect.status_code == 303
    assert idp.cookie_name in browser.cookies
    token = client.fetch_token(
        f"{idp.issuer}/token",
        authorization_response=redirect.headers["Location"],
        code_verifier=verifier,
        state=state,
    )
    client.close()
    claims = validate(token["id_token"], idp, nonce)

    assert claims["sub"] == idp.subject("maija")
    assert claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    assert claims["groups"] == ["lainaamo-admins", "staff"]
    assert claims["email"] == "maija@example.org"
    assert claims["preferred_username"] == "maija"
    assert claims["name"] == "Maija Meikäläinen"
    assert before <= claims["auth_time"] <= after
    sent = idp.authorization_requests[-1]
    assert sent["code_challenge_method"] == "S256"
    assert (sent["state"], sent["nonce"]) == (state, nonce)
    assert idp.token_requests[-1].auth_method == "client_secret_basic"
    assert idp.token_requests[-1].status == 200
    userinfo = requests.get(
        f"{idp.issuer}/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    ).json()
    assert (userinfo["sub"], userinfo["email"]) == (claims["sub"], "maija@example.org")


def test_client_secret_post_works_for_a_client_registered_for_it(
    idp: OidcProvider, browser: requests.Session
) -> None:
    idp.register_client(
        "poster", "post-secret", [REDIRECT_URI], token_endpoint_auth_method="client_secret_post"
    )
    attempt = Attempt()
    params = attempt.params(client_id="poster")
    code = code_from(
        sign_in(browser, idp, authorize(browser, idp, params), "correct horse"), attempt
    )
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": attempt.verifier,
        "client_id": "poster",
    }

    # pyop holds a client to the one method it registered with.
    basic = requests.post(
        f"{idp.issuer}/token", data=data, auth=("poster", "post-secret"), timeout=5
    )
    assert (basic.status_code, basic.json()["error"]) == (401, "invalid_client")
    wrong = requests.post(f"{idp.issuer}/token", data={**data, "client_secret": "nope"}, timeout=5)
    assert wrong.status_code == 401
    posted = requests.post(
        f"{idp.issuer}/token", data={**data, "client_secret": "post-secret"}, timeout=5
    )
    assert posted.status_code == 200, posted.text
    assert verify_signature(posted.json()["id_token"], jwks(idp))["aud"] in ("poster", ["poster"])
    assert [r.auth_method for r in idp.token_requests] == [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_post",
    ]


def test_a_second_sign_in_rides_on_the_provider_session(
    idp: OidcProvider, browser: requests.Session
) -> None:
    first = Attempt()
    token = exchange(idp, signed_in_code(browser, idp, first), first.verifier).json()
    again = Attempt()
    code = code_from(authorize(browser, idp, again.params()), again)
    second = exchange(idp, code, again.verifier).json()

    before, after = (
        validate(t["id_token"], idp, a.nonce) for t, a in ((token, first), (second, again))
    )
    assert after["auth_time"] == before["auth_time"]
    assert after["sub"] == before["sub"]


def test_a_wrong_password_shows_the_form_again_and_gives_no_code(
    idp: OidcProvider, browser: requests.Session
) -> None:
    attempt = Attempt()
    again = sign_in(browser, idp, authorize(browser, idp, attempt.params()), "wrong horse")

    assert is_form(again)
    assert "Wrong username or password." in again.text
    assert "Location" not in again.headers
    assert idp.cookie_name not in browser.cookies
    assert is_form(authorize(browser, idp, attempt.params()))


@pytest.mark.parametrize(
    "change",
    [{"code_challenge": None, "code_challenge_method": None}, {"code_challenge_method": "plain"}],
    ids=["no challenge", "plain"],
)
def test_an_authorization_request_without_s256_pkce_is_refused(
    idp: OidcProvider, browser: requests.Session, change: dict[str, str | None]
) -> None:
    attempt = Attempt()
    params = {k: v for k, v in {**attempt.params(), **change}.items() if v is not None}
    refused = authorize(browser, idp, params)

    assert refused.status_code == 303
    query = parse_qs(urlsplit(refused.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == [attempt.state]
    assert "code" not in query


def test_the_token_endpoint_checks_the_code_verifier(
    idp: OidcProvider, browser: requests.Session
) -> None:
    attempt = Attempt()
    code = signed_in_code(browser, idp, attempt)

    wrong = exchange(idp, code, secrets.token_urlsafe(48))
    missing = exchange(idp, code, None)
    right = exchange(idp, code, attempt.verifier)

    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_request")
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert "id_token" not in wrong.json() and "id_token" not in missing.json()
    assert right.status_code == 200
    validate(right.json()["id_token"], idp, attempt.nonce)


def test_a_code_works_once_only(idp: OidcProvider, browser: requests.Session) -> None:
    attempt = Attempt()
    code = signed_in_code(browser, idp, attempt)

    assert exchange(idp, code, attempt.verifier).status_code == 200
    replay = exchange(idp, code, attempt.verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")


def test_prompt_login_and_max_age_ask_for_the_password_again(
    idp: OidcProvider, browser: requests.Session
) -> None:
    first = Attempt()
    signed_in_code(browser, idp, first)
    assert is_form(authorize(browser, idp, Attempt().params(max_age="0")))
    idp.age_sessions(600)

    assert is_form(authorize(browser, idp, Attempt().params(prompt="login")))
    assert is_form(authorize(browser, idp, Attempt().params(max_age="300")))
    silent = Attempt()
    assert code_from(authorize(browser, idp, silent.params(max_age="3600")), silent)
    fresh = Attempt()
    form = authorize(browser, idp, fresh.params(prompt="login"))
    code = code_from(sign_in(browser, idp, form, "correct horse"), fresh)
    claims = validate(exchange(idp, code, fresh.verifier).json()["id_token"], idp, fresh.nonce)
    assert claims["auth_time"] >= int(time.time()) - 5
    assert [(r.get("prompt"), r.get("max_age")) for r in idp.authorization_requests[1:]] == [
        (None, "0"),
        ("login", None),
        (None, "300"),
        (None, "3600"),
        ("login", None),
    ]


def test_group_changes_and_removal_take_effect_while_running(
    idp: OidcProvider, browser: requests.Session
) -> None:
    idp.set_groups("maija", ["readers"])
    attempt = Attempt()
    token = exchange(idp, signed_in_code(browser, idp, attempt), attempt.verifier).json()
    assert validate(token["id_token"], idp, attempt.nonce)["groups"] == ["readers"]

    idp.remove_user("maija")
    gone = Attempt()
    form = authorize(browser, idp, gone.params())
    assert "Wrong username or password." in sign_in(browser, idp, form, "correct horse").text


@pytest.mark.parametrize("mischief", sorted(MISCHIEF))
def test_every_mischief_gives_a_token_that_validation_refuses(
    idp: OidcProvider, browser: requests.Session, mischief: str
) -> None:
    idp.mischief = mischief
    attempt = Attempt()
    response = exchange(idp, signed_in_code(browser, idp, attempt), attempt.verifier)
    assert response.status_code == 200
    token = response.json()["id_token"]

    if mischief in ("tampered", "foreign_key", "alg_none"):
        expected: type[JoseError] = (
            UnsupportedAlgorithmError if mischief == "alg_none" else BadSignatureError
        )
        with pytest.raises(expected):
            verify_signature(token, jwks(idp))
    else:
        verify_signature(token, jwks(idp))  # a good signature over bad claims
        expected = ExpiredTokenError if mischief == "expired" else InvalidClaimError
        with pytest.raises(expected):
            validate(token, idp, attempt.nonce)


def test_unknown_mischief_is_refused(idp: OidcProvider) -> None:
    with pytest.raises(ValueError, match="forged"):
        idp.mischief = "forged"


def test_rotate_key_publishes_only_the_new_key(
    idp: OidcProvider, browser: requests.Session
) -> None:
    earlier = Attempt()
    old_token = exchange(idp, signed_in_code(browser, idp, earlier), earlier.verifier).json()
    old_jwks, old_kid = jwks(idp), idp.kid
    new_kid = idp.rotate_key()
    attempt = Attempt()
    token = exchange(idp, code_from(authorize(browser, idp, attempt.params()), attempt),
                     attempt.verifier).json()  # fmt: skip

    assert new_kid != old_kid
    assert [k["kid"] for k in jwks(idp)["keys"]] == [new_kid]
    assert validate(token["id_token"], idp, attempt.nonce)["sub"] == idp.subject("maija")
    with pytest.raises(JoseError):
        verify_signature(token["id_token"], old_jwks)
    with pytest.raises(JoseError):
        verify_signature(old_token["id_token"], jwks(idp))
    # The provider still honours an ID token it signed before as a sign-out hint.
    params = {"id_token_hint": old_token["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI}
    out = browser.get(f"{idp.issuer}/end_session", params=params, allow_redirects=False)
    assert (out.status_code, out.headers["Location"]) == (303, POST_LOGOUT_URI)


def test_end_session_redirects_to_a_registered_uri_and_ends_the_provider_session(
    idp: OidcProvider, browser: requests.Session
) -> None:
    attempt = Attempt()
    token = exchange(idp, signed_in_code(browser, idp, attempt), attempt.verifier).json()
    params = {
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": POST_LOGOUT_URI,
        "state": "bye-1",
    }
    out = browser.get(f"{idp.issuer}/end_session", params=params, allow_redirects=False)

    assert out.status_code == 303
    assert out.headers["Location"] == f"{POST_LOGOUT_URI}?state=bye-1"
    assert idp.logouts[-1].username == "maija"
    assert idp.logouts[-1].client_id == CLIENT_ID
    assert idp.logouts[-1].redirected
    assert is_form(authorize(browser, idp, Attempt().params()))


def test_end_session_to_an_unregistered_uri_shows_the_signed_out_page(
    idp: OidcProvider, browser: requests.Session
) -> None:
    signed_in_code(browser, idp, Attempt())
    params = {"client_id": CLIENT_ID, "post_logout_redirect_uri": "http://127.0.0.1:9/elsewhere"}
    out = browser.get(f"{idp.issuer}/end_session", params=params, allow_redirects=False)

    assert out.status_code == 200
    assert "You have signed out." in out.text
    assert (idp.logouts[-1].username, idp.logouts[-1].redirected) == ("maija", False)
    assert is_form(authorize(browser, idp, Attempt().params()))


def test_a_forged_id_token_hint_is_refused(idp: OidcProvider, browser: requests.Session) -> None:
    idp.mischief = "foreign_key"
    attempt = Attempt()
    forged = exchange(idp, signed_in_code(browser, idp, attempt), attempt.verifier).json()
    params = {"id_token_hint": forged["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI}
    out = browser.get(f"{idp.issuer}/end_session", params=params, allow_redirects=False)

    assert out.status_code == 400
    assert idp.logouts == []
    assert code_from(authorize(browser, idp, attempt.params()), attempt)


def test_stop_closes_idle_browser_connections_and_frees_the_port() -> None:
    threads_before = set(threading.enumerate())
    idp = OidcProvider().start()
    # Chromium opens connections ahead of need; the provider's thread for one waits for a
    # request line. (werkzeug closes every connection after its response: no keep-alive.)
    with socket.create_connection((LOCALHOST, idp.port), timeout=5) as preconnected:
        # Accepted in order: once this answer is back, the idle connection has its thread.
        assert requests.get(idp.discovery_url, timeout=5).status_code == 200

        started = time.monotonic()
        idp.stop()

        assert time.monotonic() - started < 5
        assert preconnected.recv(1) == b""  # closed by the provider, not left waiting
    assert not port_is_open(LOCALHOST, idp.port)
    assert set(threading.enumerate()) <= threads_before
