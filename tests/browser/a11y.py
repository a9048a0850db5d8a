"""Accessibility checks with axe-core (the copy bundled by axe-playwright-python)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import axe_playwright_python
from playwright.sync_api import Page

# WCAG 2.1 A and AA rules and axe's best practices; every finding fails the test, whatever
# its impact (minor, moderate, serious, critical).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@functools.cache
def _source() -> str:
    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()


def violations(page: Page) -> list[dict[str, Any]]:
    """Every WCAG 2.1 AA and best-practice violation on the page as it is now."""
    # Evaluated over the DevTools protocol, so the console's strict CSP does not block it.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_source() + "\n;undefined")
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    found: list[dict[str, Any]] = result["violations"]
    return found


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for v in found:
        targets = ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:5])
        lines.append(f"{v['impact']}: {v['id']} – {v['help']} ({targets})")
    return "\n".join(lines)


def check(page: Page) -> None:
    """Fail if the page has any accessibility violation."""
    found = violations(page)
    assert not found, f"accessibility violations on {page.url}:\n{describe(found)}"
