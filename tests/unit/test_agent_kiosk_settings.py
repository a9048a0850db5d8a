"""The kiosk's settings (agent/platform/kiosk/settings.py) and the launcher's settings page.

Unit tests: commands are recorded by a stand-in runner (the real volume is tested on a real
PulseAudio in tests/kiosk/test_kiosk_settings.py; Wi-Fi only to the nmcli boundary, there is
no Wi-Fi here), the backlight is a temporary directory laid out like /sys/class/backlight, and
the cross-site checks run against the real launcher HTTP server on loopback.
"""

from __future__ import annotations

import http.client
import logging
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from support.ports import free_port

from agent.platform.kiosk.launcher import Launcher, LauncherView, render
from agent.platform.kiosk.settings import (
    KioskSettings,
    Network,
    Ran,
    SettingError,
    WiFi,
    add_command,
    allowed_sections,
    backlight_device,
    check_password,
    check_ssid,
    next_brightness,
    next_volume,
    parse_mute,
    parse_networks,
    parse_volume,
    split_terse,
)
from agent.policy import KioskProfile, Shortcut

# What pactl 16 prints (Debian 12), a stereo sink with the channels apart.
PACTL_VOLUME = (
    "Volume: front-left: 19660 /  30% / -31.37 dB,   front-right: 29491 /  45% / -20.81 dB\n"
    "        balance 0.33\n"
)

# nmcli -t -e yes -f IN-USE,SSID,SECURITY,SIGNAL device wifi list
NMCLI_LIST = "\n".join(
    [
        "*:Koti:WPA2:70",
        ":Koti:WPA2:82",  # the same network through a second access point
        r":Kahvila\: vieras:  :55",  # an open network whose name has a colon
        r":Back\\slash:WPA1 WPA2:40",
        ":Uusi:WPA3:30",
        ":Yritys:WPA2 802.1X:90",
        "::WPA2:99",  # a hidden network: no name to show
        "garbage line",
    ]
)


# --- which settings each mode allows


def test_each_mode_allows_its_settings() -> None:
    assert allowed_sections("kiosk", settings_locked=False) == {"volume", "brightness", "wifi"}
    assert allowed_sections("kiosk", settings_locked=True) == {"volume", "brightness"}
    assert allowed_sections("restricted", settings_locked=False) == {"volume", "brightness"}
    assert allowed_sections("locked", settings_locked=False) == {"volume"}
    assert allowed_sections("lost", settings_locked=False) == {"volume"}
    assert allowed_sections("unmanaged", settings_locked=False) == frozenset()


# --- volume


def test_pactl_output_is_read() -> None:
    assert parse_volume(PACTL_VOLUME) == 38  # the channels' mean (30 and 45)
    assert parse_volume("Volume: mono: 65536 / 100% / 0.00 dB\n") == 100
    assert parse_volume("Connection failure: Connection refused\n") is None
    assert parse_mute("Mute: yes\n") is True and parse_mute("Mute: no\n") is False
    assert parse_mute("") is None


@pytest.mark.parametrize(
    ("now", "up", "after"),
    [(30, True, 40), (35, True, 40), (95, True, 100), (100, True, 100), (150, True, 100),
     (30, False, 20), (35, False, 30), (5, False, 0), (0, False, 0)],
)  # fmt: skip
def test_volume_steps_onto_the_tens(now: int, up: bool, after: int) -> None:
    assert next_volume(now, up) == after


class Recorder:
    """Runs nothing: records each command and answers from a script of (prefix, Ran)."""

    def __init__(self, answers: Sequence[tuple[Sequence[str], Ran]] = ()) -> None:
        self.commands: list[list[str]] = []
        self.answers = list(answers)

    def __call__(self, command: Sequence[str], timeout: float) -> Ran:
        self.commands.append(list(command))
        for prefix, ran in self.answers:
            if list(command[: len(prefix)]) == list(prefix):
                return ran
        return Ran(0, "", "")


# --- brightness


def backlight(root: Path, name: str, raw: int, maximum: int, kind: str | None = None) -> Path:
    device = root / name
    device.mkdir(parents=True)
    (device / "brightness").write_text(f"{raw}\n")
    (device / "max_brightness").write_text(f"{maximum}\n")
    (device / "actual_brightness").write_text(f"{raw}\n")
    if kind is not None:
        (device / "type").write_text(f"{kind}\n")
    return device


def test_the_firmware_backlight_is_preferred(tmp_path: Path) -> None:
    assert backlight_device(tmp_path / "absent") is None
    assert backlight_device(tmp_path) is None
    backlight(tmp_path, "intel_backlight", 100, 1000, "raw")
    assert backlight_device(tmp_path) == tmp_path / "intel_backlight"
    backlight(tmp_path, "acpi_video0", 5, 10, "firmware")
    assert backlight_device(tmp_path) == tmp_path / "acpi_video0"


@pytest.mark.parametrize(
    ("raw", "maximum", "up", "after"),
    [
        (500, 1000, True, 600),
        (500, 1000, False, 400),
        (550, 1000, True, 600),
        (950, 1000, True, 1000),
        (1000, 1000, True, 1000),
        (100, 1000, False, 100),  # never below 10 %: the screen stays readable
        (50, 1000, False, 50),  # below the floor already: dimming does not brighten it
        (3, 7, True, 4),  # few levels: at least one step
        (3, 7, False, 2),
        (1, 7, False, 1),
        (0, 255, True, 26),
    ],
)
def test_brightness_steps(raw: int, maximum: int, up: bool, after: int) -> None:
    assert next_brightness(raw, maximum, up) == after


def test_the_backlight_is_set_through_its_files(tmp_path: Path) -> None:
    settings = KioskSettings(lambda: {}, lambda: str(tmp_path), lambda: "client", Recorder())
    assert settings.backlight.level() is None
    with pytest.raises(SettingError) as missing:
        settings.backlight.change("up")
    assert missing.value.key == "no_backlight"
    device = backlight(tmp_path, "intel_backlight", 4800, 9600)
    assert settings.backlight.level() == 50
    assert settings.backlight.change("up") == 60
    assert (device / "brightness").read_text().strip() == "5760"
    assert settings.backlight.change("down") == 50
    with pytest.raises(SettingError):
        settings.backlight.change("sideways")
    (device / "brightness").write_text("99999\n")  # not a value this device takes
    assert settings.backlight.level() is None


# --- Wi-Fi


def test_nmcli_terse_output_is_read() -> None:
    assert split_terse(r"a\:b:c\\d:") == ["a:b", "c\\d", ""]
    networks = parse_networks(NMCLI_LIST)
    assert [n.ssid for n in networks] == [
        "Koti",  # in use: first
        "Yritys",
        "Kahvila: vieras",
        "Back\\slash",
        "Uusi",
    ]
    koti = networks[0]
    assert koti.in_use and koti.signal == 82 and koti.key_mgmt == "wpa-psk"
    assert networks[2].key_mgmt is None and not networks[2].secured
    assert networks[4].key_mgmt == "sae"
    with pytest.raises(SettingError) as enterprise:
        _ = networks[1].key_mgmt
    assert enterprise.value.key == "wifi_unsupported"


@pytest.mark.parametrize(
    ("ssid", "ok"),
    [("Koti", True), ("Kahvila: vieras", True), ("ä" * 16, True), ("ä" * 17, False),
     ("", False), ("a\nb", False), ("a\x00b", False), ("x" * 33, False)],
)  # fmt: skip
def test_network_names_are_checked(ssid: str, ok: bool) -> None:
    assert (check_ssid(ssid) is None) is ok


@pytest.mark.parametrize(
    ("password", "key_mgmt", "why"),
    [
        ("salasana", "wpa-psk", None),
        ("x" * 63, "wpa-psk", None),
        ("a1" * 32, "wpa-psk", None),  # 64 hex digits: a raw key
        ("x" * 64, "wpa-psk", "bad_password"),
        ("lyhyt", "wpa-psk", "bad_password"),
        ("sälasana", "wpa-psk", "bad_password"),  # not ASCII
        ("sala\nsana", "sae", "bad_password"),
        ("", None, None),
        ("salasana", None, "password_not_needed"),
    ],
)
def test_passwords_are_checked(password: str, key_mgmt: str | None, why: str | None) -> None:
    assert check_password(password, key_mgmt) == why


def test_the_clients_network_is_saved_as_theirs_in_one_argument_each() -> None:
    tricky = Network("$(reboot); `x` 'a\" b", "WPA2", 50, False)
    command = add_command(tricky, "pass word;rm -rf /", "lainaamo-client")
    assert command[:3] == ["nmcli", "connection", "add"]
    assert command[command.index("ssid") + 1] == tricky.ssid
    assert command[command.index("con-name") + 1] == tricky.ssid
    assert command[command.index("connection.permissions") + 1] == "user:lainaamo-client"
    assert command[command.index("wifi-sec.key-mgmt") + 1] == "wpa-psk"
    assert command[command.index("wifi-sec.psk") + 1] == "pass word;rm -rf /"
    open_command = add_command(Network("Kahvila", "", 50, False), "", "lainaamo-client")
    assert "wifi-sec.psk" not in open_command and "wifi-sec.key-mgmt" not in open_command


RUNNING = (["nmcli", "-t", "-f", "RUNNING", "general"], Ran(0, "running\n", ""))
LISTED = (["nmcli", "-t", "-e", "yes"], Ran(0, NMCLI_LIST, ""))
UUID = "5f0c3b9e-6a55-4c51-9a7b-0b7c4c1f2a11"
ADDED = (
    ["nmcli", "connection", "add"],
    Ran(0, f"Connection 'Koti' ({UUID}) successfully added.\n", ""),
)


def wifi(recorder: Recorder) -> WiFi:
    return WiFi(recorder, lambda: "lainaamo-client", nmcli=lambda: "nmcli")


def test_joining_a_network(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder([RUNNING, LISTED, ADDED])
    networks = wifi(recorder)
    networks.scan()
    networks.connect("Koti", "salasana123")
    added, up = recorder.commands[-2:]
    assert added[:3] == ["nmcli", "connection", "add"] and "user:lainaamo-client" in added
    assert up[-3:] == ["up", "uuid", UUID]
    assert "salasana123" not in caplog.text


def test_a_network_that_will_not_join_is_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    said = "Error: Connection activation failed: Secrets were required, but not provided.\n"
    failed = (["nmcli", "--wait"], Ran(4, "", said))
    recorder = Recorder([RUNNING, LISTED, ADDED, failed])
    networks = wifi(recorder)
    networks.scan()
    with pytest.raises(SettingError) as refused:
        networks.connect("Koti", "vaarasalasana")
    assert refused.value.key == "connect_failed"
    assert recorder.commands[-1] == ["nmcli", "connection", "delete", "uuid", UUID]
    assert "vaarasalasana" not in caplog.text


@pytest.mark.parametrize(
    ("ssid", "password", "why"),
    [
        ("Naapuri", "salasana123", "bad_network"),  # not in the list shown
        ("Koti\n", "salasana123", "bad_network"),
        ("Koti", "lyhyt", "bad_password"),
        ("Kahvila: vieras", "salasana123", "password_not_needed"),
        ("Yritys", "salasana123", "wifi_unsupported"),
    ],
)
def test_bad_wifi_input_runs_nothing(ssid: str, password: str, why: str) -> None:
    recorder = Recorder([RUNNING, LISTED])
    networks = wifi(recorder)
    networks.scan()
    ran = len(recorder.commands)
    with pytest.raises(SettingError) as refused:
        networks.connect(ssid, password)
    assert refused.value.key == why
    assert len(recorder.commands) == ran


def test_without_network_manager_wifi_says_so() -> None:
    gone = WiFi(Recorder(), lambda: "c", nmcli=lambda: None)
    assert not gone.available()
    # nmcli is there but NetworkManager is not (what nmcli 1.42 answers without its daemon).
    down = Recorder([(["nmcli"], Ran(1, "", "Error: Could not create NMClient object.\n"))])
    for networks in (gone, wifi(down)):
        with pytest.raises(SettingError) as refused:
            networks.scan()
        assert refused.value.key == "no_network_manager"


# --- the launcher's settings page, over real HTTP


class Served:
    def __init__(self, launcher: Launcher, backlight: Path, recorder: Recorder) -> None:
        self.launcher = launcher
        self.backlight = backlight
        self.recorder = recorder
        self.port = int(launcher.origin.rsplit(":", 1)[1])

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        sent = {"Host": f"127.0.0.1:{self.port}"}
        body = None
        if form is not None:
            body = form if isinstance(form, str) else urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def post(self, form: dict[str, str] | str, **headers: str) -> tuple[int, str]:
        sent = {"Origin": self.launcher.origin, "Sec-Fetch-Site": "same-origin"}
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})
        status, _, body = self.request("POST", "/settings", form, sent)
        return status, body

    def level(self) -> str:
        return (self.backlight / "brightness").read_text().strip()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    device = backlight(tmp_path / "backlight", "panel", 50, 100)
    recorder = Recorder([RUNNING, LISTED, ADDED])
    settings = KioskSettings(
        lambda: {}, lambda: str(tmp_path / "backlight"), lambda: "lainaamo-client", recorder
    )
    settings.wifi = wifi(recorder)
    launcher = Launcher(free_port(), lambda _: None, settings)
    launcher.start()
    launcher.show(KioskProfile(settings_locked=False), "en", "kiosk")
    try:
        yield Served(launcher, device, recorder)
    finally:
        launcher.close()


def token(page: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', page)
    assert match is not None, page
    return match.group(1)


def test_the_settings_page_changes_the_backlight(served: Served) -> None:
    status, headers, home = served.request("GET", "/")
    assert status == 200 and 'href="/settings"' in home
    status, headers, page = served.request("GET", "/settings")
    assert status == 200 and "Brightness 50%" in page
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    status, _ = served.post({"token": token(page), "action": "brightness-up"})
    assert status == 303 and served.level() == "60"
    _, _, page = served.request("GET", "/settings")
    assert "Brightness 60%" in page and 'style="width:60%' in page


def test_requests_from_other_pages_are_refused(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, page = served.request("GET", "/settings")
    form = {"token": token(page), "action": "brightness-up"}
    other = "http://127.0.0.1:8000"  # an allowlisted site's page, say
    assert served.post(form, Origin=other)[0] == 403
    assert served.post(form, Origin="null")[0] == 403
    assert served.post(form, Sec_Fetch_Site="cross-site")[0] == 403
    assert served.post(form, Sec_Fetch_Site="same-site")[0] == 403
    assert served.post(form, Host="rebound.example:80")[0] == 403  # DNS rebinding
    assert served.post({**form, "token": "guessed"})[0] == 403
    assert served.post({"action": "brightness-up"})[0] == 403
    status, _, _ = served.request("POST", "/settings", form)  # no Origin at all
    assert status == 403
    # A GET changes nothing, and no other name for loopback may read the page (the token).
    assert served.request("GET", "/settings?token=x&action=brightness-up")[0] == 200
    assert served.request("GET", "/settings", headers={"Host": "rebound.example"})[0] == 403
    assert served.level() == "50"
    assert token(page) not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        "action=brightness-up&action=brightness-down&token={token}",  # twice
        "action=brightness-up&token={token}&extra=1",  # unknown field
        "action=brightness-up&token={token}&" + "x" * 3000,  # too long
        "action=%FF&token={token}",  # not UTF-8
        "action",  # not a form
    ],
)
def test_malformed_forms_are_refused(served: Served, body: str) -> None:
    _, _, page = served.request("GET", "/settings")
    status, text = served.post(body.replace("{token}", token(page)))
    assert status in (400, 403) and "Traceback" not in text
    assert served.level() == "50"


def test_bad_input_gets_a_clear_message(served: Served) -> None:
    _, _, page = served.request("GET", "/settings")
    secret = token(page)
    status, text = served.post({"token": secret, "action": "self-destruct"})
    assert status == 400 and "This setting is not available." in text
    status, text = served.post({"token": secret, "action": "wifi-connect", "ssid": "Koti"})
    assert status == 400 and "The password must have 8 to 63 characters" in text
    status, text = served.post(
        {"token": secret, "action": "wifi-connect", "ssid": "Naapuri", "password": "x" * 10}
    )
    assert status == 400 and "Choose a network from the list." in text
    assert not any(c[:3] == ["nmcli", "connection", "add"] for c in served.recorder.commands)
    status, _ = served.post(
        {"token": secret, "action": "wifi-connect", "ssid": "Koti", "password": "salasana123"}
    )
    assert status == 303
    _, _, page = served.request("GET", "/settings")
    assert 'role="status">Connected to Koti.' in page


def test_each_mode_offers_and_takes_only_its_settings(served: Served) -> None:
    _, _, page = served.request("GET", "/settings")
    secret = token(page)
    assert 'id="wifi-title"' in page and "Kahvila: vieras" in page
    wifi_form = {"token": secret, "action": "wifi-connect", "ssid": "Koti", "password": "x" * 9}
    served.launcher.show(KioskProfile(settings_locked=True), "en", "kiosk")
    _, _, page = served.request("GET", "/settings")
    assert 'id="wifi-title"' not in page and 'id="brightness-title"' in page
    status, text = served.post(wifi_form)
    assert status == 400 and "This setting is not available." in text
    served.launcher.show(KioskProfile(settings_locked=False), "en", "restricted")
    _, _, page = served.request("GET", "/settings")
    assert 'id="wifi-title"' not in page and 'id="brightness-title"' in page
    served.launcher.show(KioskProfile(), "en", "locked")
    _, _, page = served.request("GET", "/settings")
    assert 'id="brightness-title"' not in page and 'id="volume-title"' in page
    assert served.post({"token": secret, "action": "brightness-up"})[0] == 400
    assert served.level() == "50"
    served.launcher.show(KioskProfile(), "en", "unmanaged")
    assert served.request("GET", "/settings")[0] == 404
    assert 'href="/settings"' not in served.request("GET", "/")[2]
    assert not any(c[:3] == ["nmcli", "connection", "add"] for c in served.recorder.commands)


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_the_settings_tile_and_page_speak_the_devices_language(
    served: Served, language: str
) -> None:
    served.launcher.show(KioskProfile(settings_locked=False), language, "kiosk")
    _, _, page = served.request("GET", "/settings")
    title = {"fi": "Asetukset", "sv": "Inställningar", "en": "Settings"}[language]
    assert f'<html lang="{language}">' in page and f"<h1>{title}</h1>" in page
    assert '<label for="wifi-password">' in page  # every control has its label
    view = LauncherView(
        KioskProfile((), (Shortcut("Chat", "https://c.example/", "chat"),)), language, 1
    )
    assert f'<span class="label">{title}</span>' in render(view, settings=True)
    assert title not in render(view, settings=False)
