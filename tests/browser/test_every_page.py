"""axe-core on every page of the console, for every role that may open it, in all languages.

The pages come from the app's URL map, so a new page without a check here fails this test
(add its sample parameters to SAMPLES, or its endpoint to NOT_PAGES if it is no HTML page).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from a11y import describe, violations
from playwright.sync_api import Page
from support.fleet import Fleet
from test_sign_in import sign_in

from lainaamo.protocol import UsageReport
from server.adapters import orm
from server.adapters.metrics import NullSupportMetrics
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.domain.model import Role
from server.domain.usage import local_day
from server.entrypoints.app import create_app
from server.service_layer import device_commands, loans, support, usage, views
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser

# Endpoints that answer with something other than an HTML page.
NOT_PAGES = {
    "console.static",
    "console.home",  # a redirect
    "console.devices_export",
    "console.devices_live",
    "console.devices_snapshot",
    "console.reports_csv",
    "console.support_state",  # JSON the session page polls
    "console.devices_bulk_progress_json",  # JSON the bulk command's progress page polls
}
ROLES = ("it_support", "counsellor", "admin")


def prepare(fleet: Fleet, role: str) -> dict[str, object]:
    """A loan on loan, a device awaiting wipe and (but for admins) a remote-support session of
    the user's own, so that every page has something to show."""
    with fleet.services.session_factory() as session:
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        admin = session.query(orm.User).filter_by(role="admin").one()
        who, boss = principal_of(counsellor), principal_of(admin)
        unit = counsellor.units[0]
        devices = [d.id for d in session.query(orm.Device).filter_by(unit_id=unit.id)]
    uow, now = fleet.services.uow, fleet.services.clock()
    loans.add_agreement(uow(), boss, "2026-1", "Terms of the loan.")
    lent = loans.request_loan(uow(), who, RequestLoan(unit=unit.code, client_ref="ASK-1"), now)
    loans.act(uow(), who, LoanStep(lent, LoanAction.ASSIGN, device_id=devices[0]), now)
    step = LoanStep(lent, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True)
    loans.act(uow(), who, step, now)
    returned = loans.request_loan(uow(), who, RequestLoan(unit=unit.code, client_ref="ASK-2"), now)
    loans.act(uow(), who, LoanStep(returned, LoanAction.ASSIGN, device_id=devices[1]), now)
    step = LoanStep(
        returned, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
    )
    loans.act(uow(), who, step, now)
    loans.act(uow(), who, LoanStep(returned, LoanAction.RETURN), now + timedelta(days=1))
    waiting = loans.request_loan(uow(), who, RequestLoan(unit=unit.code, client_ref="ASK-3"), now)
    bulk_id, _count = device_commands.issue_bulk(  # the progress page of a bulk command
        uow(), boss, views.DeviceFilter(unit=unit.code), "ring", {}, 600, now, 20
    )
    with fleet.services.session_factory() as session:  # a day's use: the report's usage tables
        day = UsageReport(
            device_id=devices[0],
            ts=now,
            boot=1,
            seq=1,
            day=local_day(now).isoformat(),
            active_s=3600,
            launches={"chat": 2, "other": 1},
            support_s=600,
            final=False,
        )
        usage.ingest_reports(session, [(day, now)], Counter(), Counter())
        session.commit()
    session_id = None
    if role != "admin":
        with fleet.services.session_factory() as session:
            status = session.get(orm.DeviceStatus, devices[0])
            assert status is not None
            status.online, status.last_seen_at = True, now
            user = session.query(orm.User).filter_by(role=role).first()
            caller = principal_of(user)
            session.commit()
        session_id = support.start(
            uow(),
            caller,
            device_id=devices[0],
            mode="view",
            purpose="Help with the tablet",
            settings=fleet.services.settings,
            now=now,
            metrics=NullSupportMetrics(),
        )
    return {
        "session_id": session_id,
        "device_id": devices[1],  # awaiting wipe: the manual-wipe page applies
        "loan_id": {"console.handover": waiting, "console.return_device": lent}.get,
        "default_loan": lent,
        "user_id": counsellor.id,
        "code": unit.code,
        "segment": "lost",  # a step's confirmation page (the loan is on loan)
        "bulk_id": bulk_id,
    }


def urls(fleet: Fleet, role: str, samples: dict[str, object]) -> list[str]:
    app = create_app(fleet.services)
    found = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            endpoint = rule.endpoint
            if not endpoint.startswith("console.") or endpoint in NOT_PAGES:
                continue
            if "GET" not in (rule.methods or ()):
                continue
            allowed = getattr(app.view_functions[endpoint], "allowed_roles", tuple(Role))
            if Role(role) not in allowed:
                continue
            values: dict[str, object] = {}
            if "session_id" in rule.arguments and samples["session_id"] is None:
                continue  # administrators hold no remote-support sessions
            for name in rule.arguments:
                if name == "loan_id":
                    picker = samples["loan_id"]
                    assert callable(picker)
                    values[name] = picker(endpoint) or samples["default_loan"]
                else:
                    assert name in samples, f"add a sample {name} for {endpoint} to this test"
                    values[name] = samples[name]
            found.append(url_for(endpoint, **values))
    return sorted(found)


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
