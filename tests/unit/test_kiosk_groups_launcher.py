"""The kiosk launcher's remote groups without a display (docs/protocol.md §9.7): the info line
in fi, sv and en, the Join tile through /join/<id> only while it is shown, the browser policy
allowing the join link's origin only in the window; the real screen is tests/kiosk/."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from support.ports import free_port

from agent.groups import GroupsShown, NextGroup
from agent.platform.kiosk.browser import managed_policy
from agent.platform.kiosk.launcher import Launcher, LauncherView, render
from agent.platform.kiosk.texts import clock_time
from agent.policy import GroupSlot, KioskProfile

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
GROUP = GroupSlot("g7-202601051200", START, START + timedelta(hours=1), "https://meet.example/x")


@pytest.mark.parametrize(
    ("language", "today", "tomorrow"),
    [
        ("fi", "Ryhmä klo 14.00", "Ryhmä huomenna klo 09.30"),
        ("sv", "Grupp kl. 14.00", "Grupp i morgon kl. 09.30"),
        ("en", "Group at 14:00", "Group tomorrow at 09:30"),
    ],
)
def test_the_info_line_says_when_in_the_devices_language(
    language: str, today: str, tomorrow: str
) -> None:
    shown = GroupsShown(NextGroup(GROUP.id, 14, 0, tomorrow=False))
    page = render(LauncherView(KioskProfile(), language, 1, groups=shown))
    assert today in page and "/join/" not in page
    shown = GroupsShown(NextGroup(GROUP.id, 9, 30, tomorrow=True), (GROUP,))
    page = render(LauncherView(KioskProfile(), language, 1, groups=shown))
    assert tomorrow in page and f'href="/join/{GROUP.id}"' in page
    assert clock_time(9, 5, language) in ("09.05", "09:05")


class Recorder:
    def __init__(self) -> None:
        self.joined: list[str] = []
        self.home = 0


@pytest.fixture
def served() -> Iterator[tuple[Launcher, Recorder]]:
    seen = Recorder()
    launcher = Launcher(
        free_port(),
        lambda _: None,
        on_join=lambda slot: seen.joined.append(slot.id),
        on_home=lambda: setattr(seen, "home", seen.home + 1),
    )
    launcher.start()
    yield launcher, seen
    launcher.close()


def get(launcher: Launcher, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", int(launcher.origin.rsplit(":", 1)[1]))
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_join_leads_to_the_link_only_while_the_tile_is_shown(
    served: tuple[Launcher, Recorder],
) -> None:
    launcher, seen = served
    launcher.show(KioskProfile(), "fi", "kiosk")
    closed = get(launcher, f"/join/{GROUP.id}")
    assert closed.status == 403 and closed.getheader("Location") is None
    assert seen.joined == []

    launcher.show_groups(GroupsShown(None, (GROUP,)))
    opened = get(launcher, f"/join/{GROUP.id}")
    assert opened.status == 303 and opened.getheader("Location") == GROUP.join_url
    assert seen.joined == [GROUP.id]
    assert get(launcher, "/join/g8-202601051200").status == 403  # not this tablet's group

    launcher.show_groups(GroupsShown())
    assert get(launcher, f"/join/{GROUP.id}").status == 403
    assert seen.joined == [GROUP.id]


def test_the_page_and_its_poll_say_the_launcher_is_shown(
    served: tuple[Launcher, Recorder],
) -> None:
    launcher, seen = served
    get(launcher, "/")
    get(launcher, "/version")
    get(launcher, "/settings")
    assert seen.home == 2


def test_the_browser_allows_a_join_links_origin_only_when_given() -> None:
    closed = managed_policy("http://127.0.0.1:47100", KioskProfile())
    opened = managed_policy("http://127.0.0.1:47100", KioskProfile(), [GROUP.join_url])
    assert "https://meet.example" not in closed["URLAllowlist"]
    assert opened["URLAllowlist"] == ["http://127.0.0.1:47100", "https://meet.example"]
