"""The tests' own waiting helpers must not keep what a failed try left behind.

An HTTPError holds its response's socket; kept past its `except` block it is caught in a cycle
(its traceback holds the frame that holds it), and the socket is closed only when the garbage
collector gets round to it — in whatever later test is running, which then fails on the
ResourceWarning. This happened in CI (tests/unit/test_link_loop.py, twice).
"""

from __future__ import annotations

import gc
import http.server
import threading
import urllib.request
import warnings
from collections.abc import Callable, Iterator

import pytest
from support import kiosk, processes


@pytest.fixture
def unavailable() -> Iterator[str]:
    """A server that answers every request with 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def ask(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


@pytest.mark.parametrize(
    "wait",
    [
        lambda check: processes.wait_until(check, 0.3, "never", interval=0.05),
        lambda check: kiosk.wait_for(check, 0.3, "never", every=0.05),
    ],
    ids=["processes.wait_until", "kiosk.wait_for"],
)
def test_a_wait_that_times_out_on_http_errors_leaves_no_socket_open(
    unavailable: str, wait: Callable[[Callable[[], bool]], None]
) -> None:
    gc.collect()
    with pytest.raises(AssertionError, match="503"):
        wait(lambda: ask(unavailable))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]
