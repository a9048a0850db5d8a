"""Loan routes: request, list, detail, every lifecycle step, queues, the worklist, rules."""

from __future__ import annotations

from typing import Any

from lainaamo.errors import InvalidInput
from server.domain.loan_commands import RequestLoan, free_text
from server.domain.loans import LoanAction, LoanRules, LoanState
from server.domain.model import Role, check_text
from server.domain.policy import KioskProfile
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.input_guard import INT_MAX
from server.entrypoints.web.context import services
from server.entrypoints.web.loan_input import STEPS, parse_step
from server.service_layer import loan_views, loans

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)


def _optional_body() -> dict[str, Any]:
    from flask import request

    return params.json_object() if request.get_data() else {}


def loan_detail(loan_id: int) -> dict[str, Any]:
    """A loan as the API shows it; reading it is audited (client-related data)."""
    return loan_views.read_loan(services().uow(), current(), loan_id, services().clock())


@bp.post("/loans")
@roles(*ANYONE)
def request_loan() -> tuple[dict[str, Any], int, dict[str, str]]:
    body = params.json_object()
    people = body.get("professionals", [])
    if not isinstance(people, list) or not all(isinstance(p, str) for p in people):
        raise InvalidInput(
            "invalid professionals", [{"field": "professionals", "message": "user names"}]
        )
    fields = params.fields(
        {k: v for k, v in body.items() if k != "professionals"}, {"unit", "client_ref"}, set()
    )
    cmd = RequestLoan(fields["unit"], fields["client_ref"], tuple(people))
    loan_id = loans.request_loan(services().uow(), current(), cmd, services().clock())
    return loan_detail(loan_id), 201, {"Location": f"/api/v1/loans/{loan_id}"}


@bp.get("/loans")
@roles(*ANYONE)
def list_loans() -> dict[str, Any]:
    q = params.query({"unit", "state", "overdue", "limit", "cursor"})
    states = [s for s in (q.get("state") or "").split(",") if s]
    if set(states) - {s.value for s in LoanState}:
        raise InvalidInput(
            "invalid state",
            [{"field": "state", "message": ", ".join(s.value for s in LoanState)}],
        )
    limit = params.integer(q, "limit", 100, 1, 500)
    after = params.integer(q, "cursor", 0, 0, INT_MAX) if "cursor" in q else None
    items, next_after = loan_views.read_loans(
        services().uow(),
        current(),
        unit=q.get("unit"),
        states=states,
        overdue=params.boolean(q, "overdue"),
        now=services().clock(),
        limit=limit,
        after_id=after,
        query=dict(q),
    )
    return {"items": items, "next_cursor": str(next_after) if next_after else None}


@bp.get("/loans/<int:loan_id>")
@roles(*ANYONE)
def get_loan(loan_id: int) -> dict[str, Any]:
    return loan_detail(loan_id)


def make_step(segment: str, action: LoanAction) -> None:
    def step(loan_id: int) -> dict[str, Any]:
        parsed = parse_step(loan_id, action, _optional_body())
        loans.act(services().uow(), current(), parsed, services().clock())
        return loan_detail(loan_id)

    step.__name__ = f"loan_{segment}"
    bp.post(f"/loans/<int:loan_id>/{segment}")(roles(*ANYONE)(step))


for _segment, _action in STEPS.items():
    make_step(_segment, _action)


@bp.post("/loans/<int:loan_id>/hold")
@roles(*ANYONE)
def hold_loan(loan_id: int) -> dict[str, Any]:
    body = params.json_object()
    if set(body) - {"hold", "reason"} or not isinstance(body.get("hold"), bool):
        raise InvalidInput(
            "send {hold: true|false, reason}", [{"field": "hold", "message": "true or false"}]
        )
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("invalid reason", [{"field": "reason", "message": "a string"}])
    loans.set_hold(
        services().uow(),
        current(),
        loan_id,
        body["hold"],
        free_text("reason", reason),
        services().clock(),
    )
    return loan_detail(loan_id)


@bp.get("/worklist")
@roles(*ANYONE)
def get_worklist() -> dict[str, Any]:
    params.query(set())
    items = loan_views.read_worklist(services().uow(), current(), services().clock())
    return {"items": items}


@bp.post("/devices/<device_id>/wipes")
@roles(Role.IT_SUPPORT)
def record_wipe(device_id: str) -> tuple[dict[str, Any], int]:
    body = params.fields(params.json_object(), {"method"}, {"reason"})
    loans.record_wipe(
        services().uow(),
        current(),
        device_id,
        body["method"],
        body.get("reason"),
        services().clock(),
    )
    return {"device_id": device_id, "lifecycle_state": "in_stock"}, 201


@bp.post("/agreements")
@roles(Role.ADMIN)
def add_agreement() -> tuple[dict[str, Any], int]:
    body = params.fields(params.json_object(), {"version", "text"}, set())
    loans.add_agreement(services().uow(), current(), body["version"].strip()[:40], body["text"])
    return {"version": body["version"].strip()[:40]}, 201


@bp.put("/units/<unit_code>/kiosk-profile")
@roles(Role.ADMIN, Role.IT_SUPPORT)
def set_kiosk_profile(unit_code: str) -> dict[str, Any]:
    body = params.json_object()
    apps, shortcuts = body.get("apps", []), body.get("shortcuts", [])
    locked = body.get("settings_locked", True)
    if (
        set(body) - {"apps", "shortcuts", "settings_locked"}
        or not isinstance(apps, list)
        or not isinstance(shortcuts, list)
        or not isinstance(locked, bool)
        or not all(isinstance(s, dict) for s in shortcuts)
    ):
        raise InvalidInput(
            "send {apps: [...], shortcuts: [{label, url, category}], settings_locked}",
            [{"field": "body", "message": "see the OpenAPI document"}],
        )
    profile = KioskProfile(tuple(apps), tuple(shortcuts), locked)
    changed = loans.set_kiosk_profile(
        services().uow(), current(), unit_code, profile, services().clock()
    )
    return {"unit": unit_code, **profile.as_policy(), "devices_updated": changed}


@bp.put("/units/<unit_code>/loan-rules")
@roles(Role.ADMIN)
def set_loan_rules(unit_code: str) -> dict[str, Any]:
    body = params.json_object()
    model = body.pop("model", "")
    names = set(LoanRules.__dataclass_fields__)
    if (
        not isinstance(model, str)
        or set(body) - names
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in body.values())
    ):
        raise InvalidInput(
            "invalid loan rules",
            [{"field": "body", "message": f"integers among {sorted(names)}, and model"}],
        )
    model = check_text("model", model, max_len=100, required=False)
    rules = LoanRules(**body)
    loans.set_rules(services().uow(), current(), unit_code, model, rules)
    return {"unit": unit_code, "model": model, **{k: getattr(rules, k) for k in sorted(names)}}
