"""Every page of the console, for every role that may open it: the pages come from the app's
URL map with sample parameters, so a new page without a sample fails the tests that use this
(add its sample parameters to `prepare`, or its endpoint to NOT_PAGES if it is no HTML page).

`prepare` seeds what makes every page show something: a loan on loan, a returned loan whose
tablet awaits its wipe, a waiting request, a day's usage and (but for admins) a remote-support
session of the user's own.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from lainaamo.protocol import UsageReport
from server.adapters import orm
from server.adapters.metrics import NullSupportMetrics
from server.domain.commands import CreateDevice
from server.domain.device_commands import CommandState
from server.domain.keep_device import ProposeKeep
from server.domain.loan_commands import KitLine, LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.domain.model import Principal, Role
from server.domain.usage import local_day
from server.entrypoints.app import create_app
from server.service_layer import (
    device_commands,
    devices,
    keep_device,
    loans,
    overdue,
    support,
    usage,
    views,
)
from server.service_layer.accounts import principal_of
from support.fleet import Fleet

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
    # The sign-in's second step: a redirect once signed in (its form, in every language, is
    # opened by test_second_factor and tests/browser/test_second_factor_journey.py).
    "console.login_second_factor",
    # Single sign-on's ways out to the identity provider and back: redirects, not pages
    # (tests/browser/test_sso_journey.py follows them through a real provider).
    "console.sso_start",
    "console.sso_callback",
    "console.signed_out",
}
ROLES = ("it_support", "counsellor", "admin")


def prepare(fleet: Fleet, role: str) -> dict[str, object]:
    """A loan on loan, a returned loan with its kit found damaged and missing (its tablet awaits
    its wipe), a waiting request, a loan the scheduler noticed overdue, commands in every state,
    a day's use and (but for admins) a remote-support session of the user's own, so that every
    page has something to show."""
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
        returned,
        LoanAction.HAND_OVER,
        agreement_version="2026-1",
        agreement_accepted=True,
        kit=(KitLine("charger"), KitLine("case")),
    )
    loans.act(uow(), who, step, now)
    with fleet.services.session_factory() as session:
        kit = [item.id for item in session.query(orm.KitItem).filter_by(loan_id=returned)]
    found = {kit[0]: "damaged", kit[1]: "missing"}
    loans.return_checked(uow(), who, returned, "ok", found, "Kotikäynti", now + timedelta(days=1))
    late = loans.request_loan(uow(), who, RequestLoan(unit=unit.code, client_ref="ASK-4"), now)
    loans.act(uow(), who, LoanStep(late, LoanAction.ASSIGN, device_id=devices[2]), now)
    step = LoanStep(late, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True)
    loans.act(uow(), who, step, now - timedelta(days=200))
    overdue.notice(uow(), now)  # the scheduler notices it overdue
    bulk_id, _count = device_commands.issue_bulk(  # the progress page of a bulk command
        uow(), boss, views.DeviceFilter(unit=unit.code), "ring", {}, 600, now, 20
    )
    with fleet.services.session_factory() as session:  # commands in every state and outcome
        for number, state in enumerate(CommandState):
            session.add(
                orm.CommandRow(
                    id=f"cmd-sample-{number:04d}",
                    organisation_id=counsellor.organisation_id,
                    device_id=devices[0],
                    name=("lock", "message", "ring", "sync")[number % 4],
                    args={"text": "Soita ohjaajalle"} if number % 4 == 1 else {},
                    state=state.value,
                    created_at=now - timedelta(minutes=number),
                    created_by=f"user:{counsellor.id}:{counsellor.username}",
                    expires_at=now + timedelta(minutes=10),
                )
            )
        session.commit()
    waiting = loans.request_loan(uow(), who, RequestLoan(unit=unit.code, client_ref="ASK-3"), now)
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
            purpose="Sovellusten päivitys",
            settings=fleet.services.settings,
            now=now,
            metrics=NullSupportMetrics(),
        )
    released = released_to_client(fleet, who, unit.code)
    return {
        "session_id": session_id,
        "device_id": devices[1],  # awaiting wipe: the manual-wipe page applies
        "loan_id": {
            "console.handover": waiting,
            "console.return_device": lent,
            "console.return_receipt": returned,  # a receipt exists once the loan is returned
            "console.transfer_document": released,  # once the client kept the device
        }.get,
        "default_loan": lent,
        "user_id": counsellor.id,
        "code": unit.code,
        "segment": "lost",  # a step's confirmation page (the loan is on loan)
        "bulk_id": bulk_id,
    }


def released_to_client(fleet: Fleet, who: Principal, unit_code: str) -> int:
    """A loan whose client keeps the device: proposed, approved by IT support (released)."""
    uow, now = fleet.services.uow, fleet.services.clock()
    with fleet.services.session_factory() as session:
        it = principal_of(session.query(orm.User).filter_by(role="it_support").one())
    new = CreateDevice("tab-kept", "KEPT-1", unit=unit_code, serial="R9KEPT", model="Tab A")
    devices.create_device(uow(), it, new)
    kept = loans.request_loan(uow(), who, RequestLoan(unit=unit_code, client_ref="ASK-5"), now)
    assign = LoanStep(kept, LoanAction.ASSIGN, device_id="tab-kept", skip_reason="kept")
    loans.act(uow(), who, assign, now)
    step = LoanStep(kept, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True)
    loans.act(uow(), who, step, now)
    keep_device.propose(uow(), who, ProposeKeep(kept, "Jatkaa etäpalvelussa"), now)
    keep_device.approve(uow(), it, kept, "tab-kept", now)
    return kept


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


_prepare_without_groups = prepare


def prepare(fleet: Fleet, role: str) -> dict[str, object]:  # type: ignore[no-redef]
    """`prepare`, with a weekly remote group of the loan on loan (issue 20 part 3) that met a
    week ago (its attendance) and meets again: the group pages' `group_id`."""
    samples = _prepare_without_groups(fleet, role)
    now = fleet.services.clock()
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, samples["default_loan"])
        assert loan is not None
        group = orm.GroupSession(
            organisation_id=loan.organisation_id,
            unit_id=loan.unit_id,
            title="Olohuoneryhmä",
            starts_at=now - timedelta(days=7) + timedelta(hours=1),
            minutes=60,
            weekly=True,
            join_url="https://meet.example.fi/olohuone",
            participants=[loan],
        )
        session.add(group)
        session.commit()
        samples["group_id"] = group.id
    return samples
