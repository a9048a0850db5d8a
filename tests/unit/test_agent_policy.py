"""Reading the desired policy: modes, kiosk profile, lock screen, banner, ignored keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.policy import KioskProfile, LockScreen, Policy, Shortcut

KIOSK = {
    "apps": ["fi.example.video"],
    "shortcuts": [{"label": "Chat", "url": "https://chat.example/", "category": "chat"}],
    "settings_locked": False,
}


def test_a_full_policy_is_read() -> None:
    policy = Policy.from_dict(
        {
            "mode": "kiosk",
            "kiosk": KIOSK,
            "message": "Laina-aika on päättynyt.",
            "support_phone": "+358 9 123",
            "reminder": True,
            "offline_lock_at": "2026-02-01T08:00:00Z",
        }
    )
    assert policy.kiosk == KioskProfile(
        ("fi.example.video",), (Shortcut("Chat", "https://chat.example/", "chat"),), False
    )
    assert (policy.message, policy.support_phone, policy.reminder) == (
        "Laina-aika on päättynyt.",
        "+358 9 123",
        True,
    )
    assert policy.offline_lock_at == datetime(2026, 2, 1, 8, tzinfo=UTC)
    assert policy.ignored == ()
    assert policy.keys == tuple(sorted(policy.keys)) and len(policy.keys) == 6


@pytest.mark.parametrize(
    ("mode", "kiosk", "screen", "banner"),
    [
        ("kiosk", True, None, "M"),  # reminder on
        ("restricted", True, None, "M"),
        ("locked", False, LockScreen("M", "123", lost=False), None),
        ("lost", False, LockScreen("M", "123", lost=True), None),
        ("unmanaged", False, None, None),
    ],
)
def test_what_each_mode_shows(
    mode: str, kiosk: bool, screen: LockScreen | None, banner: str | None
) -> None:
    policy = Policy.from_dict(
        {"mode": mode, "message": "M", "support_phone": "123", "reminder": True}
    )
    assert (policy.kiosk_enforced, policy.lock_screen, policy.banner) == (kiosk, screen, banner)


def test_kiosk_shows_no_banner_without_reminder() -> None:
    assert Policy.from_dict({"mode": "kiosk", "message": "M"}).banner is None
    assert Policy.from_dict({"mode": "restricted", "message": "M"}).banner == "M"


def test_defaults_of_a_bare_mode() -> None:
    policy = Policy.from_dict({"mode": "kiosk", "message": None, "offline_lock_at": None})
    assert policy.kiosk == KioskProfile((), (), settings_locked=True)
    assert (policy.message, policy.reminder, policy.offline_lock_at) == (None, False, None)


@pytest.mark.parametrize("data", [{}, {"mode": "frozen"}, {"mode": None}, {"mode": ["kiosk"]}])
def test_without_a_known_mode_nothing_can_be_enforced(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="mode"):
        Policy.from_dict(data)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kiosk", True),  # the boolean of the days before the contract had modes
        ("kiosk", {"apps": "fi.example.video"}),
        ("kiosk", {"shortcuts": [{"label": "Chat"}]}),
        ("kiosk", {"settings_locked": "yes"}),
        ("message", 5),
        ("reminder", "true"),
        ("offline_lock_at", "tomorrow"),
        ("offline_lock_at", "2026-02-01T08:00:00"),  # no time zone
    ],
)
def test_unreadable_values_are_ignored_not_fatal(key: str, value: Any) -> None:
    policy = Policy.from_dict({"mode": "kiosk", key: value, "camera_enabled": False})
    assert policy.mode == "kiosk"
    assert policy.ignored == tuple(sorted({key, "camera_enabled"}))
    # Everything else is as if the key had not been sent.
    assert policy == Policy(mode="kiosk", keys=policy.keys, ignored=policy.ignored)


def test_offline_lock_at_in_any_rfc3339_spelling() -> None:
    expected = datetime(2026, 2, 1, 8, tzinfo=UTC)
    for text in ("2026-02-01t08:00:00z", "2026-02-01T10:00:00.000+02:00"):
        assert Policy.from_dict({"mode": "kiosk", "offline_lock_at": text}).offline_lock_at == (
            expected
        )
    moment = Policy.from_dict(
        {"mode": "kiosk", "offline_lock_at": "2026-02-01T10:00:00.123456789+02:00"}
    ).offline_lock_at
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)
    assert moment.astimezone(UTC) - expected < timedelta(seconds=1)


def test_a_policy_checks_itself() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Policy(mode="frozen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time zone"):
        Policy(mode="kiosk", offline_lock_at=datetime(2026, 2, 1))
