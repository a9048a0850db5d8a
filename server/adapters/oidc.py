"""An OpenID Connect relying party, made of well-kept parts: Authlib's OAuth 2 client for the
authorisation code flow with PKCE, joserfc (by Authlib's author) for the ID token's signature
and claims.

One `OidcClient` per configured provider, shared by the process's threads. The provider's
discovery document and JWKS are fetched on first use and kept for an hour; a token signed
with a key not in the kept JWKS makes one fresh fetch (the provider has rotated its keys).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from authlib.common.security import is_secure_transport
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from server.adapters.sso_config import ProviderConfig, SsoConfig

CACHE_S = 3600.0
REFETCH_AFTER_S = 30.0  # a second JWKS fetch for an unknown key waits at least this long
HTTP_TIMEOUT_S = 10.0
# Asymmetric algorithms only: "none" and HS256 (keyed with the client secret) are refused.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


class OidcError(Exception):
    """The provider's answer cannot be trusted or used; the message names why (for the
    audit log and the operator, never containing a token)."""


@dataclass(frozen=True)
class Metadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


class OidcClient:
    def __init__(
        self,
        provider: ProviderConfig,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self._http = http or requests.Session()
        # The provider's TLS certificate is checked against its own CA file when it has one.
        self._verify: str | bool = provider.ca_file or True
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: tuple[float, Metadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._forced_at = -REFETCH_AFTER_S  # when `refresh` last fetched the keys

    # --- the provider's published facts

    def metadata(self) -> Metadata:
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < CACHE_S:
                return self._metadata[1]
        url = self.provider.issuer + "/.well-known/openid-configuration"
        doc = self._get_json(url)
        if doc.get("issuer", "").rstrip("/") != self.provider.issuer:
            raise OidcError(
                f"the discovery document names issuer {doc.get('issuer')!r}, "
                f"not {self.provider.issuer!r}"
            )
        endpoints = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = doc.get(key)
            if not isinstance(value, str) or not is_secure_transport(value):
                raise OidcError(f"the discovery document's {key} is missing or not https")
            endpoints[key] = value
        end_session = doc.get("end_session_endpoint")
        found = Metadata(
            **endpoints,
            end_session_endpoint=end_session
            if isinstance(end_session, str) and is_secure_transport(end_session)
            else None,
        )
        with self._lock:
            self._metadata = (time.monotonic(), found)
        return found

    def _key_set(self, refresh: bool = False) -> KeySet:
        """The provider's keys: kept for an hour; `refresh` (a token signed with a key not kept)
        fetches them again, at most once in REFETCH_AFTER_S, so forged kids cannot make
        Lainaamo hammer the provider."""
        now = time.monotonic()
        with self._lock:
            kept = self._keys
            if kept and (not refresh and now - kept[0] < CACHE_S):
                return kept[1]
            if kept and refresh:
                if now - self._forced_at < REFETCH_AFTER_S:
                    return kept[1]
                self._forced_at = now
        try:
            keys = KeySet.import_key_set(self._get_json(self.metadata().jwks_uri))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError(f"the provider's JWKS cannot be read: {exc}") from None
        with self._lock:
            self._keys = (time.monotonic(), keys)
        return keys

    def key_ids(self) -> list[str]:
        """The kids of the provider's published keys (fetched now)."""
        return [str(key.kid) for key in self._key_set(refresh=True).keys]

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, timeout=HTTP_TIMEOUT_S, verify=self._verify)
            response.raise_for_status()
            doc = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError(f"cannot read {url}: {exc}") from None
        if not isinstance(doc, dict):
            raise OidcError(f"{url} did not answer with a JSON object")
        return doc

    # --- the flow

    def _session(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(
            client_id=self.provider.client_id,
            client_secret=self.provider.client_secret,
            scope=" ".join(self.provider.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=self.provider.token_auth,
        )

    def authorization_url(
        self,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
        *,
        reauthenticate: bool = False,
    ) -> str:
        """Where to send the browser. `reauthenticate`: the provider must ask again
        (`prompt=login`, `max_age=0`) and say when it did (`auth_time`)."""
        extra: dict[str, Any] = {"nonce": nonce}
        if reauthenticate:
            extra.update(prompt="login", max_age=0)
        with self._session(redirect_uri) as client:
            url, _state = client.create_authorization_url(
                self.metadata().authorization_endpoint,
                state=state,
                code_verifier=code_verifier,
                **extra,
            )
        return str(url)

    def exchange(self, code: str, redirect_uri: str, code_verifier: str) -> str:
        """The ID token for an authorisation code (with the PKCE verifier)."""
        try:
            with self._session(redirect_uri) as client:
                token = client.fetch_token(
                    self.metadata().token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    timeout=HTTP_TIMEOUT_S,
                    # Per request: requests lets REQUESTS_CA_BUNDLE in the environment win
                    # over a session's own `verify`, so the session's alone is not enough.
                    verify=self._verify,
                )
        except (OAuth2Error, requests.RequestException, ValueError) as exc:
            raise OidcError(f"the token endpoint refused the code: {exc}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the token endpoint gave no ID token")
        return id_token

    def verify(
        self, id_token: str, nonce: str, *, auth_after: float | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature (by a key in the provider's JWKS), issuer,
        audience, authorised party, expiry, issue time and nonce hold, with the provider's
        clock skew allowed. `auth_after` (a re-authentication): `auth_time` must be present
        and not before it."""
        try:
            token = self._decode(id_token)
        except JoseError:
            # An unknown key: the provider may have rotated; one fresh JWKS, then give up.
            try:
                token = self._decode(id_token, refresh=True)
            except JoseError as exc:
                raise OidcError(f"the ID token's signature does not verify: {exc}") from None
        claims = dict(token.claims)
        skew = self.provider.clock_skew_s
        registry = jwt.JWTClaimsRegistry(
            now=int(self._clock()),
            leeway=skew,
            iss={"essential": True, "value": self.provider.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OidcError(f"the ID token's claims do not hold: {exc}") from None
        self._check_audience(claims)
        if int(claims["iat"]) > self._clock() + skew:
            raise OidcError("the ID token was issued in the future")
        if auth_after is not None:
            auth_time = claims.get("auth_time")
            if not isinstance(auth_time, int | float):
                raise OidcError("the provider did not say when the person signed in (auth_time)")
            if auth_time < auth_after - skew:
                raise OidcError("the provider did not ask the person to sign in again")
        return claims

    def _decode(self, id_token: str, refresh: bool = False) -> jwt.Token:
        return jwt.decode(id_token, self._key_set(refresh), algorithms=ALGORITHMS)

    def _check_audience(self, claims: dict[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.provider.client_id not in audiences:
            raise OidcError("the ID token is meant for another client (aud)")
        # OpenID Connect Core 3.1.3.7: with several audiences, azp must be us.
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.provider.client_id:
            raise OidcError("the ID token's authorised party (azp) is another client")

    def end_session_url(
        self, id_token_hint: str | None, post_logout_redirect_uri: str
    ) -> str | None:
        """The provider's single logout (RP-initiated logout) for this session, if it has one."""
        try:
            endpoint = self.metadata().end_session_endpoint
        except OidcError:
            return None
        if endpoint is None:
            return None
        params = {
            "client_id": self.provider.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


class Providers:
    """The SSO file's providers with one client each: what a process signs people in with."""

    def __init__(self, config: SsoConfig, http: requests.Session | None = None) -> None:
        self.config = config
        self.clients = {name: OidcClient(p, http) for name, p in config.providers.items()}
        # The providers' origins (scheme://host[:port]) for the console's CSP, which every
        # console response carries: worked out once.
        self._origins = sorted(
            {urlunsplit(urlsplit(p.issuer)[:2] + ("", "", "")) for p in config.providers.values()}
        )

    def client(self, name: str) -> OidcClient | None:
        return self.clients.get(name)

    def origins(self) -> list[str]:
        """The providers' origins, for the console's CSP."""
        return self._origins

    def label(self, name: str | None) -> str | None:
        """How the sign-in pages name provider `name` ("Sign in with …"); None if unknown."""
        provider = self.config.providers.get(name or "")
        return provider.label if provider else None
