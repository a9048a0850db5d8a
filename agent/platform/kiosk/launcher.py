"""The kiosk's launcher: a small web page the agent serves on loopback to the kiosk browser.

Large tiles for the kiosk profile's shortcuts, in the device's language. A tile leads through
`/open/N`, which counts the launch (docs/protocol.md §18: only the shortcut's category is ever
kept) and sends the browser on to the shortcut. The page asks `/version` every two seconds and
reloads itself when the profile changed, so a new policy shows without restarting the browser.
"""

from __future__ import annotations

import html
import http.server
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.platform.kiosk.texts import text
from agent.policy import KioskProfile, Shortcut

log = logging.getLogger(__name__)

# A mark beside each tile's label, so that tiles differ by more than their words.
CATEGORY_MARKS = {
    "chat": ("&#9993;", "#0b5394"),  # envelope
    "appointment": ("&#9742;", "#1e6b3a"),  # telephone
    "digipath": ("&#10148;", "#6a2c91"),  # arrow
    "group": ("&#9679;&#9679;", "#8a4b00"),
    "other": ("&#9733;", "#44546a"),
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
</style></head>
<body data-version="{version}"><main>
<h1>{title}</h1>
{body}
</main>
<script>
(function () {{
  var version = document.body.dataset.version;
  setInterval(function () {{
    fetch("/version", {{cache: "no-store"}}).then(function (r) {{ return r.text(); }})
      .then(function (v) {{ if (v !== version) location.reload(); }})
      .catch(function () {{}});
  }}, 2000);
}})();
</script>
</body></html>
"""


@dataclass(frozen=True)
class LauncherView:
    """What the launcher shows: a profile in a language; `version` changes with either."""

    profile: KioskProfile
    language: str
    version: int


def render(view: LauncherView) -> str:
    """The launcher page for a profile."""
    title = text("launcher_title", view.language)
    if view.profile.shortcuts:
        tiles = []
        for index, shortcut in enumerate(view.profile.shortcuts):
            mark, colour = CATEGORY_MARKS.get(shortcut.category, CATEGORY_MARKS["other"])
            tiles.append(
                f'<li><a class="tile" href="/open/{index}" data-category="'
                f'{html.escape(shortcut.category)}"><span class="mark" aria-hidden="true" '
                f'style="background:{colour}">{mark}</span><span class="label">'
                f"{html.escape(shortcut.label)}</span></a></li>"
            )
        body = "<ul>\n" + "\n".join(tiles) + "\n</ul>"
    else:
        body = f'<p class="empty">{html.escape(text("no_shortcuts", view.language))}</p>'
    return PAGE.format(
        lang=view.language, title=html.escape(title), version=view.version, body=body
    )


class Launcher:
    """Serves the launcher on 127.0.0.1:`port` and reports each launch to `on_launch`."""

    def __init__(self, port: int, on_launch: Callable[[Shortcut], None]) -> None:
        self._view = LauncherView(KioskProfile(), "fi", 0)
        self._on_launch = on_launch
        self._lock = threading.Lock()
        launcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "kiosk"
            sys_version = ""
            # Chromium opens connections it may never use: drop an idle one after a while
            # rather than keep a thread and a socket waiting on it.
            timeout = 15

            def do_GET(self) -> None:  # noqa: N802 - the library's name
                launcher._serve(self)

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
        """Stop serving and close the socket (bound since __init__); harmless when repeated."""
        if self._thread.is_alive():
            self._server.shutdown()  # (waits for serve_forever: never when it did not start)
            self._thread.join(5)
        self._server.server_close()

    def show(self, profile: KioskProfile, language: str) -> None:
        """Show another profile or language; the open page reloads itself within 2 s."""
        with self._lock:
            view = self._view
            if view.profile != profile or view.language != language:
                self._view = LauncherView(profile, language, view.version + 1)

    def _serve(self, request: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            view = self._view
        path = request.path.split("?", 1)[0]
        if path == "/":
            self._send(request, 200, "text/html; charset=utf-8", render(view).encode())
        elif path == "/version":
            self._send(request, 200, "text/plain", str(view.version).encode())
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
        else:
            self._send(request, 404, "text/plain", b"not found")

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
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        )
        request.end_headers()
        request.wfile.write(body)
