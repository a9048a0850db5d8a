"""A real kiosk tablet per module: Xvfb, a client account, Chromium and the overlay."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from support.kiosk import (
    CLIENT,
    HEIGHT,
    WIDTH,
    Kiosk,
    Screen,
    Site,
    free_display,
    free_port,
    namespace_prefix,
    remove_account,
    require_kiosk_machine,
)

from agent.platform.kiosk import KioskConfig, KioskPlatform


def _serve(
    site: Site, pages: dict[str, tuple[str, list[tuple[str, str]]]]
) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            site.paths.append(self.path)
            body, headers = pages.get(self.path, ("<title>nothing here</title>", []))
            if "{cookie}" in body:
                body = body.replace("{cookie}", self.headers.get("Cookie") or "none")
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", site.port), Handler)
    site.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    require_kiosk_machine()
    root = tmp_path_factory.mktemp("kiosk")
    policies = root / "policies"
    (policies / "managed").mkdir(parents=True)
    networks = root / "system-connections"
    networks.mkdir()
    skeleton = root / "skel"
    skeleton.mkdir()
    (skeleton / ".profile").write_text("# the client's skeleton\n")
    forbidden = Site("forbidden")
    forbidden_server = _serve(forbidden, {})
    allowed = Site("allowed")
    allowed_server = _serve(
        allowed,
        {
            "/": (
                '<title>allowed site</title><body style="background:#123456">'
                f'<a id="out" href="{forbidden.url}/leak" style="display:block;height:300px;'
                'background:#aa0000">out</a>'
                '<a id="file" href="file:///etc/passwd" style="display:block;height:300px;'
                'background:#00aa00">file</a></body>',
                [],
            ),
            "/login": (
                "<title>signed in</title><body>signed in</body>",
                [("Set-Cookie", "session=client-secret; Max-Age=86400; Path=/")],
            ),
            "/whoami": ("<title>cookie {cookie}</title><body>{cookie}</body>", []),
        },
    )
    remove_account(CLIENT)
    display = free_display()
    config = KioskConfig(
        client_user=CLIENT,
        display=display,
        display_command=(
            "Xvfb",
            display,
            "-screen",
            "0",
            f"{WIDTH}x{HEIGHT}x24",
            "-nolisten",
            "tcp",
        ),
        browser_flags=("--disable-gpu", "--disable-dev-shm-usage"),
        browser_prefix=namespace_prefix(policies),
        launcher_port=free_port(),
        policy_dir=str(policies / "managed"),
        language="fi",
        skeleton=str(skeleton),
        network_connections=str(networks),
        reboot_command=("true",),
    )
    platform = KioskPlatform(config)
    try:
        yield Kiosk(platform, Screen(display), allowed, forbidden, networks, skeleton)
    finally:
        platform.close()
        allowed_server.shutdown()
        allowed_server.server_close()
        forbidden_server.shutdown()
        forbidden_server.server_close()
        remove_account(CLIENT)
