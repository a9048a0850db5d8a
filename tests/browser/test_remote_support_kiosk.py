"""Remote support on a real kiosk tablet: the counsellor's Chromium sees the kiosk's real screen.

The tablet is the kiosk platform on Xvfb (a client account, Chromium in kiosk mode, the
overlay); its agent runs against a real Mosquitto. The consent question is drawn by the kiosk
and answered by tapping it on the kiosk's display; the counsellor's <video> must show a marker
the test put on the kiosk's screen; the client's typed chat answer reaches the counsellor's
page; in control mode a click on the video taps a tile of the launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from support.kiosk import HEIGHT, WIDTH, Kiosk, kiosk_tablet, wait_for
from support.mosquitto import Mosquitto
from support.stack import online, running_stack, wait_until
from test_remote_support import DECODED, last_session, lend_one
from test_sign_in import sign_in

from agent.platform.kiosk import overlay
from agent.platform.kiosk.launcher import CATEGORY_MARKS
from server.adapters import orm
from server.domain.policy import KioskProfile
from server.entrypoints.app import create_app
from server.entrypoints.demo import SHORTCUTS
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = [pytest.mark.browser, pytest.mark.kiosk]

MARKER = "#ff00ff"
MARKER_BOX = (80, 420, 320, 660)  # left, top, right, bottom on the kiosk's screen
CANVAS = "#f4f6f8"

# The colour of the video at a point given as fractions of its width and height.
VIDEO_RGB = """([fx, fy]) => {
  const v = document.getElementById('support-video');
  if (!v || v.videoWidth === 0 || v.readyState < 2) return null;
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth;
  canvas.height = v.videoHeight;
  const g = canvas.getContext('2d');
  g.drawImage(v, 0, 0);
  const x = Math.floor(fx * v.videoWidth), y = Math.floor(fy * v.videoHeight);
  const d = g.getImageData(x, y, 1, 1).data;
  return [d[0], d[1], d[2]];
}"""


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with kiosk_tablet(tmp_path_factory.mktemp("kiosk")) as tablet:
        yield tablet


def put_marker(kiosk: Kiosk) -> subprocess.Popen[bytes]:
    """A magenta square on the kiosk's screen (an X window of the test's own)."""
    left, top, right, bottom = MARKER_BOX
    script = (
        "import tkinter; r = tkinter.Tk(); r.overrideredirect(True); "
        f"r.geometry('{right - left}x{bottom - top}+{left}+{top}'); "
        f"r.configure(bg='{MARKER}'); r.mainloop()"
    )
    env = {**kiosk.platform.session.x_env(), "PATH": os.environ["PATH"]}
    return subprocess.Popen([sys.executable, "-c", script], env=env)


def answer_consent_on_the_kiosk(kiosk: Kiosk) -> None:
    """Tap "Allow" on the question the kiosk draws (control mode may ask twice)."""
    screen = kiosk.screen
    wait_for(lambda: screen.find(overlay.DENY_BG) is not None, 20, "the consent question")
    screen.save("support-consent")
    while screen.find(overlay.DENY_BG) is not None:
        screen.tap_colour(overlay.BUTTON_BG)
        time.sleep(1.0)


def test_the_counsellor_sees_the_kiosk_screen_and_helps_with_consent(
    page: Page, server: str, pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path, kiosk: Kiosk
) -> None:
    with pg_fleet.services.session_factory() as session:
        admin = principal_of(session.query(orm.User).filter_by(role="admin").one())
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        assert counsellor is not None
        unit = counsellor.units[0].code
    loans.set_kiosk_profile(
        pg_fleet.services.uow(),
        admin,
        unit,
        KioskProfile((), tuple(SHORTCUTS), True),
        pg_fleet.services.clock(),
    )
    loan_id, device = lend_one(pg_fleet)
    client = create_app(pg_fleet.services).test_client()
    marker = None
    with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
        try:
            stack.start_agent(device, platform=kiosk.platform)
            wait_until(lambda: online(pg_fleet, device), 30, f"{device} online")
            group = CATEGORY_MARKS["group"][1]
            wait_for(lambda: kiosk.screen.find(group), 40, "the launcher with its tiles")
            marker = put_marker(kiosk)
            wait_for(lambda: kiosk.screen.find(MARKER), 10, "the marker on the kiosk")

            login = pg_fleet.logins["counsellor"]
            sign_in(page, server, login.username, login.password)
            page.goto(f"{server}/loans/{loan_id}")
            page.get_by_label("Why (the client sees this)").fill("Help with the video call app")
            page.locator('input[name="mode"][value="control"]').check()
            page.get_by_role("button", name="Start remote support").click()
            answer_consent_on_the_kiosk(kiosk)

            page.wait_for_function(DECODED, timeout=30_000)
            left, top, right, bottom = MARKER_BOX
            centre = [(left + right) / 2 / WIDTH, (top + bottom) / 2 / HEIGHT]

            def marker_in_video() -> bool:
                rgb = page.evaluate(VIDEO_RGB, centre)
                return rgb is not None and rgb[0] > 190 and rgb[1] < 90 and rgb[2] > 190

            wait_for(marker_in_video, 15, "the kiosk's marker in the counsellor's video")
            canvas_rgb = page.evaluate(VIDEO_RGB, [0.6, 0.05])
            assert canvas_rgb is not None and min(canvas_rgb) > 200  # the launcher, light
            status = page.locator("#support-status")
            expect(status).to_contain_text("Connected", timeout=10_000)
            strip = (0, HEIGHT - 90, WIDTH, HEIGHT)
            wait_for(
                lambda: kiosk.screen.share(overlay.SHARE_BG, strip) > 0.5,
                10,
                "the kiosk's own 'your screen is shared' indicator",
            )
            kiosk.screen.save("support-sharing")

            # Chat: the counsellor writes, the client answers on the kiosk.
            page.get_by_role("textbox", name="Message").fill("Näetkö Ryhmät-painikkeen?")
            page.get_by_role("button", name="Send", exact=True).click()

            def answer_box() -> tuple[int, int, int, int] | None:
                bar = kiosk.screen.find(overlay.SHARE_BG, (0, HEIGHT // 2, WIDTH, HEIGHT))
                if bar is None:
                    return None
                return kiosk.screen.find(overlay.ENTRY_BG, (0, bar[1], WIDTH, HEIGHT))

            box = wait_for(answer_box, 15, "the chat line on the kiosk")
            assert isinstance(box, tuple)
            kiosk.screen.tap((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
            time.sleep(0.5)
            kiosk.screen.xdotool("type", "--delay", "30", "Kyllä näkyy")  # ä: the Finnish layout
            kiosk.screen.keys("Return")
            expect(page.get_by_role("log")).to_contain_text("Kyllä näkyy", timeout=10_000)

            # Control mode: a click on the video taps the group tile on the kiosk.
            marker.terminate()
            marker.wait(5)
            marker = None
            # The marker lay over the group tile: the browser repaints it once the marker is gone.
            tile = wait_for(lambda: kiosk.screen.find(group), 10, "the group tile uncovered")
            assert isinstance(tile, tuple)
            page.locator("#tap-toggle").check()
            video = page.locator("#support-video").bounding_box()
            assert video is not None
            fx, fy = (tile[0] + tile[2]) / 2 / WIDTH, (tile[1] + tile[3]) / 2 / HEIGHT
            page.mouse.click(video["x"] + fx * video["width"], video["y"] + fy * video["height"])
            wait_for(
                lambda: kiosk.screen.find(group) is None,
                15,
                "the tile tapped from the counsellor's page (the launcher left)",
            )

            page.get_by_role("button", name="Hang up").click()
            expect(status).to_contain_text("ended", timeout=10_000)
            wait_for(
                lambda: kiosk.screen.share(overlay.SHARE_BG, strip) < 0.1,
                10,
                "the indicator gone from the kiosk",
            )
            wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "session ended")
            row = last_session(pg_fleet)
            assert row.end_reason == "hangup_counsellor" and row.mode == "control"
        finally:
            if marker is not None:
                marker.terminate()
                marker.wait(5)
