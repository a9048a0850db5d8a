"""Issue 19.8 in a real browser: the kiosk editor's rows and the launcher preview, and the
unit's loan-rule sets. Keyboard only, checked with axe-core, at 360 px without page-level
sideways scroll."""

from __future__ import annotations

from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

pytestmark = pytest.mark.browser


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    assert widths["page"] <= widths["view"], widths


def type_into(page: Page, label: str, text: str) -> None:
    """Tab to the field named `label` from the one focused now, and type."""
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.labels?.[0]?.textContent.trim()") == label:
            page.keyboard.type(text)
            return
    raise AssertionError(f"no field {label!r} reached by Tab")


def test_the_kiosk_editor_and_its_preview(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    login = pg_fleet.logins["admin"]
    sign_in(page, server, login.username, login.password)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server}/admin/units/paihde")
    expect(page.locator("#kiosk-preview")).to_contain_text("No shortcuts yet")
    check(page)
    no_sideways_scroll(page)

    # A junk app and an http:// address: refused, each beside its field, nothing saved.
    page.get_by_label("Allowed apps").focus()
    page.keyboard.type("fi.esavo.video\nnot an app id!!")
    first = page.get_by_role("group", name="Shortcut 1")
    first.get_by_label("Label").focus()
    page.keyboard.type("Chat with the counsellor")
    type_into(page, "Address", "http://chat.example.fi/")
    page.keyboard.press("Tab")  # the category
    page.keyboard.press("ArrowDown")  # chat, the first category
    first.get_by_label("Address").focus()
    page.keyboard.press("Enter")  # submits: the first button is "Save the kiosk profile"
    expect(page.locator("#f-apps-error")).to_contain_text("Line 2: “not an app id!!”")
    expect(page.locator("#f-url-0-error")).to_contain_text("https://")
    expect(page.get_by_label("Allowed apps")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#kiosk-preview")).to_contain_text("No shortcuts yet")
    check(page)
    no_sideways_scroll(page)
    page.screenshot(path=shots / "kiosk-refused-360.png", full_page=True)

    # Fixed, and a second tile in the next row: saved, the preview shows both tiles.
    apps = page.get_by_label("Allowed apps")
    apps.fill("fi.esavo.video")
    first = page.get_by_role("group", name="Shortcut 1")
    first.get_by_label("Address").fill("https://chat.example.fi/")
    second = page.get_by_role("group", name="Shortcut 2")
    second.get_by_label("Label").focus()
    page.keyboard.type("Ryhmät")
    type_into(page, "Address", "https://ryhma.example.fi/")
    second.get_by_label("Category").select_option(label="Groups")
    page.get_by_role("button", name="Save the kiosk profile").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("Saved.")
    tiles = page.locator("#kiosk-preview .kiosk-tile .label")
    expect(tiles).to_have_text(["Chat with the counsellor", "Ryhmät", "Settings"])
    expect(page.locator("#kiosk-preview")).to_contain_text("stays in restricted mode")
    check(page)
    no_sideways_scroll(page)
    page.screenshot(path=shots / "kiosk-preview-360.png", full_page=True)

    # "Add more rows" without saving: three more empty rows, the typed values kept.
    rows_before = page.locator("fieldset.shortcut-row").count()
    page.get_by_role("group", name="Shortcut 3").get_by_label("Label").fill("Half typed")
    page.get_by_role("button", name="Add more rows").focus()
    page.keyboard.press("Enter")
    expect(page.locator("fieldset.shortcut-row")).to_have_count(rows_before + 3)
    expect(page.get_by_role("group", name="Shortcut 3").get_by_label("Label")).to_have_value(
        "Half typed"
    )
    expect(tiles).to_have_count(3)  # nothing saved
    check(page)

    # Remove a tile by keyboard: the preview loses it.
    page.get_by_role("group", name="Shortcut 3").get_by_label("Label").fill("")
    keep = page.get_by_role("group", name="Shortcut 1").get_by_label(
        "Keep this shortcut (untick to remove it on saving)"
    )
    expect(keep).to_be_checked()
    keep.focus()
    page.keyboard.press("Space")
    expect(keep).not_to_be_checked()
    page.get_by_role("button", name="Save the kiosk profile").click()
    expect(tiles).to_have_text(["Ryhmät", "Settings"])
    no_sideways_scroll(page)


def test_loan_rule_sets_are_listed_and_removed_by_keyboard(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    login = pg_fleet.logins["admin"]
    sign_in(page, server, login.username, login.password)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server}/admin/units/paihde?rules=new")
    expect(page.get_by_role("heading", name="New rules for a device model")).to_be_visible()
    model = page.get_by_label("Only for device model")
    expect(page.locator("#f-model-hint")).to_contain_text("Samsung Galaxy Tab A9")
    # The browser keeps each number within 1–3650; the server says what is wrong across them.
    page.get_by_label("Reminder after overdue (days)").fill("9")
    page.get_by_label("Restricted mode after overdue (days)").fill("3")
    model.fill("Samsung Galaxy Tab A9")
    model.press("Enter")
    expect(page.locator("#f-restrict_after_days-error")).to_have_text(
        "Restricted mode after overdue (days): at least 9, since the reminder comes first."
    )
    check(page)
    page.get_by_label("Restricted mode after overdue (days)").fill("14")
    page.get_by_label("Loan length (days)").fill("45")
    page.get_by_role("button", name="Save the loan rules").click()
    table = page.locator("#rule-sets")
    expect(table).to_contain_text("Model Samsung Galaxy Tab A9")
    check(page)
    no_sideways_scroll(page)  # the table scrolls in its own box
    page.screenshot(path=shots / "rule-sets-360.png", full_page=True)
    remove = table.get_by_role("button", name="Remove Samsung Galaxy Tab A9")
    remove.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("Rules for model")
    expect(table).to_contain_text("None set: the built-in defaults apply.")
