"""Remote groups (issue 20 part 3): the list of upcoming groups, the schedule form (clients on
loan as checkboxes), the facilitator's page (next meetings, each participant's tablet
readiness, checked 30 and 5 minutes before the start, attendance of past meetings, a button
to ring a tablet) and cancelling with a confirmation. The handlers are service_layer/groups.py;
the tablet gets only when and where to join, never the title."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import Conflict, DomainError
from server.domain.group_commands import ScheduleGroup
from server.domain.groups import MAX_MINUTES, MAX_TITLE, MIN_MINUTES
from server.domain.model import Role
from server.entrypoints.console import admin as admin_pages
from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _
from server.entrypoints.input_guard import INT_MAX, whole_number
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import groups

FIELDS = {
    "title": lambda: _("A neutral title, for staff only: at most 80 characters, no names."),
    "date": lambda: _("Give the date and a time that is not yet past."),
    "time": lambda: _("Give the time as HH:MM."),
    "minutes": lambda: _("From 15 to 240 minutes."),
    "until": lambda: _("A weekly group's last day, on or after the first meeting."),
    "join_url": lambda: _("An https link of the video service; the unit has none set."),
    "group_join_url": lambda: _("An https link of the video service, at most 500 characters."),
    "participants": lambda: _("Choose 1–30 clients on loan."),
    "unit": lambda: _("Choose one of your units."),
}


@bp.app_template_global()
def unit_group_link(code: str) -> str | None:
    """A unit's video-service join link, for the admin's unit page (console/admin.py saves it
    through `groups.set_unit_link`)."""
    return groups.unit_link(services().uow(), core.principal(), code)


@bp.post("/admin/units/<code>/group-link")
@core.roles(Role.ADMIN)
def unit_group_link_save(code: str) -> Any:
    """The admin's unit page's section: set or clear the unit's video-service join link."""
    svc = services()
    link = request.form.get("group_join_url", "").strip() or None
    try:
        groups.set_unit_link(svc.uow(), core.principal(), code, link, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        errors = {"group_join_url": FIELDS["join_url"]()} if core.form_error(exc) else {}
        return admin_pages._unit_page(code, http_status(exc), errors)
    flash(_("The unit's group link was saved."), "info")
    return redirect(url_for("console.unit_detail", code=code, _anchor="group-link-heading"), 303)


@bp.get("/groups", endpoint="groups")
def groups_page() -> tuple[str, int]:
    """The upcoming groups of the user's units, soonest first (reading is audited)."""
    svc = services()
    found = groups.upcoming(svc.uow(), core.principal(), svc.clock())
    return core.render("groups/list.html", groups=found)


def _form_page(status: int = 200, errors: dict[str, str] | None = None) -> tuple[str, int]:
    svc = services()
    units = groups.unit_choices(svc.uow(), core.principal())
    loans = groups.loan_choices(svc.uow(), core.principal())
    chosen = {n for v in request.form.getlist("participants") if (n := _id(v)) is not None}
    return core.render(
        "groups/new.html",
        status,
        units=units,
        loans=loans,
        chosen=chosen,
        form=request.form,
        errors=errors or {},
        limits={"title": MAX_TITLE, "min": MIN_MINUTES, "max": MAX_MINUTES},
    )


@bp.get("/groups/new", endpoint="group_new")
def group_new() -> tuple[str, int]:
    """The schedule form: the clients on loan the user sees (reading is audited)."""
    return _form_page()


def _minutes(value: str) -> int:
    return whole_number(value.strip(), 0, INT_MAX) or 0


def _id(value: str) -> int | None:
    """A row id from a form: plain ASCII digits that fit the column (else None: ignored)."""
    return whole_number(value, 1, INT_MAX)


@bp.post("/groups/new")
def group_schedule() -> tuple[str, int] | BaseResponse:
    """Schedule the group; its participants' tablets get its meetings."""
    svc, form = services(), request.form
    try:
        cmd = ScheduleGroup(
            unit=form.get("unit", ""),
            title=form.get("title", ""),
            day=form.get("date", ""),
            clock=form.get("time", ""),
            minutes=_minutes(form.get("minutes", "")),
            participants=tuple(n for v in form.getlist("participants") if (n := _id(v))),
            weekly=form.get("weekly") == "yes",
            until=form.get("until", "") if form.get("weekly") == "yes" else "",
            join_url=form.get("join_url", ""),
        )
        group_id = groups.schedule(svc.uow(), core.principal(), cmd, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            exc_errors = {"unit": FIELDS["unit"]()}
            flash(_("Check the marked fields."), "error")
            return _form_page(422, exc_errors)
        errors = core.form_error(exc)
        return _form_page(
            http_status(exc), {k: FIELDS[k]() if k in FIELDS else v for k, v in errors.items()}
        )
    flash(_("The group was scheduled: the participants' tablets show it."), "info")
    return redirect(url_for("console.group", group_id=group_id), 303)


def _page(group_id: int, status: int = 200) -> tuple[str, int]:
    svc = services()
    view = groups.page(svc.uow(), core.principal(), group_id, svc.clock(), svc.settings)
    return core.render("groups/detail.html", status, group=view)


@bp.get("/groups/<int:group_id>", endpoint="group")
def group_page(group_id: int) -> tuple[str, int]:
    """The facilitator's page (reading is audited)."""
    return _page(group_id)


@bp.post("/groups/<int:group_id>/ring")
def group_ring(group_id: int) -> Any:
    """Ring a participant's tablet."""
    svc = services()
    loan = request.form.get("loan_id", "")
    try:
        groups.ring(svc.uow(), core.principal(), group_id, _id(loan) or 0, svc.clock())
    except Conflict:
        flash(_("This client's loan holds no tablet to ring."), "error")
        return _page(group_id, 409)
    flash(_("The tablet rings as soon as it is online."), "info")
    return redirect(url_for("console.group", group_id=group_id, _anchor="participants"), 303)


# One rule for the page and its form (two rules of one path answer a too large id with 405
# instead of 404: werkzeug checks the method before the converter's bound).
@bp.route("/groups/<int:group_id>/cancel", methods=["GET", "POST"])
def group_cancel(group_id: int) -> Any:
    """Ask before cancelling (the meetings leave the participants' tablets); cancel once the
    confirmation is ticked."""
    svc = services()
    if request.method == "GET":
        view = groups.page(svc.uow(), core.principal(), group_id, svc.clock(), svc.settings)
        return core.render("groups/cancel.html", group=view, errors={})
    if request.form.get("confirm") != "yes":
        view = groups.page(svc.uow(), core.principal(), group_id, svc.clock(), svc.settings)
        errors = {"confirm": _("Tick the box to confirm.")}
        return core.render("groups/cancel.html", 422, group=view, errors=errors)
    try:
        groups.cancel(svc.uow(), core.principal(), group_id, svc.clock())
    except Conflict:
        flash(_("The group was already cancelled."), "error")
        return redirect(url_for("console.group", group_id=group_id), 303)
    flash(_("The group was cancelled: it left the participants' tablets."), "info")
    return redirect(url_for("console.groups"), 303)
