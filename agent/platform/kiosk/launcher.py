"""The kiosk's launcher: a small web page the agent serves on loopback to the kiosk browser.

Large tiles for the kiosk profile's shortcuts, in the device's language. A tile leads through
`/open/N`, which counts the launch (docs/protocol.md §18: only the shortcut's category is ever
kept) and sends the browser on to the shortcut. The page asks `/version` every two seconds and
reloads itself when the profile changed, so a new policy shows without restarting the browser.

Remote groups (docs/protocol.md §9.7): above the tiles, an info line for the next group today
or tomorrow ("Group at 14:00", never a title) and, while a group's window is open, a large
Join tile leading through `/join/<occurrence id>`, which tells `on_join` (the usage counts
from there) and sends the browser on to the join link. Outside the window `/join/...` answers
with a plain page saying the group is not open, never a redirect. Every request for the page
or its `/version` tells `on_home`: the client is on the launcher again (tablet.py).

A Settings tile leads to `/settings`: volume, brightness and, when the profile allows it,
Wi-Fi (`settings.py`). Pages from the profile's sites run in the same browser, so a change is
taken only as a POST from the launcher's own page: its Origin (and Sec-Fetch-Site, when sent)
must be the launcher, its Host the loopback address, and its form must carry this process's
random token. Pages may not be framed.
"""

from __future__ import annotations

import hmac
import html
import http.server
import logging
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from agent.groups import NOTHING, GroupsShown
from agent.platform.kiosk.settings import KioskSettings, Network, SettingError, allowed_sections
from agent.platform.kiosk.texts import clock_time, text
from agent.policy import GroupSlot, KioskProfile, Shortcut

log = logging.getLogger(__name__)

# A mark beside each tile's label, so that tiles differ by more than their words.
CATEGORY_MARKS = {
    "chat": ("&#9993;", "#0b5394"),  # envelope
    "appointment": ("&#9742;", "#1e6b3a"),  # telephone
    "digipath": ("&#10148;", "#6a2c91"),  # arrow
    "group": ("&#9679;&#9679;", "#8a4b00"),
    "other": ("&#9733;", "#44546a"),
}
SETTINGS_MARK = ("&#9881;", "#2f3e46")  # a gear, on the Settings tile
JOIN_MARK = ("&#9654;", "#9c1f5e")  # a play sign, on a remote group's Join tile
GROUP_NEXT_MARK = ("&#9719;", "#355c7d")  # a clock face, before the next group's time
# The settings page's buttons and sections: a mark each, so that they differ by more than words.
SETTING_MARKS = {
    "volume-down": ("&#8722;", "#5b2a86"),
    "volume-up": ("+", "#0d5c63"),
    "volume-mute": ("&#215;", "#6b4e16"),
    "brightness-down": ("&#8722;", "#3b3b98"),
    "brightness-up": ("+", "#7a2e0e"),
    "wifi": ("&#8776;", "#00507a"),
}
METER_FILL = {"volume": "#1f4e9c", "brightness": "#9c5a00", "muted": "#6e7781"}
METER_WIDTH = 240  # px: a level of N % fills N % of it
MAX_FORM_BYTES = 2048
FORM_FIELDS = frozenset({"token", "action", "ssid", "password"})
ACTIONS = {
    "volume-up": ("volume", "up"),
    "volume-down": ("volume", "down"),
    "volume-mute": ("volume", "mute"),
    "brightness-up": ("brightness", "up"),
    "brightness-down": ("brightness", "down"),
    "wifi-connect": ("wifi", "connect"),
}

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
 html,body{{margin:0;background:#f4f6f8;color:#111;font-family:"DejaVu Sans",sans-serif}}
 main{{padding:96px 48px 48px}}
 h1{{font-size:40px;margin:0 0 32px}}
 ul{{list-style:none;margin:0;padding:0;display:grid;
    grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:32px}}
 a.tile{{display:flex;align-items:center;gap:24px;min-height:160px;padding:24px 32px;
    background:#fff;color:#111;text-decoration:none;font-size:32px;font-weight:bold;
    border:4px solid #c9d1d9;border-radius:18px;overflow-wrap:anywhere;hyphens:auto}}
 a.tile span.label{{min-width:0}}
 a.tile:focus,a.tile:hover{{border-color:#111;outline:4px solid #111;outline-offset:2px}}
 .mark{{flex:none;display:inline-flex;align-items:center;justify-content:center;
    width:88px;height:88px;border-radius:44px;color:#fff;font-size:44px}}
 p.empty{{font-size:30px}}
 p.group{{display:flex;align-items:center;gap:20px;font-size:32px;font-weight:bold;
    margin:0 0 32px}}
 p.group .mark{{width:64px;height:64px;font-size:36px}}
 a.tile.join{{min-height:200px;font-size:40px;border-color:#9c1f5e;margin:0 0 32px}}
 a.back,button{{display:inline-flex;align-items:center;gap:16px;min-height:88px;
    padding:8px 24px 8px 12px;background:#fff;color:#111;text-decoration:none;font:inherit;
    font-size:26px;font-weight:bold;border:3px solid #5c6670;border-radius:16px;cursor:pointer}}
 a.back{{padding-left:28px}}
 .top{{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:24px;
    margin:0 0 24px}}
 .top h1{{margin:0}}
 a.back:focus,a.back:hover,button:focus,button:hover,input:focus,label.network:hover{{
    border-color:#111;outline:4px solid #111;outline-offset:2px}}
 .sections{{display:grid;gap:24px}}
 section{{background:#fff;border:3px solid #c9d1d9;border-radius:18px;padding:16px 28px 24px}}
 .head{{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 32px;margin:0 0 12px}}
 h2{{display:flex;align-items:center;gap:16px;font-size:32px;margin:0}}
 p.level,p.said,p.hint,fieldset,label{{font-size:26px}}
 p.level{{margin:0}}
 .meter{{width:{meter}px;height:24px;background:#e1e6eb;border:2px solid #5c6670;
    border-radius:12px;overflow:hidden;margin:0 0 20px}}
 .meter span{{display:block;height:100%}}
 .buttons{{display:flex;flex-wrap:wrap;align-items:center;gap:20px}}
 .buttons .meter{{margin:0}}
 .small{{width:56px;height:56px;border-radius:28px;font-size:40px}}
 p.said{{padding:16px 24px;border-radius:12px;border:3px solid #1e6b3a;background:#e6f4ea}}
 p.said.error{{border-color:#a40e26;background:#fdecee}}
 fieldset{{border:0;padding:0;margin:0 0 16px}}
 legend{{font-weight:bold;margin:0 0 8px}}
 label.network{{display:flex;align-items:center;gap:16px;min-height:72px;padding:4px 16px;
    border:3px solid #c9d1d9;border-radius:12px;margin:0 0 12px}}
 label.network input{{width:32px;height:32px}}
 label.network small{{font-size:22px;color:#3d444d}}
 input[type=password]{{display:block;width:min(100%,600px);min-height:64px;font-size:28px;
    padding:4px 12px;border:3px solid #5c6670;border-radius:12px;margin:8px 0}}
</style></head>
<body data-version="{version}"><main>
{heading}
{body}
</main>
<script>
(function () {{
  var version = document.body.dataset.version;
  function check() {{
    fetch("/version", {{cache: "no-store"}}).then(function (r) {{ return r.text(); }})
      .then(function (v) {{ if (v !== version) location.reload(); }})
      .catch(function () {{}});
  }}
  setInterval(check, 2000);
  // Shown again from the back-forward cache: say so at once (and reload if stale).
  window.addEventListener("pageshow", function (e) {{ if (e.persisted) check(); }});
}})();
</script>
</body></html>
"""


@dataclass(frozen=True)
class LauncherView:
    """What the launcher shows: a profile in a language, in a mode; `version` changes with any."""

    profile: KioskProfile
    language: str
    version: int
    mode: str = "kiosk"
    groups: GroupsShown = NOTHING

    @property
    def sections(self) -> frozenset[str]:
        """The settings the client may change now (settings.py)."""
        return allowed_sections(self.mode, self.profile.settings_locked)


def _tile(href: str, mark: tuple[str, str], label: str, category: str) -> str:
    return (
        f'<li><a class="tile" href="{href}" data-category="{html.escape(category)}">'
        f'<span class="mark" aria-hidden="true" style="background:{mark[1]}">{mark[0]}</span>'
        f'<span class="label">{html.escape(label)}</span></a></li>'
    )


def _groups_part(view: LauncherView) -> str:
    """The info line of the next group and the Join tiles of the open ones (never a title)."""
    parts = []
    upcoming = view.groups.next
    if upcoming is not None:
        key = "group_tomorrow" if upcoming.tomorrow else "group_at"
        when = clock_time(upcoming.hour, upcoming.minute, view.language)
        parts.append(
            f'<p class="group"><span class="mark" aria-hidden="true" '
            f'style="background:{GROUP_NEXT_MARK[1]}">{GROUP_NEXT_MARK[0]}</span>'
            f"{html.escape(text(key, view.language, time=when))}</p>"
        )
    for slot in view.groups.open:
        parts.append(
            f'<a class="tile join" href="/join/{html.escape(slot.id)}" data-category="group">'
            f'<span class="mark" aria-hidden="true" style="background:{JOIN_MARK[1]}">'
            f'{JOIN_MARK[0]}</span><span class="label">'
            f"{html.escape(text('join_group', view.language))}</span></a>"
        )
    return "\n".join(parts) + ("\n" if parts else "")


def render(view: LauncherView, settings: bool = False) -> str:
    """The launcher page for a profile (with a Settings tile when `settings`)."""
    title = text("launcher_title", view.language)
    tiles = [
        _tile(
            f"/open/{index}",
            CATEGORY_MARKS.get(shortcut.category, CATEGORY_MARKS["other"]),
            shortcut.label,
            shortcut.category,
        )
        for index, shortcut in enumerate(view.profile.shortcuts)
    ]
    body = _groups_part(view)
    if not tiles and not view.groups.open:
        body += f'<p class="empty">{html.escape(text("no_shortcuts", view.language))}</p>\n'
    if settings and view.sections:
        tiles.append(_tile("/settings", SETTINGS_MARK, text("settings", view.language), "settings"))
    if tiles:
        body += "<ul>\n" + "\n".join(tiles) + "\n</ul>"
    return PAGE.format(
        lang=view.language,
        title=html.escape(title),
        heading=f"<h1>{html.escape(title)}</h1>",
        version=view.version,
        body=body,
        meter=METER_WIDTH,
    )


@dataclass(frozen=True)
class SettingsState:
    """What the settings page shows: levels (None: cannot be set here) and Wi-Fi networks."""

    volume: tuple[int, bool] | None = None  # (percent, muted)
    brightness: int | None = None
    networks: tuple[Network, ...] | None = None  # None: no NetworkManager to ask
    said: tuple[str, bool] | None = None  # a sentence for the client, and whether an error


def _mark(name: str) -> str:
    symbol, colour = SETTING_MARKS[name]
    return (
        f'<span class="mark small" aria-hidden="true" style="background:{colour}">{symbol}</span>'
    )


def _button(action: str, label: str, described_by: str) -> str:
    return (
        f'<button type="submit" name="action" value="{action}" '
        f'aria-describedby="{described_by}">{_mark(action)}{html.escape(label)}</button>'
    )


def _meter(percent: int, colour: str) -> str:
    width = max(0, min(100, percent))
    return (
        f'<div class="meter" aria-hidden="true"><span style="width:{width}%;'
        f'background:{colour}"></span></div>'
    )


def render_settings(view: LauncherView, state: SettingsState, token: str) -> str:
    """The settings page: the sections the view allows, with the form token of this process."""
    lang = view.language

    def t(key: str, **fields: str) -> str:
        return html.escape(text(key, lang, **fields))

    hidden = f'<input type="hidden" name="token" value="{html.escape(token)}">'
    heading = (
        f'<div class="top"><h1>{t("settings")}</h1>'
        f'<a class="back" href="/">&#8592; {t("home")}</a></div>'
    )
    parts = []
    if state.said is not None:
        sentence, error = state.said
        role = "alert" if error else "status"
        kind = "said error" if error else "said"
        parts.append(f'<p class="{kind}" role="{role}">{html.escape(sentence)}</p>')
    parts.append('<div class="sections">')
    sections = view.sections
    if "volume" in sections:
        head = f'<h2 id="volume-title">{t("volume")}</h2>'
        if state.volume is None:
            level, form = t("no_sound"), ""
        else:
            percent, muted = state.volume
            level = t("volume_muted" if muted else "volume_level", level=str(percent))
            form = (
                f'<form method="post" action="/settings" class="buttons">{hidden}'
                + _button("volume-down", text("quieter", lang), "volume-level")
                + _meter(percent, METER_FILL["muted" if muted else "volume"])
                + _button("volume-up", text("louder", lang), "volume-level")
                + _button("volume-mute", text("unmute" if muted else "mute", lang), "volume-level")
                + "</form>"
            )
        parts.append(
            f'<section aria-labelledby="volume-title"><div class="head">{head}'
            f'<p class="level" id="volume-level">{level}</p></div>{form}</section>'
        )
    if "brightness" in sections:
        head = f'<h2 id="brightness-title">{t("brightness")}</h2>'
        if state.brightness is None:
            level, form = t("no_backlight"), ""
        else:
            level = t("brightness_level", level=str(state.brightness))
            form = (
                f'<form method="post" action="/settings" class="buttons">{hidden}'
                + _button("brightness-down", text("dimmer", lang), "brightness-level")
                + _meter(state.brightness, METER_FILL["brightness"])
                + _button("brightness-up", text("brighter", lang), "brightness-level")
                + "</form>"
            )
        parts.append(
            f'<section aria-labelledby="brightness-title"><div class="head">{head}'
            f'<p class="level" id="brightness-level">{level}</p></div>{form}</section>'
        )
    if "wifi" in sections:
        parts.append(
            '<section aria-labelledby="wifi-title">'
            f'<h2 id="wifi-title">{_mark("wifi")}{t("wifi")}</h2>'
        )
        if state.networks is None:
            parts.append(f'<p class="level">{t("no_network_manager")}</p>')
        elif not state.networks:
            parts.append(f'<p class="level">{t("no_networks")}</p>')
        else:
            choices = []
            for network in state.networks:
                about = [t("network_secured" if network.secured else "network_open")]
                about.append(t("signal", level=str(network.signal)))
                if network.in_use:
                    about.append(t("network_in_use"))
                ssid = html.escape(network.ssid)
                choices.append(
                    '<label class="network"><input type="radio" name="ssid" required '
                    f'value="{ssid}">{ssid} '
                    f"<small>({', '.join(about)})</small></label>"
                )
            parts.append(
                f'<form method="post" action="/settings">{hidden}'
                '<input type="hidden" name="action" value="wifi-connect">'
                f"<fieldset><legend>{t('choose_network')}</legend>{''.join(choices)}</fieldset>"
                f'<label for="wifi-password">{t("password")}</label>'
                '<input type="password" id="wifi-password" name="password" maxlength="64" '
                'autocomplete="off" aria-describedby="wifi-hint">'
                f'<p class="hint" id="wifi-hint">{t("password_hint")}</p>'
                f'<button type="submit">{t("connect")}</button></form>'
            )
        parts.append("</section>")
    parts.append("</div>")
    return PAGE.format(
        lang=lang,
        title=t("settings"),
        heading=heading,
        version=view.version,
        body="\n".join(parts),
        meter=METER_WIDTH,
    )


class Launcher:
    """Serves the launcher on 127.0.0.1:`port` and reports each launch to `on_launch`; with
    `settings`, also the settings page."""

    def __init__(
        self,
        port: int,
        on_launch: Callable[[Shortcut], None],
        settings: KioskSettings | None = None,
        *,
        on_join: Callable[[GroupSlot], None] | None = None,
        on_home: Callable[[], None] | None = None,
    ) -> None:
        self._view = LauncherView(KioskProfile(), "fi", 0)
        self._on_launch = on_launch
        self._on_join = on_join
        self._on_home = on_home
        self._settings = settings
        self._lock = threading.Lock()
        self._settings_lock = threading.Lock()  # one change at a time
        self._said: tuple[str, dict[str, str], bool] | None = None
        self.token = secrets.token_urlsafe(32)  # the settings forms' (one per process)
        launcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "kiosk"
            sys_version = ""
            # Chromium opens connections it may never use: drop an idle one after a while
            # rather than keep a thread and a socket waiting on it.
            timeout = 15

            def do_GET(self) -> None:  # noqa: N802 - the library's name
                launcher._serve(self)

            def do_POST(self) -> None:  # noqa: N802 - the library's name
                launcher._post(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("launcher: " + format, *args)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kiosk-launcher", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def show(self, profile: KioskProfile, language: str, mode: str | None = None) -> None:
        """Show another profile, language or mode (None: the same mode as now); the open page
        reloads itself within 2 s."""
        with self._lock:
            view = self._view
            mode = view.mode if mode is None else mode
            if view.profile != profile or view.language != language or view.mode != mode:
                self._view = LauncherView(profile, language, view.version + 1, mode, view.groups)

    def show_groups(self, groups: GroupsShown) -> None:
        """Show another info line or other Join tiles; the open page reloads within 2 s."""
        with self._lock:
            view = self._view
            if view.groups != groups:
                self._view = LauncherView(
                    view.profile, view.language, view.version + 1, view.mode, groups
                )

    @property
    def groups(self) -> GroupsShown:
        """What the launcher shows of the groups now."""
        with self._lock:
            return self._view.groups

    def _serve(self, request: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            view = self._view
        path = request.path.split("?", 1)[0]
        if path in ("/", "/version"):
            self._home()
        if path == "/":
            page = render(view, settings=self._settings is not None)
            self._send(request, 200, "text/html; charset=utf-8", page.encode())
        elif path == "/version":
            self._send(request, 200, "text/plain", str(view.version).encode())
        elif path == "/settings":
            if self._settings is None or not view.sections:
                self._send(request, 404, "text/plain", b"not found")
            elif not self._own_host(request):
                self._refuse(request, view)
            else:
                said, self._said = self._said, None
                sentence = None
                if said is not None:
                    sentence = (text(said[0], view.language, **said[1]), said[2])
                page = render_settings(view, self._state(view, sentence), self.token)
                self._send(request, 200, "text/html; charset=utf-8", page.encode())
        elif path.startswith("/open/") and path[6:].isdigit():
            index = int(path[6:])
            if index >= len(view.profile.shortcuts):
                self._send(request, 404, "text/plain", b"no such shortcut")
                return
            shortcut = view.profile.shortcuts[index]
            try:
                self._on_launch(shortcut)
            except Exception:
                log.exception("launcher: counting a launch failed")
            request.send_response(303)
            request.send_header("Location", shortcut.url)
            request.send_header("Cache-Control", "no-store")
            request.end_headers()
        elif path.startswith("/join/"):
            self._join(request, view, path[6:])
        else:
            self._send(request, 404, "text/plain", b"not found")

    def _home(self) -> None:
        """The launcher's page was asked for, or asks its /version: it is on the screen."""
        if self._on_home is not None:
            try:
                self._on_home()
            except Exception:
                log.exception("launcher: noting the return to the launcher failed")

    def _join(
        self, request: http.server.BaseHTTPRequestHandler, view: LauncherView, ident: str
    ) -> None:
        """A Join tile: counted and sent on while its window is open; a plain page otherwise."""
        slot = next((slot for slot in view.groups.open if slot.id == ident), None)
        if slot is None:
            said = html.escape(text("group_not_open", view.language))
            body = (
                f'<!doctype html><html lang="{view.language}"><meta charset="utf-8">'
                f'<title>{said}</title><p style="font-size:32px">{said}</p>'
            )
            self._send(request, 403, "text/html; charset=utf-8", body.encode())
            return
        if self._on_join is not None:
            try:
                self._on_join(slot)
            except Exception:
                log.exception("launcher: counting a group's join failed")
        request.send_response(303)
        request.send_header("Location", slot.join_url)
        request.send_header("Cache-Control", "no-store")
        request.send_header("Content-Length", "0")
        request.end_headers()

    # --- settings

    def _state(self, view: LauncherView, said: tuple[str, bool] | None) -> SettingsState:
        settings = self._settings
        assert settings is not None
        sections = view.sections
        volume = brightness = networks = None
        if "volume" in sections:
            level = settings.volume.level()
            volume = None if level is None else (level.percent, level.muted)
        if "brightness" in sections:
            brightness = settings.backlight.level()
        if "wifi" in sections:
            try:
                found = settings.wifi.scan()
            except SettingError:
                networks = None
            else:
                networks = tuple(found)
        return SettingsState(volume, brightness, networks, said)

    def _own_host(self, request: http.server.BaseHTTPRequestHandler) -> bool:
        """The request names the launcher's own address (not another name that resolves to
        loopback: DNS rebinding)."""
        return request.headers.get("Host") == self.origin.removeprefix("http://")

    def _same_origin(self, request: http.server.BaseHTTPRequestHandler) -> bool:
        """The request was sent by the launcher's own page: its Origin is the launcher, and so
        is Sec-Fetch-Site when the browser sends it."""
        fetch_site = request.headers.get("Sec-Fetch-Site")
        return (
            self._own_host(request)
            and request.headers.get("Origin") == self.origin
            and fetch_site in (None, "same-origin")
        )

    def _refuse(self, request: http.server.BaseHTTPRequestHandler, view: LauncherView) -> None:
        body = f"<!doctype html><title>403</title><p>{html.escape(text('refused', view.language))}"
        self._send(request, 403, "text/html; charset=utf-8", body.encode())

    def _post(self, request: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            view = self._view
        path = request.path.split("?", 1)[0]
        if path != "/settings" or self._settings is None:
            self._send(request, 404, "text/plain", b"not found")
            return
        if not self._same_origin(request):
            log.warning("launcher: a settings request not from the launcher's page refused")
            self._refuse(request, view)
            return
        form = self._read_form(request)
        if form is None or not hmac.compare_digest(form.get("token", ""), self.token):
            self._refuse(request, view)
            return
        action = ACTIONS.get(form.get("action", ""))
        try:
            if action is None or action[0] not in view.sections:
                raise SettingError("not_allowed")
            with self._settings_lock:
                said = self._change(action, form)
        except SettingError as exc:
            sentence = text(exc.key, view.language, **exc.fields)
            page = render_settings(view, self._state(view, (sentence, True)), self.token)
            self._send(request, 400, "text/html; charset=utf-8", page.encode())
            return
        self._said = said
        request.send_response(303)
        request.send_header("Location", "/settings")
        request.send_header("Cache-Control", "no-store")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _change(
        self, action: tuple[str, str], form: dict[str, str]
    ) -> tuple[str, dict[str, str], bool] | None:
        settings = self._settings
        assert settings is not None
        section, what = action
        if section == "volume":
            settings.volume.change(what)
        elif section == "brightness":
            settings.backlight.change(what)
        else:
            ssid = form.get("ssid", "")
            settings.wifi.connect(ssid, form.get("password", ""))
            return ("connected", {"ssid": ssid}, False)
        return None

    @staticmethod
    def _read_form(request: http.server.BaseHTTPRequestHandler) -> dict[str, str] | None:
        """The form's fields, each at most once and known; None for anything else."""
        kind = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        try:
            length = int(request.headers.get("Content-Length", ""))
        except ValueError:
            return None
        if kind != "application/x-www-form-urlencoded" or not 0 < length <= MAX_FORM_BYTES:
            return None
        try:
            body = request.rfile.read(length).decode("ascii")
            pairs = urllib.parse.parse_qsl(
                body,
                keep_blank_values=True,
                strict_parsing=True,
                errors="strict",
                max_num_fields=len(FORM_FIELDS),
            )
        except (ValueError, OSError):  # UnicodeDecodeError is a ValueError
            return None
        form = dict(pairs)
        if len(form) != len(pairs) or not set(form) <= FORM_FIELDS:
            return None
        return form

    @staticmethod
    def _send(
        request: http.server.BaseHTTPRequestHandler, code: int, kind: str, body: bytes
    ) -> None:
        request.send_response(code)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        request.send_header("X-Frame-Options", "DENY")
        request.end_headers()
        request.wfile.write(body)
