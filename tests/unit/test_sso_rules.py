"""Single sign-on's rules without a provider: the groups mapping, the claims it reads, the
user name, and the SSO file's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lainaamo.errors import ConfigError
from server.adapters import sso_config
from server.domain.model import Role
from server.domain.sso import GroupRule, SsoRefused, groups_of, map_groups, username_from

RULES = (
    GroupRule("it", Role.IT_SUPPORT),
    GroupRule("aso", Role.COUNSELLOR, ("ASO",)),
    GroupRule("mtp", Role.COUNSELLOR, ("MTP",)),
    GroupRule("admins", Role.ADMIN),
)


def test_a_counsellor_in_two_unit_groups_sees_both_units() -> None:
    grant = map_groups(["aso", "mtp", "unrelated"], RULES)
    assert grant is not None
    assert (grant.role, grant.units, grant.groups) == (
        Role.COUNSELLOR,
        ("ASO", "MTP"),
        ("aso", "mtp"),
    )


def test_the_highest_role_wins_and_only_its_units_count() -> None:
    grant = map_groups(["aso", "it"], RULES)
    assert grant is not None and (grant.role, grant.units) == (Role.IT_SUPPORT, ())
    grant = map_groups(["it", "admins"], RULES)
    assert grant is not None and grant.role is Role.ADMIN


def test_no_mapped_group_is_no_grant() -> None:
    assert map_groups([], RULES) is None
    assert map_groups(["Domain Users"], RULES) is None


@given(st.lists(st.sampled_from(["it", "aso", "mtp", "admins", "x", "y"])))
def test_the_mapping_does_not_depend_on_order_or_repeats(groups: list[str]) -> None:
    assert map_groups(groups, RULES) == map_groups(sorted(set(groups), reverse=True), RULES)


def test_groups_come_from_a_list_a_string_or_a_dotted_path() -> None:
    assert groups_of({"groups": ["a", "b", 3]}, "groups") == ["a", "b"]
    assert groups_of({"groups": "a"}, "groups") == ["a"]
    keycloak = {"resource_access": {"lainaamo": {"roles": ["it"]}}}
    assert groups_of(keycloak, "resource_access.lainaamo.roles") == ["it"]
    assert groups_of({}, "groups") == []
    assert groups_of({"groups": {"not": "a list"}}, "groups") == []


def test_entra_group_overage_is_refused_with_a_reason_an_operator_can_act_on() -> None:
    claims = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {}}}
    with pytest.raises(SsoRefused) as refused:
        groups_of(claims, "groups")
    assert refused.value.kind == "groups_missing"
    assert "roles" in refused.value.reason


def test_user_name_from_the_claim_or_the_subject_within_allowed_domains() -> None:
    claims = {"sub": "abc-123", "email": "Liisa.L@esavo.fi"}
    assert username_from(claims, "email", ()) == "Liisa.L@esavo.fi"
    assert username_from({"sub": "abc-123"}, "email", ()) == "abc-123"
    assert username_from(claims, "email", ("ESAVO.fi",)) == "Liisa.L@esavo.fi"
    guest = {"sub": "g", "preferred_username": "anna_gmail.com#EXT#@esavo.onmicrosoft.com"}
    with pytest.raises(SsoRefused) as refused:
        username_from(guest, "preferred_username", ("esavo.fi",))
    assert refused.value.kind == "not_allowed"
    with pytest.raises(SsoRefused):
        username_from({"sub": "x" * 121}, "email", ())


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sso.toml"
    path.write_text(text)
    return str(path)


GOOD = """
[organisations.esavo]
local_passwords = false

[providers.esavo-entra]
organisation = "esavo"
label = "Etelä-Savo"
issuer = "https://login.example.fi/tenant/v2.0/"
client_id = "lainaamo"
client_secret_env = "SSO_SECRET"
allowed_domains = ["esavo.fi"]

[[providers.esavo-entra.groups]]
group = "g-it"
role = "it_support"

[[providers.esavo-entra.groups]]
group = "g-aso"
role = "counsellor"
units = ["ASO"]
"""


def test_the_sso_file_is_read_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    config = sso_config.load(_write(tmp_path, GOOD), {"SSO_SECRET": "s3cret"})
    provider = config.providers["esavo-entra"]
    assert provider.issuer == "https://login.example.fi/tenant/v2.0"  # no trailing slash
    assert provider.client_secret == "s3cret"
    assert "s3cret" not in repr(provider)
    assert provider.rules[1] == GroupRule("g-aso", Role.COUNSELLOR, ("ASO",))
    assert not config.local_passwords("esavo") and config.local_passwords("other")
    assert [p.name for p in config.for_organisation("esavo")] == ["esavo-entra"]


def test_the_secret_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    text = GOOD.replace('client_secret_env = "SSO_SECRET"', f'client_secret_file = "{secret}"')
    assert sso_config.load(_write(tmp_path, text), {}).providers["esavo-entra"].client_secret == (
        "from-file"
    )


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('client_secret_env = "SSO_SECRET"', 'client_secret = "in-the-repo"'), "not a secret"),
        (('client_secret_env = "SSO_SECRET"', 'client_secret_env = "UNSET"'), "empty"),
        (("https://login.example.fi", "http://login.example.fi"), "https"),
        (('role = "it_support"', 'role = "superuser"'), "role"),
        (('units = ["ASO"]', "units = []"), "units"),
        (("[providers.esavo-entra]", "[providers.Esavo_Entra]"), "name"),
        (('label = "Etelä-Savo"', 'labl = "typo"'), "unknown"),
        (("local_passwords = false", 'local_passwords = "no"'), "true or false"),
    ],
)
def test_a_mistake_in_the_sso_file_is_named(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    text = GOOD.replace(*change)
    if "Esavo_Entra" in text:
        text = text.replace("providers.esavo-entra.groups", "providers.Esavo_Entra.groups")
    with pytest.raises(ConfigError, match=complaint):
        sso_config.load(_write(tmp_path, text), {"SSO_SECRET": "s3cret"})


def test_the_providers_own_ca_file_is_read_at_start(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    text = GOOD.replace('client_id = "lainaamo"', f'client_id = "lainaamo"\nca_file = "{ca}"')
    with pytest.raises(ConfigError, match="cannot read ca_file"):
        sso_config.load(_write(tmp_path, text), {"SSO_SECRET": "x"})
    ca.write_text("not a certificate")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        sso_config.load(_write(tmp_path, text), {"SSO_SECRET": "x"})
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    provider = sso_config.load(_write(tmp_path, text), {"SSO_SECRET": "x"}).providers
    assert provider["esavo-entra"].ca_file == str(ca)
    assert (
        sso_config.load(_write(tmp_path, GOOD), {"SSO_SECRET": "x"})
        .providers["esavo-entra"]
        .ca_file
        == ""
    )


def test_loopback_http_is_allowed_for_a_provider_on_this_machine(tmp_path: Path) -> None:
    text = GOOD.replace("https://login.example.fi", "http://127.0.0.1:8080")
    assert sso_config.load(_write(tmp_path, text), {"SSO_SECRET": "x"}).providers


def test_no_file_no_providers() -> None:
    config = sso_config.load("")
    assert config.providers == {} and config.local_passwords("anything")
