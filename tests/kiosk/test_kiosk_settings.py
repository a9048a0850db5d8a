"""The kiosk's settings on the real kiosk: Xvfb, real Chromium on the launcher, taps by xdotool.

Volume is checked on the kiosk's own sound server (PulseAudio run as the client; with no sound
card here, its stand-in sink), read back with pactl, as the ring test does. Brightness goes
through the kernel's backlight interface
(/sys/class/backlight/<device>/{brightness,max_brightness}); no real backlight exists on the
test machine (a virtual screen has no panel), so the test lays out a directory like the
kernel's and the agent writes it as it would write the kernel's. Wi-Fi cannot be joined here
(no Wi-Fi hardware, no NetworkManager running): the page's Wi-Fi section is checked from the
screen, and the real nmcli is checked offline (the keyfile it would hand NetworkManager).

Screenshots land in var/test-artifacts/kiosk/ (settings in fi, sv and en).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.kiosk import Kiosk, pactl, wait_for

from agent.platform.kiosk import account
from agent.platform.kiosk.launcher import METER_FILL, METER_WIDTH, SETTING_MARKS, SETTINGS_MARK
from agent.platform.kiosk.settings import Network, add_command, parse_mute, parse_volume
from agent.policy import Policy

pytestmark = pytest.mark.kiosk

CANVAS = "#f4f6f8"
SHORTCUTS = [{"label": "Etävastaanotto", "url": "https://meet.example/", "category": "appointment"}]


def colour(name: str) -> str:
    return SETTING_MARKS[name][1]


def policy(settings_locked: bool, mode: str = "kiosk") -> Policy:
    profile = {"shortcuts": SHORTCUTS, "settings_locked": settings_locked}
    return Policy.from_dict({"mode": mode, "kiosk": profile})


def volume(address: str) -> tuple[int | None, bool | None]:
    return (
        parse_volume(pactl(address, "get-sink-volume", "@DEFAULT_SINK@")),
        parse_mute(pactl(address, "get-sink-mute", "@DEFAULT_SINK@")),
    )


def meter(kiosk: Kiosk, fill: str) -> int | None:
    """The level a meter shows on the screen, in percent of its width (None: not shown)."""
    box = kiosk.screen.find(fill, least=10)
    return None if box is None else round((box[2] - box[0] + 2) * 100 / METER_WIDTH)


def settings_page(kiosk: Kiosk) -> str:
    with urllib.request.urlopen(kiosk.platform.launcher.url + "settings", timeout=10) as page:
        return str(page.read().decode())


def until(check: Callable[[], object], what: str, timeout: float = 20) -> object:
    return wait_for(check, timeout, what)


def open_settings(kiosk: Kiosk, shows: str) -> None:
    """Tap the launcher's Settings tile until the settings page shows `shows` (a colour): a tap
    while the launcher is still being painted after a restart may reach nothing."""
    screen = kiosk.screen
    until(lambda: screen.find(SETTINGS_MARK[1]) and screen.share(CANVAS) > 0.5, "the tile", 40)
    for _ in range(3):
        if screen.find(SETTINGS_MARK[1]) is not None:
            screen.tap_colour(SETTINGS_MARK[1])
        try:
            until(lambda: screen.find(shows), "the settings page", 10)
        except AssertionError:
            continue
        return
    screen.save("settings-not-opened")
    raise AssertionError("the Settings tile did not open the settings page")


@pytest.fixture
def settings_kiosk(kiosk: Kiosk, tmp_path: Path) -> Iterator[tuple[Kiosk, str, Path]]:
    """The kiosk with a real sound server and a backlight directory laid out as the kernel's."""
    device = tmp_path / "backlight" / "intel_backlight"
    device.mkdir(parents=True)
    (device / "max_brightness").write_text("1200\n")
    (device / "brightness").write_text("600\n")
    (device / "type").write_text("raw\n")
    platform = kiosk.platform
    before = platform.config
    # The kiosk's own sound server (PulseAudio as the client; here its stand-in sink), which
    # runs with the managed session.
    platform.apply_policy(policy(settings_locked=True))
    address = platform.session.sound_env()["PULSE_SERVER"]
    wait_for(lambda: pactl(address, "info").startswith("Server String"), 30, "the sound server")
    pactl(address, "set-sink-mute", "@DEFAULT_SINK@", "0")
    pactl(address, "set-sink-volume", "@DEFAULT_SINK@", "30%")
    platform.config = replace(before, backlight_dir=str(tmp_path / "backlight"))
    try:
        yield kiosk, address, device / "brightness"
    finally:
        platform.config = replace(platform.config, backlight_dir=before.backlight_dir)


def test_volume_and_brightness_from_the_settings_tile(
    settings_kiosk: tuple[Kiosk, str, Path],
) -> None:
    kiosk, address, brightness = settings_kiosk
    platform, screen = kiosk.platform, kiosk.screen
    platform.apply_policy(policy(settings_locked=True))
    platform.session.restart_browser()
    open_settings(kiosk, colour("volume-up"))

    # What the page shows is the real level: 30 % on the sound server, 600/1200 on the panel.
    assert meter(kiosk, METER_FILL["volume"]) in (29, 30, 31)
    assert meter(kiosk, METER_FILL["brightness"]) in (49, 50, 51)
    # A locked profile has no Wi-Fi: not on the screen, not in the page.
    assert screen.find(colour("wifi")) is None
    assert 'id="wifi-title"' not in settings_page(kiosk)
    screen.save("fi-settings")

    screen.tap_colour(colour("volume-up"))
    until(lambda: volume(address) == (40, False), "the sink at 40 %")
    until(lambda: meter(kiosk, METER_FILL["volume"]) in (39, 40, 41), "the meter at 40 %")
    screen.tap_colour(colour("volume-down"))
    until(lambda: volume(address) == (30, False), "the sink back at 30 %")
    until(lambda: meter(kiosk, METER_FILL["volume"]) in (29, 30, 31), "the meter at 30 %")
    screen.tap_colour(colour("volume-down"))
    until(lambda: volume(address) == (20, False), "the sink at 20 %")
    until(lambda: meter(kiosk, METER_FILL["volume"]) in (19, 20, 21), "the meter at 20 %")
    screen.tap_colour(colour("volume-mute"))
    until(lambda: volume(address) == (20, True), "the sink muted")
    until(lambda: meter(kiosk, METER_FILL["muted"]), "the meter greyed out")
    assert screen.find(METER_FILL["volume"]) is None

    # By keyboard alone: Tab to a button, Enter (Home, Quieter, Louder, Unmute, ...).
    until(lambda: screen.find(colour("volume-mute")), "the page again after muting")
    screen.keys("Tab", "Tab", "Tab", "Tab", "Return")
    until(lambda: volume(address) == (20, False), "the sink unmuted from the keyboard")

    screen.tap_colour(colour("brightness-up"))
    until(lambda: brightness.read_text().strip() == "720", "the backlight at 60 %")
    until(lambda: meter(kiosk, METER_FILL["brightness"]) in (59, 60, 61), "the meter at 60 %")
    screen.tap_colour(colour("brightness-down"))
    until(lambda: brightness.read_text().strip() == "600", "the backlight at 50 %")
    until(lambda: meter(kiosk, METER_FILL["brightness"]) in (49, 50, 51), "the meter at 50 %")

    for language in ("sv", "en"):
        platform.set_language(language)
        time.sleep(3)  # the page reloads itself within 2 s
        until(lambda: screen.find(colour("volume-up")), f"the settings page in {language}")
        screen.save(f"{language}-settings")
    platform.set_language("fi")


def test_the_brightness_control_says_so_without_a_backlight(
    settings_kiosk: tuple[Kiosk, str, Path],
) -> None:
    kiosk, _, brightness = settings_kiosk
    shutil.rmtree(brightness.parent)
    kiosk.platform.apply_policy(policy(settings_locked=True))
    page = settings_page(kiosk)
    assert "Tämän näytön kirkkautta ei voi säätää täältä." in page
    assert 'value="brightness-up"' not in page


def test_wifi_is_offered_only_when_the_profile_allows_it(
    settings_kiosk: tuple[Kiosk, str, Path],
) -> None:
    kiosk = settings_kiosk[0]
    platform, screen = kiosk.platform, kiosk.screen
    platform.apply_policy(policy(settings_locked=False))
    platform.session.restart_browser()
    open_settings(kiosk, colour("wifi"))  # the Wi-Fi section, on the screen
    page = settings_page(kiosk)
    # No NetworkManager runs here: the section says so plainly.
    assert "verkkopalvelu (NetworkManager) ei ole käynnissä" in page
    screen.save("fi-settings-wifi")
    # Restricted (overdue): volume and brightness only, whatever the profile says.
    platform.apply_policy(policy(settings_locked=False, mode="restricted"))
    until(lambda: screen.find(colour("wifi")) is None, "the Wi-Fi section gone")
    assert screen.find(colour("volume-up")) and screen.find(colour("brightness-up"))


def test_nmcli_saves_the_clients_network_so_that_a_wipe_removes_it(tmp_path: Path) -> None:
    """The real nmcli, offline: it prints the keyfile it would hand NetworkManager for the
    kiosk's own command line, and the wipe's reader recognises it as the client's."""
    nmcli = shutil.which("nmcli")
    assert nmcli is not None, "nmcli is missing: run `make services` (network-manager)"
    networks = [
        (Network("Kahvila: vieras", "", 60, False), ""),
        (Network("$(reboot) 'koti'", "WPA1 WPA2", 60, False), "pass word; rm -rf /"),
        (Network("Uusi", "WPA3", 60, False), "salasana123"),
    ]
    for number, (network, password) in enumerate(networks):
        command = add_command(network, password, "lainaamo-kt")
        assert command[0] == "nmcli"
        done = subprocess.run(
            [nmcli, "--offline", *command[1:]], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert f"ssid={network.ssid}\n" in done.stdout
        if password:
            assert f"psk={password}\n" in done.stdout
        (tmp_path / f"{number}.nmconnection").write_text(done.stdout)
    (tmp_path / "region.nmconnection").write_text(
        "[connection]\nid=Lainaamo\ntype=wifi\n[wifi]\nssid=Lainaamo\n"
    )
    found = account.added_networks("lainaamo-kt", tmp_path)
    assert sorted(p.name for p in found) == [f"{n}.nmconnection" for n in range(len(networks))]
