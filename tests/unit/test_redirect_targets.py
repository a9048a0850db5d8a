"""Console redirect targets: only paths of this site, however a browser or proxy reads them."""

from __future__ import annotations

import pytest
from support.hostile import LOCAL_TARGETS, OFF_SITE_TARGETS, assert_local

from server.entrypoints.console.redirects import local_path


@pytest.mark.parametrize(
    "target", [t for _, t in OFF_SITE_TARGETS], ids=[f for f, _ in OFF_SITE_TARGETS]
)
def test_a_target_off_the_site_is_refused_or_made_local(target: str) -> None:
    found = local_path(target, "localhost")
    if found:
        assert_local(found)
    assert "evil.example" not in found.lower() or found.startswith("/x")


@pytest.mark.parametrize(("target", "expected"), LOCAL_TARGETS)
def test_our_own_paths_survive(target: str, expected: str) -> None:
    assert local_path(target, "localhost") == expected


def test_an_absolute_url_to_another_host_is_refused_even_with_our_path() -> None:
    assert local_path("https://evil.example/devices", "localhost") == ""
    assert local_path("https://localhost.evil.example/devices", "localhost") == ""
    assert local_path("https://LOCALHOST/devices", "localhost") == "/devices"
