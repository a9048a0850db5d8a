"""Issue 19.8: the administrators' forms refuse junk and say which field and why.

Allowed apps are app identifiers (each bad line named), loan-rule refusals name the field and
its limits, every loan-rule set of a unit is listed, editable and removable (audited), and the
kiosk editor takes shortcuts in rows and shows the launcher as saved.
"""

from __future__ import annotations

import html
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet

from server.adapters import orm

pytestmark = pytest.mark.integration
RULES = {
    "loan_days": "30",
    "renewal_days": "14",
    "max_renewals": "1",
    "reminder_after_days": "2",
    "restrict_after_days": "7",
    "offline_lock_after_days": "10",
}
TABLET_MODEL = "Samsung Galaxy Tab A9"  # the model of paihde's seeded tablets


def admin(fleet: Fleet, client: FlaskClient) -> Browser:
    return Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)


def page(response: object) -> str:
    return html.unescape(response.get_data(as_text=True))  # type: ignore[attr-defined]


def error_of(text: str, field: str) -> str:
    found = re.search(rf'id="f-{re.escape(field)}-error">([^<]*)<', text)
    assert found, f"no error shown beside {field}"
    return found.group(1)


def rule_rows(fleet: Fleet, code: str) -> dict[str, int]:
    with fleet.services.session_factory() as s:
        rows = s.scalars(select(orm.LoanRulesRow).join(orm.Unit).where(orm.Unit.code == code)).all()
        return {r.model: r.loan_days for r in rows}


def audited(fleet: Fleet, action: str) -> list[orm.AuditEvent]:
    with fleet.services.session_factory() as s:
        found = s.scalars(select(orm.AuditEvent).where(orm.AuditEvent.action == action))
        return [e for e in found]


def kiosk_form(
    apps: str = "", rows: tuple[tuple[str, str, str], ...] = (), **extra: str
) -> dict[str, str]:
    form: dict[str, str] = {"apps": apps, "rows": str(len(rows)), "settings_locked": "on"}
    for i, (label, url, category) in enumerate(rows):
        form |= {f"label-{i}": label, f"url-{i}": url, f"category-{i}": category}
    return form | extra


# --- allowed apps ---------------------------------------------------------------------------


def test_a_junk_app_id_is_refused_with_its_line_named(fleet: Fleet, client: FlaskClient) -> None:
    b = admin(fleet, client)
    refused = b.post(
        "/admin/units/paihde/kiosk", kiosk_form("fi.esavo.video\nnot an app id!!\norg.gnome.Maps")
    )
    assert refused.status_code == 422
    text = page(refused)
    message = error_of(text, "apps")
    assert "Line 2" in message and "“not an app id!!”" in message
    assert "Line 1" not in message and "Line 3" not in message
    assert "not an app id!!" in text  # the typed lines come back to be fixed
    assert "[{" not in text and "'field'" not in text  # nothing Python-like
    with fleet.services.session_factory() as s:
        unit = s.scalar(select(orm.Unit).where(orm.Unit.code == "paihde"))
        assert unit is not None and s.get(orm.KioskProfileRow, unit.id) is None
    saved = b.post(
        "/admin/units/paihde/kiosk", kiosk_form("fi.esavo.video\norg.gnome.Calculator.desktop")
    )
    assert saved.status_code == 302


def test_the_api_names_the_bad_app_line(fleet: Fleet, client: FlaskClient) -> None:
    response = client.put(
        "/api/v1/units/paihde/kiosk-profile",
        headers=fleet.headers("it_support"),
        json={"apps": ["fi.esavo.video", "not an app id!!"], "shortcuts": []},
    )
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    assert [(d["field"], d["line"], d["code"]) for d in details] == [("apps.1", 2, "app_id")]
    assert "line 2" in details[0]["message"] and "'not an app id!!'" in details[0]["message"]


# --- loan rules -----------------------------------------------------------------------------


def test_a_loan_rules_refusal_names_the_field_and_the_limit(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = admin(fleet, client)
    wrong = b.post("/admin/units/paihde/rules", {**RULES, "renewal_days": "4000"})
    assert wrong.status_code == 422
    text = page(wrong)
    assert (
        error_of(text, "renewal_days") == "Days added by a renewal: a whole number from 1 to 3650."
    )
    assert "invalid loan rules" not in text
    assert "The loan rules were not saved. Days added by a renewal" in text  # the flash too
    order = b.post("/admin/units/paihde/rules", {**RULES, "restrict_after_days": "1"})
    assert order.status_code == 422
    assert "at least 2" in error_of(page(order), "restrict_after_days")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fi"
    finnish = b.post("/admin/units/paihde/rules", {**RULES, "max_renewals": "-1"})
    assert "kokonaisluku 0–3650" in error_of(page(finnish), "max_renewals")
    assert rule_rows(fleet, "paihde") == {}


def test_the_api_names_the_loan_rule_field_and_limit(fleet: Fleet, client: FlaskClient) -> None:
    url = "/api/v1/units/paihde/loan-rules"
    response = client.put(url, headers=fleet.headers("admin"), json={"loan_days": 0})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == [{"field": "loan_days", "message": "1–3650"}]
    order = client.put(
        url,
        headers=fleet.headers("admin"),
        json={"reminder_after_days": 9, "restrict_after_days": 3},
    )
    assert order.status_code == 422
    (detail,) = order.get_json()["error"]["details"]
    assert detail["field"] == "restrict_after_days" and "9" in detail["message"]


# --- every rule set visible, editable, removable ----------------------------------------------


def test_a_model_rule_set_is_listed_edited_and_removed(fleet: Fleet, client: FlaskClient) -> None:
    b = admin(fleet, client)
    unit_page = page(b.get("/admin/units/paihde"))
    assert "None set: the built-in defaults apply." in unit_page
    assert f'<option value="{TABLET_MODEL}">' in unit_page  # the fleet's models offered
    assert b.post("/admin/units/paihde/rules", RULES).status_code == 302
    # A model spelt in another case is stored as the tablets spell it.
    made = b.post(
        "/admin/units/paihde/rules", {**RULES, "loan_days": "45", "model": "samsung galaxy tab a9"}
    )
    assert made.status_code == 302
    assert rule_rows(fleet, "paihde") == {"": 30, TABLET_MODEL: 45}
    listed = page(b.get("/admin/units/paihde"))
    table = listed[
        listed.index('id="rule-sets"') : listed.index("</table>", listed.index('id="rule-sets"'))
    ]
    assert "Every model (default)" in table and f"Model {TABLET_MODEL}" in table
    assert '<td class="num">45</td>' in table
    # Editing the model's set opens it in the form, with the set it replaces.
    edit = page(b.get("/admin/units/paihde", query_string={"rules": TABLET_MODEL}))
    assert f"Edit the rules for model {TABLET_MODEL}" in edit
    assert f'name="replaces" value="{TABLET_MODEL}"' in edit
    assert 'name="loan_days" type="number" value="45"' in edit
    renamed = b.post(
        "/admin/units/paihde/rules",
        {**RULES, "loan_days": "60", "model": "Tab X", "replaces": TABLET_MODEL},
    )
    assert renamed.status_code == 302
    assert rule_rows(fleet, "paihde") == {"": 30, "Tab X": 60}  # no copy left behind
    warned = page(b.get(renamed.headers["Location"]))
    assert "No tablet of this unit is of model “Tab X”" in warned
    assert "no such tablet in the unit" in warned
    removed = b.post("/admin/units/paihde/rules-delete", {"model": "Tab X"})
    assert removed.status_code == 302
    assert rule_rows(fleet, "paihde") == {"": 30}
    assert "Rules for model Tab X." in page(b.get(removed.headers["Location"]))
    assert b.post("/admin/units/paihde/rules-delete", {"model": "Tab X"}).status_code == 404
    deleted = [e.before for e in audited(fleet, "console:loan_rules:delete") if e.before]
    assert [(d["model"], d["loan_days"]) for d in deleted] == [(TABLET_MODEL, 45), ("Tab X", 60)]
    assert len(audited(fleet, "console:loan_rules:set")) == 3


# --- the kiosk editor ------------------------------------------------------------------------


def test_shortcut_rows_are_checked_row_by_row_and_previewed(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = admin(fleet, client)
    bad = b.post(
        "/admin/units/paihde/kiosk",
        kiosk_form(
            "",
            (
                ("Chat", "https://chat.example.fi/", "chat"),
                ("", "", ""),
                ("Ajanvaraus", "http://aika.example.fi/", "appointment"),
                ("x" * 61, "https://ryhma.example.fi/", "nonsense"),
            ),
        ),
    )
    assert bad.status_code == 422
    text = page(bad)
    assert "https://" in error_of(text, "url-2")
    assert error_of(text, "label-3") == "At most 60 characters."
    assert error_of(text, "category-3") == "Choose a category from the list."
    assert 'id="f-url-0-error"' not in text and 'id="f-label-1-error"' not in text
    assert "3 problems" in text and "'code'" not in text
    good = kiosk_form(
        "fi.esavo.video",
        (
            ("Chat", "https://chat.example.fi/", "chat"),
            ("", "", ""),
            ("Ryhmät", "https://ryhma.example.fi/", "group"),
            ("Old", "https://old.example.fi/", "other"),
        ),
        **{"listed-0": "1", "keep-0": "on", "listed-3": "1"},  # row 4: its Keep untaken
    )
    assert b.post("/admin/units/paihde/kiosk", good).status_code == 302
    with fleet.services.session_factory() as s:
        unit = s.scalar(select(orm.Unit).where(orm.Unit.code == "paihde"))
        assert unit is not None
        profile = s.get(orm.KioskProfileRow, unit.id)
        assert profile is not None
        assert [x["label"] for x in profile.shortcuts] == ["Chat", "Ryhmät"]
    shown = page(b.get("/admin/units/paihde"))
    preview = shown[shown.index('id="kiosk-preview"') :]
    preview = preview[: preview.index("</section>")]
    assert preview.index("Chat") < preview.index("Ryhmät") and "Old" not in preview
    assert preview.count("stays in restricted mode") == 1  # chat only: groups go
    # Two saved rows and three empty ones; "Add more rows" adds three, saving nothing.
    assert 'name="rows" value="5"' in shown
    again = good | {"keep-3": "on"}
    more = b.post("/admin/units/paihde/kiosk", {**again, "more": "1"})
    assert more.status_code == 200 and 'name="rows" value="7"' in page(more)
    assert 'value="Old"' in page(more) and 'id="f-label-6"' in page(more)


def test_the_api_lists_and_removes_rule_sets(fleet: Fleet, client: FlaskClient) -> None:
    url, admin_headers = "/api/v1/units/paihde/loan-rules", fleet.headers("admin")
    for model in ("", "Tab X"):
        made = client.put(url, headers=admin_headers, json={"model": model, "loan_days": 40})
        assert made.status_code == 200
    listed = client.get(url, headers=admin_headers)
    assert listed.status_code == 200
    body = listed.get_json()
    assert [(s["model"], s["loan_days"]) for s in body["items"]] == [("", 40), ("Tab X", 40)]
    assert body["models"] == [TABLET_MODEL]
    assert client.get(url, headers=fleet.headers("it_support")).status_code == 403
    gone = client.delete(url, headers=admin_headers, query_string={"model": "Tab X"})
    assert gone.status_code == 204
    assert rule_rows(fleet, "paihde") == {"": 40}
    again = client.delete(url, headers=admin_headers, query_string={"model": "Tab X"})
    assert again.status_code == 404
    (event,) = audited(fleet, "api:loan_rules:delete")
    assert event.before is not None and event.before["model"] == "Tab X"


def test_an_identity_code_in_the_kiosk_editor_is_marked_on_its_row(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = admin(fleet, client)
    rows = (("Chat", "https://chat.example.fi/", "chat"), ("Ryhmä 131052-308T", "", "group"))
    refused = b.post("/admin/units/paihde/kiosk", kiosk_form("fi.esavo.video", rows))
    assert refused.status_code == 422
    text = page(refused)
    assert "Lainaamo stores no personal identity codes." in text
    assert "personal identity code" in error_of(text, "label-1")
    assert 'id="f-label-0-error"' not in text
