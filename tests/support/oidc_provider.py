"""A real OpenID Connect provider on loopback for the console's single sign-on tests.

IdentityPython's pyop does the protocol: it parses and validates authorization requests,
issues one-time codes, checks the client's secret and the PKCE verifier at the token endpoint
and signs ID tokens with an RSA key published at the JWKS endpoint. Around it, a small Flask
app adds what a browser needs (a sign-in form, the provider's own session cookie, a sign-out
endpoint) and what the negative tests need (`mischief`, `rotate_key`, request logs). It is
served by werkzeug's threaded server on a free loopback port, so Chromium and the server's
back-channel calls can reach it at the same time.

    with OidcProvider() as idp:
        idp.register_client("lainaamo", "s3cret", [redirect_uri], [post_logout_uri])
        idp.add_user("maija", "pw", email="maija@example.org", groups=["lainaamo-admins"])
        ... idp.issuer, idp.authorization_requests, idp.logouts ...
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import flask
from Cryptodome.PublicKey import RSA
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwk import RSAKey as JoseRSAKey
from jwkest.jwk import RSAKey  # type: ignore[import-untyped, unused-ignore]
from pyop.authz_state import AuthorizationState  # type: ignore[import-untyped, unused-ignore]
from pyop.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    InvalidAuthenticationRequest,
    InvalidAuthorizationCode,
    InvalidClientAuthentication,
    InvalidSubjectIdentifier,
    OAuthError,
)
from pyop.provider import Provider  # type: ignore[import-untyped, unused-ignore]
from pyop.subject_identifier import (  # type: ignore[import-untyped, unused-ignore]
    HashBasedSubjectIdentifierFactory,
)
from pyop.userinfo import Userinfo  # type: ignore[import-untyped, unused-ignore]
from pyop.util import should_fragment_encode  # type: ignore[import-untyped, unused-ignore]
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

from support.ports import LOCALHOST, free_port, wait_for_port

MISCHIEF = frozenset(
    {
        "tampered",
        "foreign_key",
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "wrong_nonce",
        "alg_none",
    }
)
TITLE = "Test identity provider"
_STYLE = "body{font-family:sans-serif;max-width:28rem;margin:2rem auto}label{display:block}"


@dataclass(frozen=True)
class Logout:
    """One call of the end-session endpoint that ended (or found no) provider session."""

    username: str | None
    sub: str | None
    client_id: str | None
    post_logout_redirect_uri: str | None
    state: str | None
    id_token_hint: bool
    redirected: bool


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint: how the client authenticated and whether it got tokens."""

    client_id: str | None
    auth_method: str
    grant_type: str | None
    status: int
    error: str | None = None


@dataclass
class _User:
    password: str
    sub: str
    email: str | None
    name: str | None
    groups: list[str] = field(default_factory=list)


@dataclass
class _BrowserSession:
    username: str
    auth_time: int


@dataclass(frozen=True)
class _Grant:
    username: str
    auth_time: int
    scope: tuple[str, ...]


@dataclass(frozen=True)
class _Key:
    kid: str
    pyop: Any  # jwkest RSAKey, what pyop signs with
    jose: JoseRSAKey  # the same key for the harness's own signing and verifying


def _new_key(kid: str) -> _Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()
    public = numbers.public_numbers
    # Built from the numbers without Cryptodome's consistency check (it takes 50 ms, and
    # OpenSSL made the key).
    components = (public.n, public.e, numbers.d, numbers.p, numbers.q)
    cryptodome_key = RSA.construct(components, consistency_check=False)
    pyop_key = RSAKey(key=cryptodome_key, alg="RS256", use="sig", kid=kid)
    jose_key = JoseRSAKey.import_key(private, {"kid": kid, "alg": "RS256", "use": "sig"})
    return _Key(kid, pyop_key, jose_key)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


class _AsWarning(logging.Filter):
    """pyop and oic log a refused request (unknown client, unregistered redirect URI, a wrong
    PKCE verifier) as an ERROR; for a test provider that is expected traffic, and the suite
    fails on any ERROR record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


for _name in ("pyop.request_validator", "oic.extension.provider"):
    logging.getLogger(_name).addFilter(_AsWarning())


def _require_pkce(auth_req: Any) -> None:
    if "code_challenge" not in auth_req or auth_req.get("code_challenge_method") != "S256":
        raise InvalidAuthenticationRequest(
            "PKCE is required: code_challenge with code_challenge_method=S256",
            auth_req,
            oauth_error="invalid_request",
        )


def _page(body: str, status: int = 200) -> Response:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{TITLE}</title>'
        f"<style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )
    return Response(document, status=status, mimetype="text/html")


def _login_form(query: str, error: bool) -> Response:
    alert = '<p role="alert">Wrong username or password.</p>' if error else ""
    return _page(
        f"<h1>{TITLE}</h1>{alert}"
        '<form method="post" action="/authorize">'
        f'<input type="hidden" name="request" value="{html.escape(query)}">'
        '<p><label for="username">Username</label>'
        '<input id="username" name="username" autocomplete="username" required></p>'
        '<p><label for="password">Password</label><input id="password" name="password" '
        'type="password" autocomplete="current-password" required></p>'
        '<p><button type="submit">Sign in</button></p></form>'
    )


class OidcProvider:
    """pyop behind a Flask app on http://127.0.0.1:<port> (or `host`, over TLS);
    start()/stop() or `with`."""

    def __init__(
        self,
        *,
        groups_claim: str = "groups",
        id_token_lifetime: int = 3600,
        host: str = LOCALHOST,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """`host`: the address served on and named in the issuer (the stack test's is the
        Docker network's gateway, which containers reach); `tls`: (certificate, key) files to
        serve HTTPS with, as a provider outside this machine does."""
        self.port = free_port()
        self.host, self._tls = host, tls
        self.issuer = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.groups_claim = groups_claim
        # Per port: cookies ignore the port, and the console under test lives on 127.0.0.1 too.
        self.cookie_name = f"test_idp_session_{self.port}"
        self.authorization_requests: list[dict[str, str]] = []
        self.token_requests: list[TokenRequest] = []
        self.logouts: list[Logout] = []
        self._mischief: str | None = None
        # Instead of redirecting the browser back with the code, show the answer as a link
        # ("Continue"): a test can then take it elsewhere, change it or replay it (browsers
        # do not let a test intercept a redirect).
        self.hold_answers = False
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}
        self._userinfo: dict[str, dict[str, Any]] = {}
        self._sessions: dict[str, _BrowserSession] = {}
        self._grants: dict[str, _Grant] = {}
        self._key = _new_key("key-1")
        self._retired_keys: list[_Key] = []
        self._foreign: _Key | None = None  # made on the first "foreign_key" mischief
        self._pyop = self._make_pyop(id_token_lifetime)
        self.app = self._make_app()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}

    # --- the provider's configuration ----------------------------------------------------

    def _make_pyop(self, id_token_lifetime: int) -> Any:
        configuration = {
            # oic refuses a configuration whose issuer is not https; the real (loopback http)
            # issuer is put in right after, and it is what the ID tokens and discovery carry.
            "issuer": f"https://{self.host}:{self.port}",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/end_session",
            "scopes_supported": ["openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "email",
                "email_verified",
                "name",
                "preferred_username",
                self.groups_claim,
            ],  # fmt: skip
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }
        state = AuthorizationState(HashBasedSubjectIdentifierFactory(secrets.token_hex(8)))
        provider = Provider(
            self._key.pyop,
            configuration,
            state,
            {},
            Userinfo(self._userinfo),
            id_token_lifetime=id_token_lifetime,
        )
        provider.configuration_information["issuer"] = self.issuer
        provider.authentication_request_validators.append(_require_pkce)
        return provider

    def _make_app(self) -> flask.Flask:
        app = flask.Flask(__name__)
        app.add_url_rule("/.well-known/openid-configuration", "discovery", self._discovery)
        app.add_url_rule("/jwks", "jwks", self._jwks)
        app.add_url_rule("/authorize", "authorize", self._authorize, methods=["GET", "POST"])
        app.add_url_rule("/token", "token", self._token, methods=["POST"])
        app.add_url_rule("/userinfo", "userinfo", self._userinfo_view, methods=["GET", "POST"])
        app.add_url_rule("/end_session", "end_session", self._end_session, methods=["GET", "POST"])
        return app

    # --- what the tests call -------------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str],
        post_logout_redirect_uris: Iterable[str] = (),
        *,
        token_endpoint_auth_method: str = "client_secret_basic",
    ) -> None:
        """A confidential client; pyop accepts exactly one auth method per client at /token."""
        if token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError(
                f"unsupported token_endpoint_auth_method {token_endpoint_auth_method!r}"
            )
        with self._lock:
            self._pyop.clients[client_id] = {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": list(redirect_uris),
                "post_logout_redirect_uris": list(post_logout_redirect_uris),
                "response_types": ["code"],
                "token_endpoint_auth_method": token_endpoint_auth_method,
            }

    def add_user(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        name: str | None = None,
        groups: Iterable[str] = (),
        sub: str | None = None,
    ) -> str:
        """Add (or replace) a user; returns the user's `sub`, fixed for as long as they exist."""
        with self._lock:
            known = self._users.get(username)
            subject = sub or (known.sub if known else f"sub-{secrets.token_hex(8)}")
            self._users[username] = _User(password, subject, email, name, list(groups))
            self._sync_userinfo(username)
            return subject

    def set_groups(self, username: str, groups: Iterable[str]) -> None:
        """The groups released in the next ID token for this user."""
        with self._lock:
            self._users[username].groups = list(groups)
            self._sync_userinfo(username)

    def remove_user(self, username: str) -> None:
        """The user can no longer sign in; their provider sessions and unused codes are dead."""
        with self._lock:
            self._end_browser_sessions(username)
            del self._users[username]
            del self._userinfo[username]

    def subject(self, username: str) -> str:
        """The `sub` the provider gives this user."""
        with self._lock:
            return self._users[username].sub

    def age_sessions(self, seconds: int) -> None:
        """Pretend every provider session's password was typed `seconds` earlier (max_age)."""
        with self._lock:
            for session in self._sessions.values():
                session.auth_time -= seconds

    def forget_sessions(self) -> None:
        """End every provider browser session, as if they had expired."""
        with self._lock:
            self._sessions.clear()

    def rotate_key(self) -> str:
        """Sign with a new key and a new kid from now on; the JWKS publishes only the new one."""
        with self._lock:
            self._retired_keys.append(self._key)
            self._key = _new_key(f"key-{len(self._retired_keys) + 1}")
            self._pyop.signing_key = self._key.pyop
            return self._key.kid

    @property
    def kid(self) -> str:
        """The kid of the key that signs ID tokens now."""
        return self._key.kid

    @property
    def mischief(self) -> str | None:
        """How the token endpoint spoils the next ID tokens (None: it does not)."""
        return self._mischief

    @mischief.setter
    def mischief(self, value: str | None) -> None:
        if value is not None and value not in MISCHIEF:
            raise ValueError(f"unknown mischief {value!r}; one of {sorted(MISCHIEF)}")
        self._mischief = value

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> OidcProvider:
        """Serve on the loopback port; returns once it accepts connections."""
        self._server = make_server(
            self.host,
            self.port,
            self.app,
            threaded=True,
            request_handler=self._handler_class(),
            ssl_context=self._tls,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll
            name=f"oidc-provider-{self.port}",
            daemon=True,
        )
        self._thread.start()
        wait_for_port(self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive browser connections and wait for every thread."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._thread.join(timeout=10)
        with self._lock:
            connections = list(self._connections.items())
        for connection, _ in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the peer closed it already
        for _, thread in connections:
            thread.join(timeout=10)
        self._server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[WSGIRequestHandler]:
        connections, lock = self._connections, self._lock

        class Handler(WSGIRequestHandler):
            def setup(self) -> None:
                super().setup()
                with lock:
                    connections[self.connection] = threading.current_thread()

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with lock:
                        connections.pop(self.connection, None)

        return Handler

    # --- users and browser sessions ----------------------------------------------------

    def _sync_userinfo(self, username: str) -> None:
        user = self._users[username]
        info: dict[str, Any] = {
            "sub": user.sub,
            "preferred_username": username,
            self.groups_claim: list(user.groups),
        }
        if user.email is not None:
            info.update(email=user.email, email_verified=True)
        if user.name is not None:
            info["name"] = user.name
        self._userinfo[username] = info

    def _end_browser_sessions(self, username: str) -> None:
        for sid in [s for s, session in self._sessions.items() if session.username == username]:
            del self._sessions[sid]
        try:  # pyop drops the user's unused codes and access tokens
            self._pyop.logout_user(subject_identifier=self._users[username].sub)
        except InvalidSubjectIdentifier:
            pass  # pyop has seen no sign-in of this user yet

    def _browser_session(self) -> _BrowserSession | None:
        session = self._sessions.get(flask.request.cookies.get(self.cookie_name, ""))
        if session is None or session.username not in self._users:
            return None
        return session

    # --- endpoints -----------------------------------------------------------------------

    def _discovery(self) -> Response:
        return flask.jsonify(self._pyop.provider_configuration.to_dict())

    def _jwks(self) -> Response:
        with self._lock:
            return flask.jsonify(self._pyop.jwks)

    def _authorize(self) -> Response:
        request = flask.request
        if request.method == "GET":
            query = request.query_string.decode()
            with self._lock:
                self.authorization_requests.append(request.args.to_dict())
        else:
            query = request.form.get("request", "")
        with self._lock:
            try:
                auth_req = self._pyop.parse_authentication_request(query)
            except InvalidAuthenticationRequest as e:
                error_url = e.to_error_url()
                if error_url:
                    return flask.redirect(error_url, 303)
                return _page(f"<h1>{TITLE}</h1><p>Bad request: {html.escape(str(e))}</p>", 400)
            if request.method == "POST":
                return self._sign_in(auth_req, query)
            session = self._browser_session()
            if session is None or self._must_authenticate(auth_req, session):
                if "none" in auth_req.get("prompt", []):
                    return self._error_redirect(auth_req, "login_required")
                return _login_form(query, error=False)
            return self._issue_code(auth_req, session)

    @staticmethod
    def _must_authenticate(auth_req: Any, session: _BrowserSession) -> bool:
        if "login" in auth_req.get("prompt", []):
            return True
        if "max_age" not in auth_req:
            return False
        max_age = int(auth_req["max_age"])  # 0: always, even within the second of the last
        return max_age == 0 or int(time.time()) - session.auth_time > max_age

    def _sign_in(self, auth_req: Any, query: str) -> Response:
        username = flask.request.form.get("username", "")
        password = flask.request.form.get("password", "")
        user = self._users.get(username)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            return _login_form(query, error=True)
        sid = secrets.token_urlsafe(24)
        session = _BrowserSession(username, int(time.time()))
        self._sessions[sid] = session
        response = self._issue_code(auth_req, session)
        response.set_cookie(self.cookie_name, sid, httponly=True, samesite="Lax")
        return response

    def _issue_code(self, auth_req: Any, session: _BrowserSession) -> Response:
        authorization = self._pyop.authorize(auth_req, session.username)
        scope = tuple(auth_req["scope"])
        self._grants[authorization["code"]] = _Grant(session.username, session.auth_time, scope)
        url = authorization.request(auth_req["redirect_uri"], should_fragment_encode(auth_req))
        if self.hold_answers:
            link = f'<a id="answer" href="{html.escape(url)}">Continue</a>'
            return _page(f"<h1>{TITLE}</h1><p>{link}</p>")
        return flask.redirect(url, 303)

    def _error_redirect(self, auth_req: Any, error: str) -> Response:
        failure = InvalidAuthenticationRequest(error, auth_req, oauth_error=error)
        return flask.redirect(failure.to_error_url(), 303)

    def _token(self) -> Response:
        body = flask.request.get_data(as_text=True)
        params = dict(parse_qsl(body))
        authorization = flask.request.headers.get("Authorization", "")
        auth_method = (
            "client_secret_basic"
            if authorization.startswith("Basic ")
            else "client_secret_post"
            if "client_secret" in params
            else "none"
        )
        with self._lock:
            grant = self._grants.get(params.get("code", ""))
            status, payload = self._exchange(body, grant)
            self.token_requests.append(
                TokenRequest(
                    params.get("client_id"),
                    auth_method,
                    params.get("grant_type"),
                    status,
                    payload.get("error"),
                )
            )
        response = flask.jsonify(payload)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        if status == 401:
            response.headers["WWW-Authenticate"] = "Basic"
        return response

    def _exchange(self, body: str, grant: _Grant | None) -> tuple[int, dict[str, Any]]:
        def claims(user_id: str, client_id: str) -> dict[str, Any]:
            return self._extra_claims(user_id, grant)

        try:
            token_response = self._pyop.handle_token_request(
                body, flask.request.headers, extra_id_token_claims=claims
            )
        except InvalidClientAuthentication as e:
            return 401, {"error": "invalid_client", "error_description": str(e)}
        except OAuthError as e:
            return 400, {"error": e.oauth_error, "error_description": str(e)}
        payload: dict[str, Any] = token_response.to_dict()
        payload["id_token"] = self._spoil(payload["id_token"])
        return 200, payload

    def _extra_claims(self, user_id: str, grant: _Grant | None) -> dict[str, Any]:
        """What pyop adds to the ID token: the user's claims as the scope allows, now."""
        user = self._users.get(user_id)
        if user is None or grant is None:
            raise InvalidAuthorizationCode(f"the user {user_id!r} no longer exists")
        claims: dict[str, Any] = {"auth_time": grant.auth_time, self.groups_claim: user.groups}
        if "profile" in grant.scope:
            claims["preferred_username"] = user_id
            if user.name is not None:
                claims["name"] = user.name
        if "email" in grant.scope and user.email is not None:
            claims.update(email=user.email, email_verified=True)
        return claims

    def _spoil(self, id_token: str) -> str:
        """Apply `mischief` to a token pyop signed."""
        mischief = self._mischief
        if mischief is None:
            return id_token
        header, payload, signature = id_token.split(".")
        claims = _unb64(payload)
        if mischief == "tampered":
            claims.update(sub="someone-else", email="mallory@example.invalid")
            return f"{header}.{_b64(claims)}.{signature}"
        if mischief == "alg_none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
        # "foreign_key": a key the JWKS does not have, under the kid of the one it has.
        key = self._key.jose
        if mischief == "foreign_key":
            self._foreign = self._foreign or _new_key("foreign")
            key = self._foreign.jose
        spoil_claims = _CLAIM_MISCHIEF.get(mischief)
        if spoil_claims is not None:
            spoil_claims(claims)
        return jwt.encode({"alg": "RS256", "kid": self._key.kid, "typ": "JWT"}, claims, key)

    def _userinfo_view(self) -> Response:
        with self._lock:
            try:
                info = self._pyop.handle_userinfo_request(
                    flask.request.get_data(as_text=True), flask.request.headers
                )
            except (OAuthError, ValueError) as e:
                response = flask.jsonify({"error": "invalid_token", "error_description": str(e)})
                response.status_code = 401
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            return flask.jsonify(info.to_dict())

    def _end_session(self) -> Response:
        params = flask.request.values
        hint = params.get("id_token_hint")
        with self._lock:
            hinted = self._verify_hint(hint) if hint else {}
            if hinted is None:
                return _page(f"<h1>{TITLE}</h1><p>The sign-out request is not valid.</p>", 400)
            audience = hinted.get("aud", [])
            audience = [audience] if isinstance(audience, str) else list(audience)
            client_id = params.get("client_id") or (audience[0] if audience else None)
            if audience and client_id not in audience:
                return _page(f"<h1>{TITLE}</h1><p>The sign-out request is not valid.</p>", 400)
            username = self._logout_username(hinted.get("sub"))
            if username is not None:
                self._end_browser_sessions(username)
            self._sessions.pop(flask.request.cookies.get(self.cookie_name, ""), None)
            target = params.get("post_logout_redirect_uri")
            client = self._pyop.clients.get(client_id or "", {})
            allowed = target is not None and target in client.get("post_logout_redirect_uris", [])
            self.logouts.append(
                Logout(
                    username,
                    self._users[username].sub if username in self._users else hinted.get("sub"),
                    client_id,
                    target,
                    params.get("state"),
                    bool(hint),
                    allowed,
                )
            )
        if allowed and target is not None:
            state = params.get("state")
            query = urlencode({"state": state}) if state else ""
            joiner = "&" if "?" in target else "?"
            response = flask.redirect(f"{target}{joiner}{query}" if query else target, 303)
        else:
            response = _page(f"<h1>{TITLE}</h1><p>You have signed out.</p>")
        response.delete_cookie(self.cookie_name)
        return response

    def _verify_hint(self, hint: str) -> dict[str, Any] | None:
        """The hint's claims if one of our keys (retired ones too) signed it; expiry is fine."""
        keys = KeySet([self._key.jose, *(k.jose for k in self._retired_keys)])
        try:
            token = jwt.decode(hint, keys, algorithms=["RS256"])
        except (JoseError, ValueError):
            return None
        if token.claims.get("iss") != self.issuer:
            return None
        return dict(token.claims)

    def _logout_username(self, sub: str | None) -> str | None:
        if sub is not None:
            return next((name for name, u in self._users.items() if u.sub == sub), None)
        session = self._browser_session()
        return session.username if session else None


def _expire(claims: dict[str, Any]) -> None:
    now = int(time.time())
    claims.update(iat=now - 3600 - 300, exp=now - 3600)


_CLAIM_MISCHIEF: dict[str, Callable[[dict[str, Any]], None]] = {
    "expired": _expire,
    "wrong_audience": lambda claims: claims.update(aud=["some-other-client"]),
    "wrong_issuer": lambda claims: claims.update(iss="https://impostor.invalid"),
    "wrong_nonce": lambda claims: claims.update(nonce=secrets.token_urlsafe(16)),
}
