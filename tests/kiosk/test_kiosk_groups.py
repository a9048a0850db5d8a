"""Remote groups on the real kiosk (docs/protocol.md §9.7): Xvfb, a real client account and
real Chromium under its managed policy. The launcher shows the next group and, in its window,
the Join tile; the tile leads to a loopback page standing in for the video service; back on
the launcher the group's time stops; once the window closes the service's origin is blocked.

The stand-in video service is plain http on loopback, like the other kiosk tests' sites: a
policy read from the wire takes only https join links (agent/policy.py), so the test gives
the platform its Policy directly; the allowlist treats http and https origins alike.
"""

from __future__ import annotations

import http.client
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.kiosk import Kiosk, Site, _serve, wait_for

from agent.platform.base import Enforcement, Launch
from agent.platform.kiosk.browser import POLICY_FILE
from agent.platform.kiosk.launcher import GROUP_NEXT_MARK, JOIN_MARK
from agent.policy import GroupSlot, KioskProfile, Policy, Shortcut

pytestmark = pytest.mark.kiosk

ROOM = "#2a9d8f"  # the stand-in video service's page
AGAIN = "#e76f51"  # its link to itself


def occurrence(start: datetime) -> str:
    return f"g7-{start.astimezone(UTC):%Y%m%d%H%M}"


def launcher_page(kiosk: Kiosk) -> str:
    port = int(kiosk.platform.launcher.origin.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/")
    body = connection.getresponse().read().decode()
    connection.close()
    return body


def join_status(kiosk: Kiosk, ident: str) -> tuple[int, str | None]:
    port = int(kiosk.platform.launcher.origin.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", f"/join/{ident}")
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.getheader("Location")


def allowlist(kiosk: Kiosk) -> list[str]:
    policy = json.loads((Path(kiosk.platform.config.policy_dir) / POLICY_FILE).read_text())
    return list(policy["URLAllowlist"])


def test_the_join_tile_opens_the_group_only_in_its_window(kiosk: Kiosk) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    video = Site("video")
    room = (
        '<title>room</title><body style="margin:0;background:#2a9d8f">'
        '<a href="/room?again" style="display:block;height:300px;background:#e76f51">again</a>'
        "</body>"
    )
    server = _serve(video, {"/room": (room, []), "/room?again": (room, [])})
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        open_start = now - timedelta(minutes=5)
        opened = GroupSlot(
            occurrence(open_start), open_start, now + timedelta(hours=1), video.url + "/room"
        )
        later_start = now + timedelta(hours=3)
        later = GroupSlot(
            occurrence(later_start), later_start, later_start + timedelta(hours=1), opened.join_url
        )
        policy = Policy(
            mode="kiosk",
            kiosk=KioskProfile(shortcuts=(Shortcut("Chat", "https://chat.example/", "chat"),)),
            usage=True,
            groups=(opened, later),
            keys=("groups", "kiosk", "mode", "usage"),
        )
        platform.follow_time(datetime.now(UTC))
        assert platform.apply_policy(policy) == Enforcement()

        def follow_and_find(colour: str) -> bool:
            platform.follow_time(datetime.now(UTC))
            return screen.find(colour) is not None

        # The tile shows once Chromium has read the policy allowing the link (a few seconds).
        wait_for(lambda: follow_and_find(JOIN_MARK[1]), 60, "the Join tile")
        assert screen.find(GROUP_NEXT_MARK[1]) is not None  # the info line
        local = opened.start.astimezone()
        page = launcher_page(kiosk)
        assert f"Ryhmä klo {local.hour:02d}.{local.minute:02d}" in page
        assert "Liity ryhmään" in page and f"/join/{later.id}" not in page
        assert join_status(kiosk, later.id) == (403, None)  # not open yet: no redirect
        screen.save("fi-group-join")

        platform.usage()  # forget earlier launches
        screen.tap_colour(JOIN_MARK[1])
        wait_for(lambda: screen.find(ROOM) is not None, 20, "the video service's page")
        assert "/room" in video.paths
        assert platform.in_group == opened.id
        assert platform.usage().launches == (Launch(group=opened.id),)

        # Back on the launcher (Chromium's back key): the group's time stops.
        time.sleep(3)  # past the grace for the old page's last poll
        screen.keys("alt+Left")
        wait_for(lambda: platform.in_group is None, 15, "the client back on the launcher")
        wait_for(lambda: follow_and_find(JOIN_MARK[1]), 15, "the launcher with the Join tile")

        screen.tap_colour(JOIN_MARK[1])
        wait_for(lambda: screen.find(ROOM) is not None, 20, "the video service again")
        assert platform.in_group == opened.id

        # The window closes (the end passes): the origin goes from the browser's policy, the
        # tile from the launcher, and the client is out of the group.
        platform.follow_time(opened.end + timedelta(seconds=1))
        assert platform.in_group is None
        assert all("127.0.0.1:" + str(video.port) not in entry for entry in allowlist(kiosk))
        assert join_status(kiosk, opened.id) == (403, None)
        asked = len(video.paths)

        def blocked() -> bool:
            if screen.find(AGAIN) is not None:
                screen.tap_colour(AGAIN)
                time.sleep(1.5)
            return screen.find(ROOM) is None

        # Chromium reads the changed policy within seconds; from then on the link is blocked.
        wait_for(blocked, 40, "the video service blocked after the window")
        seen = len(video.paths)
        assert seen <= asked + 12  # at most the taps before Chromium read the policy
        screen.save("fi-group-blocked")
        time.sleep(2)
        assert len(video.paths) == seen  # and nothing reaches it since
    finally:
        server.shutdown()
        server.server_close()
