"""axe-core on every page of the console, for every role that may open it, in all three
languages, at desktop width and at a phone's 360 px — and at 360 px no page scrolls sideways
(issue 19, point 3: counsellors on home visits and IT in a storeroom use phones; a wide table
scrolls inside its own box).

The pages come from the app's URL map (tests/support/console_pages.py), so a new page without a
sample there fails this test. Every axe finding fails it, whatever its impact. A screenshot of
each page at phone width is kept as an artifact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from a11y import describe, violations
from playwright.sync_api import Page
from support.console_pages import ROLES, prepare, urls
from support.fleet import Fleet
from test_sign_in import sign_in

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}

# What sticks out to the right of a phone's screen, outside any box that scrolls on its own.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (/(auto|scroll|hidden)/.test(style.overflowX) && p !== document.body
          && p !== document.documentElement) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1 || scrolls(el)) continue;
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (el.className && typeof el.className === "string" ? "." + el.className.split(" ")[0] : "");
    out.push(name + " right=" + Math.round(box.right));
    if (out.length >= 5) break;
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, out};
}"""


def check_page(page: Page, label: str, problems: list[str]) -> None:
    found = violations(page)
    if found:
        problems.append(f"{label}:\n{describe(found)}")


def rendered(page: Page) -> None:
    """Wait until the page has drawn a frame at its new size: a browser delivers the resize
    event (console.js then gives a table that now overflows its tab stop) while rendering."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def check_phone(page: Page, label: str, problems: list[str], shot: Path | None) -> None:
    page.set_viewport_size(PHONE)
    rendered(page)
    check_page(page, f"{label} at 360 px", problems)
    fit = page.evaluate(OVERFLOW)
    if fit["scrollWidth"] > fit["width"]:
        problems.append(f"{label}: {fit['scrollWidth']} px wide at 360 px: {fit['out']}")
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    page.set_viewport_size(DESKTOP)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_passes_axe_and_fits_a_phone(
    page: Page, server: str, pg_fleet: Fleet, role: str, shots: Path
) -> None:
    samples = prepare(pg_fleet, role)
    login = pg_fleet.logins[role]
    sign_in(page, server, login.username, login.password)
    problems: list[str] = []
    pages = urls(pg_fleet, role, samples)
    assert len(pages) >= 6
    forbidden = {"counsellor": ["/devices"], "it_support": ["/users"]}.get(role, [])
    for language in ("en", "fi", "sv"):
        page.context.add_cookies([{"name": "lainaamo_lang", "value": language, "url": server}])
        for number, path in enumerate(pages):
            response = page.goto(server + path)
            assert response is not None and response.status == 200, (
                path,
                response and response.status,
            )
            label = f"{language} {path}"
            check_page(page, label, problems)
            shot = shots / f"{language}-{number:02d}.png" if language == "fi" else None
            check_phone(page, label, problems, shot)
        # The error pages are pages too.
        for path in ["/no/such/page", *forbidden]:
            page.goto(server + path)
            check_page(page, f"{language} {path}", problems)
            check_phone(page, f"{language} {path}", problems, None)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
