"""No open redirect, as a real browser reads the answer (issue 14, point 4).

Chromium posts the language form (which returns to its `next`, signed in or not) with each
known bypass as `next` and follows the redirect itself, with its own URL parsing: tabs and
newlines dropped, `\\` read as `/`, and so on. It must stay on the server: any request to
another host is caught and fails the test.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route
from playwright.sync_api import Error as PlaywrightError
from support.hostile import OFF_SITE_TARGETS

pytestmark = pytest.mark.browser

SUBMIT = """([next]) => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/language";
  for (const [name, value] of [["language", "en"], ["next", next]]) {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


def test_chromium_stays_on_the_site_for_every_bypass(
    context: BrowserContext, page: Page, server: str
) -> None:
    ours = urlsplit(server).netloc
    elsewhere: list[str] = []

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.fulfill(status=200, content_type="text/plain", body="left the site")

    context.route("**/*", guard)
    # Redirect hops are not routed, but every request the browser makes is an event.
    context.on(
        "request",
        lambda request: (
            elsewhere.append(request.url) if urlsplit(request.url).netloc != ours else None
        ),
    )
    problems: list[tuple[str, str]] = []
    for family, target in OFF_SITE_TARGETS:
        page.goto(f"{server}/login")
        left = len(elsewhere)
        try:
            with page.expect_navigation():
                page.evaluate(SUBMIT, [target])
            page.wait_for_load_state()
        except PlaywrightError as exc:  # a Location the browser refused to follow
            problems.append((family, str(exc).splitlines()[0]))
            continue
        if urlsplit(page.url).netloc != ours or len(elsewhere) > left:
            problems.append((family, page.url))
    assert problems == [] and elsewhere == [], (problems, elsewhere)
