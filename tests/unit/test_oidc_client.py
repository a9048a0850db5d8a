"""The relying party's checks of what a provider publishes and signs, without a network: the
discovery document and JWKS come from a stand-in HTTP session, the ID tokens are signed here
with joserfc (tests/browser/test_sso_journey.py does the same against a real provider)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from server.adapters.oidc import OidcClient, OidcError
from server.adapters.sso_config import ProviderConfig
from server.domain.model import Role
from server.domain.sso import GroupRule

ISSUER = "https://idp.example.fi/realms/esavo"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
NOW = 1_800_000_000


class Answer:
    def __init__(self, body: Any) -> None:
        self.body = body

    def raise_for_status(self) -> None:
        return None

    def json(self) -> Any:
        return self.body


class Published:
    """What the provider publishes, by URL."""

    def __init__(self, **overrides: Any) -> None:
        self.discovery = {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/auth",
            "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/certs",
            "end_session_endpoint": f"{ISSUER}/logout",
        } | overrides
        self.fetched: list[str] = []
        self.verified_with: list[str | bool] = []

    def get(self, url: str, timeout: float, verify: str | bool = True) -> Answer:
        self.fetched.append(url)
        self.verified_with.append(verify)
        if url.endswith("/.well-known/openid-configuration"):
            return Answer(self.discovery)
        return Answer({"keys": [KEY.as_dict(private=False)]})


def client(http: Published | None = None, ca_file: str = "") -> OidcClient:
    provider = ProviderConfig(
        name="kc",
        organisation="esavo",
        label="Keycloak",
        issuer=ISSUER,
        client_id="lainaamo",
        client_secret="s3cret",
        rules=(GroupRule("it", Role.IT_SUPPORT),),
        ca_file=ca_file,
    )
    return OidcClient(provider, http or Published(), clock=lambda: NOW)  # type: ignore[arg-type]


def token(**changes: Any) -> str:
    claims = {
        "iss": ISSUER,
        "sub": "u-1",
        "aud": "lainaamo",
        "iat": NOW - 5,
        "exp": NOW + 300,
        "nonce": "n-1",
        "auth_time": NOW - 5,
    } | changes
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)


def test_a_good_token_gives_its_claims() -> None:
    assert client().verify(token(groups=["it"]), "n-1")["groups"] == ["it"]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"iss": "https://evil.example"}, "claims"),
        ({"aud": "another-client"}, "another client"),
        ({"aud": ["lainaamo", "other"]}, "azp"),
        ({"aud": ["lainaamo", "other"], "azp": "other"}, "azp"),
        ({"exp": NOW - 600}, "claims"),
        ({"nonce": "n-2"}, "claims"),
        ({"nonce": None}, "claims"),
        ({"iat": NOW + 3600}, "claims|future"),
        ({"sub": None}, "claims"),
    ],
)
def test_a_token_whose_claims_do_not_hold_is_refused(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(OidcError, match=why):
        client().verify(token(**changes), "n-1")


def test_several_audiences_need_us_as_the_authorised_party() -> None:
    claims = client().verify(token(aud=["lainaamo", "other"], azp="lainaamo"), "n-1")
    assert claims["sub"] == "u-1"


def test_clock_skew_is_tolerated_within_the_setting() -> None:
    assert client().verify(token(exp=NOW - 60), "n-1")  # 120 s allowed by default


def test_a_re_authentication_needs_a_fresh_auth_time() -> None:
    asked_at = NOW - 30.0
    assert client().verify(token(auth_time=NOW - 10), "n-1", auth_after=asked_at)
    with pytest.raises(OidcError, match="did not ask"):
        client().verify(token(auth_time=NOW - 3600), "n-1", auth_after=asked_at)
    with pytest.raises(OidcError, match="auth_time"):
        client().verify(token(auth_time=None), "n-1", auth_after=asked_at)


def test_an_unsigned_or_symmetric_token_is_refused() -> None:
    from joserfc.jwk import OctKey

    secret = OctKey.import_key("s3cret-s3cret-s3cret-s3cret-s3cret")
    hs = jwt.encode({"alg": "HS256"}, {"iss": ISSUER, "sub": "u", "aud": "lainaamo"}, secret)
    with pytest.raises(OidcError, match="signature"):
        client().verify(hs, "n-1")


def test_the_discovery_document_must_name_the_configured_issuer() -> None:
    with pytest.raises(OidcError, match="names issuer"):
        client(Published(issuer="https://other.example.fi")).metadata()


def test_endpoints_must_be_https() -> None:
    with pytest.raises(OidcError, match="token_endpoint"):
        client(Published(token_endpoint="http://idp.example.fi/token")).metadata()


def test_metadata_and_keys_are_kept_not_fetched_for_every_sign_in() -> None:
    http = Published()
    rp = client(http)
    for _ in range(3):
        rp.verify(token(), "n-1")
    assert len(http.fetched) == 2  # the discovery document and the JWKS, once


def test_single_logout_address() -> None:
    url = client().end_session_url("hint.jwt", "https://lainaamo.example.fi/signed-out")
    assert url == (
        f"{ISSUER}/logout?client_id=lainaamo&post_logout_redirect_uri="
        "https%3A%2F%2Flainaamo.example.fi%2Fsigned-out&id_token_hint=hint.jwt"
    )
    assert client(Published(end_session_endpoint=None)).end_session_url(None, "x") is None


def test_the_authorisation_request_carries_pkce_state_and_nonce() -> None:
    url = client().authorization_url(
        "https://lainaamo.example.fi/cb", "st", "nn", "v" * 43, reauthenticate=True
    )
    assert url.startswith(f"{ISSUER}/auth?")
    for part in (
        "state=st",
        "nonce=nn",
        "code_challenge_method=S256",
        "code_challenge=",
        "prompt=login",
        "max_age=0",
        "client_id=lainaamo",
    ):
        assert part in url, part


def test_a_provider_behind_the_regions_own_ca_is_verified_against_that_ca() -> None:
    # Discovery and the keys check the provider's certificate against `ca_file` when it is
    # set; without it, against the system's CAs (requests' default).
    published = Published()
    own_ca = client(published, ca_file="/run/secrets/sso_ca")
    own_ca.metadata()
    own_ca.key_ids()
    assert published.verified_with == ["/run/secrets/sso_ca", "/run/secrets/sso_ca"]
    published = Published()
    client(published).metadata()
    assert published.verified_with == [True]
    # The token endpoint's call: tests/integration/test_sso_sign_in.py, against a real
    # provider over HTTPS.
