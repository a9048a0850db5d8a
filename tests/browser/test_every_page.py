"""axe-core on every page of the console, for every role that may open it, in all languages.

The pages come from the app's URL map, so a new page without a check here fails this test
(add its sample parameters to SAMPLES, or its endpoint to NOT_PAGES if it is no HTML page).
"""

from __future__ import annotations

import pytest
from a11y import describe, violations
from playwright.sync_api import Page
from support.console_pages import ROLES, prepare, urls
from support.fleet import Fleet
from test_sign_in import sign_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("role", ROLES)
def test_every_page_passes_axe(page: Page, server: str, pg_fleet: Fleet, role: str) -> None:
    samples = prepare(pg_fleet, role)
    login = pg_fleet.logins[role]
    sign_in(page, server, login.username, login.password)
    problems = []
    pages = urls(pg_fleet, role, samples)
    assert len(pages) >= 6
    for language in ("en", "fi", "sv"):
        page.context.add_cookies([{"name": "lainaamo_lang", "value": language, "url": server}])
        for path in pages if language == "en" else pages[:4]:
            response = page.goto(server + path)
            assert response is not None and response.status == 200, (
                path,
                response and response.status,
            )
            found = violations(page)
            if found:
                problems.append(f"{language} {path}:\n{describe(found)}")
    # The error pages are pages too.
    for path in (
        "/no/such/page",
        "/devices/no-such-device" if role != "counsellor" else "/reports",
    ):
        page.goto(server + path)
        found = violations(page)
        if found:
            problems.append(f"{path}:\n{describe(found)}")
    assert not problems, "\n".join(problems)
