"""The Linux kiosk tablet, really: Xvfb, a real client account, real Chromium in kiosk mode
under its managed policy, and the overlay — checked from the screen's pixels and X windows.

Screenshots of every screen, in fi, sv and en, are kept in var/test-artifacts/kiosk/.
"""

from __future__ import annotations

import asyncio
import pwd
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.clock import START, FakeClock
from support.kiosk import CLIENT, HEIGHT, WIDTH, Kiosk, pactl, wait_for
from Xlib import XK, X
from Xlib import display as xdisplay

from agent.enforcer import Applied, Enforcer
from agent.platform.kiosk import overlay
from agent.platform.kiosk.launcher import CATEGORY_MARKS
from agent.policy import Policy
from agent.state import AgentState
from lainaamo.protocol import DesiredState, format_ts

pytestmark = pytest.mark.kiosk

CANVAS = "#f4f6f8"  # the launcher's background
SHORTCUTS = [
    {"label": "Chat", "url": "https://chat.example/", "category": "chat"},
    {"label": "Etävastaanotto", "url": "https://meet.example/room", "category": "appointment"},
    {"label": "Ryhmä", "url": "https://group.example/", "category": "group"},
]


def mark(category: str) -> str:
    return CATEGORY_MARKS[category][1]


def kiosk_policy(kiosk: Kiosk, **extra: Any) -> Policy:
    shortcuts = [*SHORTCUTS, {"label": "Sivu", "url": kiosk.allowed.url + "/", "category": "other"}]
    return Policy.from_dict({"mode": "kiosk", "kiosk": {"shortcuts": shortcuts}, **extra})


def launcher_shown(kiosk: Kiosk) -> bool:
    screen = kiosk.screen
    return screen.share(CANVAS) > 0.5 and all(
        screen.find(mark(c)) is not None for c in ("chat", "appointment", "group")
    )


def browser_windows(kiosk: Kiosk) -> list[str]:
    return [name for name in kiosk.screen.window_names() if name.endswith("Chromium")]


def back_to_launcher(kiosk: Kiosk) -> None:
    kiosk.platform.apply_policy(kiosk_policy(kiosk))
    kiosk.platform.session.restart_browser()
    wait_for(lambda: launcher_shown(kiosk), 30, "the launcher")


def test_the_launcher_shows_the_units_shortcuts_in_the_devices_language(kiosk: Kiosk) -> None:
    enforcement = kiosk.platform.apply_policy(kiosk_policy(kiosk))
    assert enforcement.failed == {} and enforcement.unsupported == ()
    wait_for(lambda: launcher_shown(kiosk), 40, "the launcher's tiles on the screen")
    assert kiosk.screen.find(mark("digipath")) is None  # no such shortcut in the profile
    assert kiosk.platform.kiosk and not kiosk.platform.locked
    for language in ("fi", "sv", "en"):
        kiosk.platform.set_language(language)
        time.sleep(3)  # the page reloads itself within 2 s
        kiosk.screen.save(f"{language}-launcher")
    kiosk.platform.set_language("fi")


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_each_mode_changes_what_is_on_the_screen(kiosk: Kiosk, language: str) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    platform.set_language(language)
    try:
        message = {"fi": "Laina-aika päättyy.", "sv": "Lånetiden går ut.", "en": "The loan ends."}
        platform.apply_policy(kiosk_policy(kiosk, reminder=True, message=message[language]))
        banner = (0, 0, WIDTH, 64)
        wait_for(lambda: screen.share(overlay.BANNER_BG, banner) > 0.8, 30, "the reminder banner")
        assert launcher_shown(kiosk)
        screen.save(f"{language}-reminder")

        platform.apply_policy(
            Policy.from_dict(
                {
                    "mode": "restricted",
                    "message": message[language],
                    "kiosk": {"shortcuts": SHORTCUTS[:1]},
                }
            )
        )
        wait_for(
            lambda: screen.find(mark("appointment")) is None and screen.find(mark("chat")),
            20,
            "the reduced profile: only the chat tile",
        )
        assert screen.share(overlay.BANNER_BG, banner) > 0.8
        screen.save(f"{language}-restricted")

        platform.apply_policy(
            Policy.from_dict(
                {"mode": "locked", "message": None, "support_phone": "+358 9 123 4567"}
            )
        )
        wait_for(lambda: screen.share(overlay.LOCK_BG) > 0.8, 10, "the lock screen")
        assert platform.locked and not platform.kiosk
        screen.save(f"{language}-locked")

        platform.apply_policy(
            Policy.from_dict({"mode": "lost", "message": None, "support_phone": "+358 9 123 4567"})
        )
        wait_for(lambda: screen.share(overlay.LOST_BG) > 0.8, 10, "the lost-mode screen")
        screen.save(f"{language}-lost")

        platform.apply_policy(kiosk_policy(kiosk))
        wait_for(lambda: launcher_shown(kiosk), 20, "the launcher after lost mode")
        assert screen.share(overlay.BANNER_BG, banner) < 0.1
    finally:
        platform.set_language("fi")


def test_lock_unlock_and_a_message_the_client_dismisses(kiosk: Kiosk) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    back_to_launcher(kiosk)
    assert platform.execute("lock", {}).ok
    wait_for(lambda: screen.share(overlay.LOCK_BG) > 0.8, 10, "the lock screen")
    # The lock screen holds the keyboard: keys typed now reach nothing behind it.
    screen.keys("ctrl+w", "alt+F4", "Escape")
    assert screen.share(overlay.LOCK_BG) > 0.8
    assert platform.execute("unlock", {}).ok
    wait_for(lambda: launcher_shown(kiosk), 10, "the launcher after unlock")

    assert platform.execute("message", {"text": "Ryhmä alkaa huomenna klo 10."}).ok
    wait_for(lambda: screen.find(overlay.BUTTON_BG) is not None, 10, "the message and its button")
    screen.save("fi-message")
    time.sleep(1)
    assert screen.find(overlay.BUTTON_BG) is not None  # it stays until dismissed
    screen.tap_colour(overlay.BUTTON_BG)
    wait_for(lambda: launcher_shown(kiosk), 10, "the launcher after the message was dismissed")
    assert not platform.execute("message", {"text": " "}).ok


def test_the_client_cannot_leave_the_kiosk(kiosk: Kiosk) -> None:
    screen = kiosk.screen
    back_to_launcher(kiosk)
    for chord in (
        "ctrl+n",
        "ctrl+t",
        "ctrl+shift+n",
        "ctrl+shift+i",
        "F12",
        "ctrl+shift+j",
        "ctrl+u",
        "ctrl+o",
        "ctrl+h",
        "ctrl+j",
        "ctrl+shift+Delete",
        "alt+Tab",
        "ctrl+alt+t",
        "F11",
        "alt+F4",
        "ctrl+alt+F2",
        "ctrl+alt+BackSpace",
        "super",
    ):
        screen.keys(chord)
        names = browser_windows(kiosk)
        assert not any("DevTools" in name or "devtools" in name for name in names), chord
        # A second window (Ctrl+N) is closed by the session's watcher within a second.
        wait_for(lambda: len(browser_windows(kiosk)) <= 1, 5, f"one browser window after {chord}")
    wait_for(lambda: launcher_shown(kiosk), 20, "the launcher, after every escape key")
    # Typing an address: the kiosk has no address bar, so it goes nowhere.
    screen.keys("ctrl+l")
    screen.xdotool("type", "--delay", "20", "file:///etc/passwd\n")
    time.sleep(1)
    assert launcher_shown(kiosk)
    assert not any("passwd" in name for name in screen.window_names())

    # An allowed page's links out of the allowlist, and to a file, are blocked by the policy.
    screen.tap_colour(mark("other"))
    wait_for(lambda: screen.find("#aa0000") is not None, 20, "the allowed site")
    screen.tap_colour("#aa0000")
    time.sleep(2)
    screen.save("blocked-site")
    assert kiosk.forbidden.paths == []
    back_to_launcher(kiosk)
    screen.tap_colour(mark("other"))
    wait_for(lambda: screen.find("#00aa00") is not None, 20, "the allowed site again")
    screen.tap_colour("#00aa00")
    time.sleep(2)
    assert not any("passwd" in name for name in screen.window_names())
    assert screen.find("#00aa00") is None or kiosk.forbidden.paths == []


def test_the_kiosk_comes_back_when_the_browser_is_closed_or_crashes(kiosk: Kiosk) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    back_to_launcher(kiosk)
    starts = platform.session.browser.starts
    screen.keys("ctrl+shift+q", "ctrl+shift+q")  # Chromium's own "quit"
    process = platform.session.browser.process
    assert process is not None
    subprocess.run(["pkill", "-KILL", "-u", CLIENT], check=False)  # a crash
    wait_for(lambda: platform.session.browser.starts > starts, 15, "the browser started again")
    wait_for(lambda: launcher_shown(kiosk), 30, "the launcher again")


def test_a_tap_on_a_tile_is_counted_by_its_category(kiosk: Kiosk) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    back_to_launcher(kiosk)
    platform.usage()  # forget earlier launches
    screen.tap_colour(mark("other"))
    wait_for(lambda: kiosk.allowed.paths, 20, "the shortcut's site to be opened")
    launches = platform.usage().launches
    assert [launch.url for launch in launches] == [kiosk.allowed.url + "/"]


def test_only_the_kiosk_itself_may_connect_to_its_display(kiosk: Kiosk) -> None:
    """The X server admits holders of its cookie: the agent and overlay (root's file) and the
    client's browser (the client's copy); any other local process is refused."""
    session = kiosk.platform.session
    back_to_launcher(kiosk)
    assert session.xauth is not None
    server, own = session.xauth.server_file, session.xauth.client_file
    assert (server.stat().st_uid, server.stat().st_mode & 0o777) == (0, 0o600)
    client = pwd.getpwnam(CLIENT)
    assert (own.stat().st_uid, own.stat().st_mode & 0o777) == (client.pw_uid, 0o600)

    def geometry(*prefix: str, auth: str) -> subprocess.CompletedProcess[str]:
        path = "/usr/sbin:/usr/bin:/sbin:/bin"
        env = {"DISPLAY": session.config.display, "PATH": path, "XAUTHORITY": auth}
        return subprocess.run(
            [*prefix, "xdotool", "getdisplaygeometry"],
            env=env, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip

    assert geometry(auth=str(server)).stdout.split() == [str(WIDTH), str(HEIGHT)]
    assert geometry("runuser", "-u", CLIENT, "--", auth=str(own)).returncode == 0
    for prefix, auth in (((), "/dev/null"), (("runuser", "-u", "nobody", "--"), "/dev/null")):
        refused = geometry(*prefix, auth=auth)
        assert refused.returncode != 0 and "open display" in refused.stderr, refused
    nobody = geometry("runuser", "-u", "nobody", "--", auth=str(own))  # cannot read the copy
    assert nobody.returncode != 0


def test_the_keyboard_has_finlands_layout(kiosk: Kiosk) -> None:
    """ö, ä and å on their own keys (right of L and P), as on Finnish and Swedish keyboards."""
    back_to_launcher(kiosk)
    display = xdisplay.Display(kiosk.platform.config.display)
    try:
        keys = [display.keycode_to_keysym(code, 0) for code in (47, 48, 34)]  # AC10 AC11 AD11
    finally:
        display.close()
    assert keys == [XK.string_to_keysym(name) for name in ("odiaeresis", "adiaeresis", "aring")]


def test_screen_on_time_stops_while_the_screen_is_blanked(kiosk: Kiosk) -> None:
    """Usage counts screen-on time only while the screen shows something: blanked by the X
    server's screen saver (as after ten idle minutes; DPMS sleep on a real screen alike), the
    kiosk reports its screen off, read from the X server rather than from its own session."""
    platform = kiosk.platform
    back_to_launcher(kiosk)
    wait_for(lambda: platform.usage().screen_on, 10, "the screen on")
    display = xdisplay.Display(platform.config.display)
    try:
        display.force_screen_saver(X.ScreenSaverActive)
        display.sync()
        wait_for(lambda: not platform.usage().screen_on, 10, "the screen reported off")
        kiosk.screen.save("screen-blanked")
        display.force_screen_saver(X.ScreenSaverReset)
        display.sync()
        wait_for(lambda: platform.usage().screen_on, 10, "the screen reported on again")
    finally:
        display.close()


def test_a_wipe_removes_what_the_client_made_and_signed_into(kiosk: Kiosk) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    back_to_launcher(kiosk)
    home = Path(pwd.getpwnam(CLIENT).pw_dir)
    # As the client: a file, a browser login (a session cookie), a Wi-Fi network.
    subprocess.run(
        ["runuser", "-u", CLIENT, "--", "sh", "-c", "echo private > ~/diary.txt"], check=True
    )
    shortcuts = [{"label": "Login", "url": kiosk.allowed.url + "/login", "category": "other"}]
    platform.apply_policy(Policy.from_dict({"mode": "kiosk", "kiosk": {"shortcuts": shortcuts}}))
    wait_for(
        lambda: screen.find(mark("chat")) is None and screen.find(mark("other")),
        20,
        "the new profile: the login tile alone",
    )
    screen.tap_colour(mark("other"))
    wait_for(lambda: "/login" in kiosk.allowed.paths, 20, "the login page")
    cookies = home / ".config" / "chromium" / "Default" / "Cookies"
    wait_for(lambda: _has_cookie(cookies, "session"), 60, "the browser to store the login")
    network = kiosk.networks / "Kotiverkko.nmconnection"
    network.write_text(
        "[connection]\nid=Kotiverkko\ntype=wifi\npermissions=user:lainaamo-kt;\n"
        "[wifi]\nssid=Kotiverkko\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=salasana123\n"
    )
    shared = kiosk.networks / "Lainaamo.nmconnection"
    shared.write_text("[connection]\nid=Lainaamo\ntype=wifi\n[wifi]\nssid=Lainaamo\n")

    result = platform.execute("wipe", {})
    assert result.ok, result.detail
    assert not (home / "diary.txt").exists()
    assert not cookies.exists()
    assert not network.exists() and shared.exists()  # the region's own network stays
    assert sorted(p.name for p in home.iterdir()) == [".profile"]
    # The next loan starts from the skeleton: the site no longer knows the browser.
    platform.apply_policy(
        Policy.from_dict(
            {
                "mode": "kiosk",
                "kiosk": {
                    "shortcuts": [
                        {"label": "Who", "url": kiosk.allowed.url + "/whoami", "category": "other"}
                    ]
                },
            }
        )
    )
    wait_for(
        lambda: screen.find(mark("chat")) is None and launcher_shown_any(kiosk),
        30,
        "the launcher after the wipe, with the who-am-I tile alone",
    )
    screen.tap_colour(mark("other"))
    wait_for(lambda: "/whoami" in kiosk.allowed.paths, 20, "the who-am-I page")
    wait_for(
        lambda: any(name.startswith("cookie none") for name in screen.window_names()),
        10,
        "the site to see no cookie",
    )


def launcher_shown_any(kiosk: Kiosk) -> bool:
    return kiosk.screen.share(CANVAS) > 0.5 and kiosk.screen.find(mark("other")) is not None


def _has_cookie(path: Path, name: str) -> bool:
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
            return (
                db.execute("SELECT count(*) FROM cookies WHERE name = ?", (name,)).fetchone()[0] > 0
            )
    except sqlite3.Error:
        return False


def test_remote_support_screens_are_drawn_by_the_kiosk(kiosk: Kiosk) -> None:
    platform, screen = kiosk.platform, kiosk.screen
    back_to_launcher(kiosk)

    async def ask() -> Any:
        return await asyncio.wait_for(
            platform.ask_consent("Ohjaaja Anna", "tuki", "control", 30), 30
        )

    answers: list[Any] = []

    async def ask_and_answer() -> None:
        task = asyncio.ensure_future(ask())
        await asyncio.to_thread(
            wait_for, lambda: screen.find(overlay.DENY_BG) is not None, 10, "the consent question"
        )
        screen.save("fi-consent")
        box = screen.find(overlay.BUTTON_BG)
        assert box is not None
        screen.tap((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
        answers.append(await task)

    asyncio.run(ask_and_answer())
    assert answers[0].accepted and answers[0].control
    wait_for(lambda: launcher_shown(kiosk), 10, "the question gone")

    ended: list[bool] = []
    replies: list[str] = []
    platform.show_indicator("Ohjaaja Anna", lambda: ended.append(True))
    strip = (0, HEIGHT - 90, WIDTH, HEIGHT)
    wait_for(lambda: screen.share(overlay.SHARE_BG, strip) > 0.5, 10, "the sharing indicator")
    platform.show_chat("Näetkö ruudulla Chat-painikkeen?", replies.append)

    def answer_box() -> tuple[int, int, int, int] | None:
        bar = screen.find(overlay.SHARE_BG, (0, HEIGHT // 2, WIDTH, HEIGHT))
        return None if bar is None else screen.find(overlay.ENTRY_BG, (0, bar[1], WIDTH, HEIGHT))

    entry = wait_for(answer_box, 10, "the chat line and answer box")
    screen.save("fi-sharing-chat")
    assert isinstance(entry, tuple)
    screen.tap((entry[0] + entry[2]) // 2, (entry[1] + entry[3]) // 2)
    time.sleep(0.5)  # as a person would: the tap gives the answer box the keyboard first
    # (Letters outside Xvfb's US keymap, such as ä, are typed by xdotool through a remapped
    # keycode that Tk does not follow; a tablet's own keyboard has them in its map.)
    screen.xdotool("type", "--delay", "30", "Kylla vain")
    screen.keys("Return")
    wait_for(lambda: replies == ["Kylla vain"], 10, "the client's chat answer")

    platform.show_pointer(0.5, 0.5)

    def pointer_centred() -> bool:
        box = screen.find(overlay.POINTER, least=10)
        return box is not None and abs((box[0] + box[2]) / 2 - WIDTH / 2) < 20

    wait_for(pointer_centred, 10, "the counsellor's pointer in the middle of the screen")
    screen.save("fi-pointer")

    platform.usage()
    tile = screen.find(mark("group"))  # (the chat mark has the indicator's colour)
    assert tile is not None
    assert platform.tap((tile[0] + tile[2]) / 2 / WIDTH, (tile[1] + tile[3]) / 2 / HEIGHT)
    launches = wait_for(lambda: platform.usage().launches, 10, "the tapped tile to open")
    assert [launch.url for launch in launches] == ["https://group.example/"]  # type: ignore[attr-defined]

    end_row = (WIDTH // 2, 0, WIDTH, entry[1] - 60)  # above the chat: the end button
    screen.tap_colour(overlay.BAR_BUTTON_BG, end_row)
    wait_for(lambda: ended == [True], 10, "the end button")
    platform.hide_indicator()
    wait_for(lambda: screen.share(overlay.SHARE_BG, strip) < 0.1, 10, "the indicator gone")


def test_the_offline_self_lock_at_the_due_date_locks_the_screen(
    kiosk: Kiosk, tmp_path: Path
) -> None:
    """The agent's own enforcer (with its clock moved) on the real kiosk, the network down."""
    platform, screen = kiosk.platform, kiosk.screen
    back_to_launcher(kiosk)
    clock = FakeClock()
    enforcer = Enforcer("tab-kiosk", platform, AgentState(tmp_path), clock)
    lock_at = START + timedelta(hours=1)
    policy = {
        "mode": "kiosk",
        "kiosk": {"shortcuts": SHORTCUTS},
        "message": None,
        "support_phone": "+358 9 123 4567",
        "offline_lock_at": format_ts(lock_at),
    }
    enforcer.on_connected()
    desired = DesiredState(device_id="tab-kiosk", ts=START, boot=1, seq=1, version=7, policy=policy)
    assert enforcer.on_desired(desired) is Applied.NEW
    enforcer.on_disconnected()  # the network goes down before the due date
    assert not enforcer.check_offline_lock()
    wait_for(lambda: launcher_shown(kiosk), 20, "the launcher before the due date")
    clock.advance(2 * 3600)
    assert enforcer.check_offline_lock()
    wait_for(lambda: screen.share(overlay.LOCK_BG) > 0.8, 10, "the offline lock screen")
    assert platform.locked
    screen.save("fi-offline-lock")
    # Back online, the server's policy decides: kiosk again.
    enforcer.on_connected()
    assert enforcer.on_desired(desired) is Applied.REAPPLIED
    wait_for(lambda: launcher_shown(kiosk), 10, "the launcher after the reconnect")


def test_ring_is_heard_even_when_the_tablet_is_muted(kiosk: Kiosk) -> None:
    """The kiosk's own sound server (PulseAudio as the client; on this machine, with no sound
    card, its stand-in sink): muted and quiet before the ring, which plays through it."""
    platform = kiosk.platform
    back_to_launcher(kiosk)  # the session, its sound server with it, is up
    address = platform.session.sound_env()["PULSE_SERVER"]
    wait_for(lambda: pactl(address, "info").startswith("Server String"), 10, "the sound server")
    sink = wait_for(lambda: default_sink(address), 10, "the sound server's default sink")
    pactl(address, "set-sink-mute", sink, "1")
    pactl(address, "set-sink-volume", sink, "30%")
    assert platform.execute("ring", {"seconds": 3}).ok
    wait_for(lambda: pactl(address, "list", "sink-inputs").strip(), 10, "the ring playing")
    assert pactl(address, "get-sink-mute", sink).strip() == "Mute: no"
    assert "100%" in pactl(address, "get-sink-volume", sink)
    # It stops by itself after the time asked for.
    wait_for(lambda: not pactl(address, "list", "sink-inputs").strip(), 15, "the ring over")
    # The client's browser sounds there too: its environment names the same server.
    browser = platform.session.browser.process
    assert browser is not None
    found = subprocess.run(
        ["pgrep", "-u", CLIENT, "-f", "chromium"], capture_output=True, text=True
    )
    environ = Path(f"/proc/{found.stdout.split()[0]}/environ").read_bytes().split(b"\0")
    assert f"PULSE_SERVER={address}".encode() in environ


def default_sink(address: str) -> str:
    return pactl(address, "get-default-sink").strip()
