"""Remote groups (issue 20 part 3): a counsellor schedules a group session for clients on loan
(their tablets get its meetings in their desired state, never its title), lists, reads,
changes and cancels it, and rings a participant's tablet; an administrator sets a unit's
video-service link. Reading a group is audited: its participants are clients."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from server.domain.group_commands import ChangeGroup, ScheduleGroup
from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.groups import (
    GroupChange,
    GroupCreate,
    GroupDetail,
    GroupLink,
    GroupLinkSet,
    GroupList,
    GroupRing,
    NoGroupQuery,
    Rung,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import groups

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)
ERRORS = (401, 403, 404, 409, 415, 422)


def group_detail(group_id: int) -> dict[str, Any]:
    svc = services()
    view = groups.page(svc.uow(), current(), group_id, svc.clock(), svc.settings)
    return groups.group_json(view)


class Groups(MethodView):
    @roles(*ANYONE)
    @endpoint("listGroups", {200: (GroupList, "Upcoming groups")}, (401, 403, 422))
    def get(self, query: NoGroupQuery) -> dict[str, Any]:
        """The groups of the caller's units (and those they scheduled) that meet again,
        soonest first (reading is audited)"""
        svc = services()
        found = groups.upcoming(svc.uow(), current(), svc.clock())
        return {"items": [groups.summary_json(s) for s in found]}

    @roles(*ANYONE)
    @endpoint("scheduleGroup", {201: (GroupDetail, "Scheduled")}, ERRORS)
    def post(self, json: GroupCreate) -> tuple[dict[str, Any], int]:
        """Schedule a group session (once or weekly) for clients on loan; their tablets get
        its meetings (when and where to join, never the title)"""
        svc = services()
        cmd = ScheduleGroup(
            unit=json.unit,
            title=json.title,
            day=json.date,
            clock=json.time,
            minutes=json.minutes,
            participants=tuple(json.participants),
            weekly=json.weekly,
            until=json.until,
            join_url=json.join_url,
        )
        group_id = groups.schedule(svc.uow(), current(), cmd, svc.clock())
        return group_detail(group_id), 201


bp.add_url_rule("/groups", view_func=Groups.as_view("groups"))


class Group(MethodView):
    """GET, PATCH and DELETE of one group as one URL rule (as api/notes.py)."""

    @roles(*ANYONE)
    @endpoint("getGroup", {200: (GroupDetail, "The group")}, (401, 403, 404, 422))
    def get(self, group_id: int, query: NoGroupQuery) -> dict[str, Any]:
        """A group: its next meetings, each participant's tablet readiness and attendance
        (reading is audited)"""
        return group_detail(group_id)

    @roles(*ANYONE)
    @endpoint("changeGroup", {200: (GroupDetail, "Changed")}, ERRORS)
    def patch(self, group_id: int, json: GroupChange) -> dict[str, Any]:
        """Change a group's time, length, repeat, link or participants; the tablets follow"""
        svc = services()
        cmd = ChangeGroup(
            group_id=group_id,
            title=json.title,
            day=json.date,
            clock=json.time,
            minutes=json.minutes,
            weekly=json.weekly,
            until=json.until,
            join_url=json.join_url,
            participants=tuple(json.participants) if json.participants is not None else None,
        )
        groups.change(svc.uow(), current(), cmd, svc.clock())
        return group_detail(group_id)

    @roles(*ANYONE)
    @endpoint("cancelGroup", {204: (None, "Cancelled")}, (401, 403, 404, 409))
    def delete(self, group_id: int) -> tuple[str, int]:
        """Cancel a group: its meetings leave the participants' tablets"""
        svc = services()
        groups.cancel(svc.uow(), current(), group_id, svc.clock())
        return "", 204


bp.add_url_rule("/groups/<int:group_id>", view_func=Group.as_view("group"))


@bp.post("/groups/<int:group_id>/ring")
@roles(*ANYONE)
@endpoint("ringGroupParticipant", {201: (Rung, "The ring command, queued")}, ERRORS)
def ring_participant(group_id: int, json: GroupRing) -> tuple[dict[str, Any], int]:
    """Ring a participant's tablet (a client who has not joined): the `ring` command"""
    svc = services()
    cmd_id = groups.ring(svc.uow(), current(), group_id, json.loan_id, svc.clock())
    return {"cmd_id": cmd_id}, 201


@bp.put("/units/<unit_code>/group-link")
@roles(Role.ADMIN)
@endpoint("setGroupLink", {200: (GroupLinkSet, "The link in effect")}, (401, 403, 404, 415, 422))
def set_group_link(unit_code: str, json: GroupLink) -> dict[str, Any]:
    """Set (or with null clear) a unit's video-service meeting link, the default of its groups
    (administrators; audited); the participants' tablets get it"""
    svc = services()
    url = json.join_url or None
    changed = groups.set_unit_link(svc.uow(), current(), unit_code, url, svc.clock())
    return {"unit": unit_code, "group_join_url": url, "devices_updated": changed}
