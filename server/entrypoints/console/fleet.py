"""IT support's fleet overview: problem tiles, filters, search, sorting, paging, state counts
and the CSV export.

Live updates are in `fleet_live`, the import in `fleet_upload`, actions on selected devices
in `fleet_bulk`; importing this module imports them (and so adds their views to the
blueprint).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from flask import Response, request, url_for
from werkzeug.datastructures import MultiDict

from lainaamo.errors import InvalidInput
from server.domain.fleet_triage import Problem
from server.domain.model import LifecycleState, Role
from server.entrypoints.console import (  # noqa: F401 (views on import)
    fleet_bulk,
    fleet_live,
    fleet_upload,
)
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import principal, render, roles
from server.entrypoints.console.fleet_view import (
    FIELDS,
    Formatter,
    columns,
    problem_labels,
    state_labels,
)
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.web.context import services
from server.service_layer import fleet_console, spreadsheet, views
from server.service_layer.fleet_console import EXPORT_COLUMNS, FleetFilter, Sort, Triage

FILTER_KEYS = ("q", "unit", "state", "online", "low_battery", "drift", "staff_locked", "problem")
SORT_KEYS = ("sort", "dir")


def parse_sort(args: MultiDict[str, str]) -> tuple[Sort, dict[str, str]]:
    """The sort column and direction, and the non-default ones (for links)."""
    column = args.get("sort", "").strip() or "id"
    descending = args.get("dir", "").strip() == "desc"
    sort = Sort(column, descending)  # InvalidInput for an unknown column
    kept = {"sort": column} if column != "id" else {}
    return sort, kept | ({"dir": "desc"} if descending else {})


def parse_filters(
    args: MultiDict[str, str], triage: Triage | None = None
) -> tuple[FleetFilter, dict[str, str]]:
    """The filter form's values as a FleetFilter, and the non-empty ones (for links)."""
    kept = {k: args.get(k, "").strip() for k in FILTER_KEYS if args.get(k, "").strip()}
    state = kept.get("state")
    try:
        states = (LifecycleState(state),) if state else ()
    except ValueError:
        raise InvalidInput(
            _("Unknown lifecycle state."), [{"field": "state", "message": _("Choose a state.")}]
        ) from None
    try:
        problem = Problem(kept["problem"]) if "problem" in kept else None
    except ValueError:
        raise InvalidInput(
            _("Unknown problem."), [{"field": "problem", "message": _("Choose a problem.")}]
        ) from None
    online = {"online": True, "offline": False}.get(kept.get("online", ""))
    flt = FleetFilter(
        base=views.DeviceFilter(
            unit=kept.get("unit"),
            states=states,
            online=online,
            low_battery=True if kept.get("low_battery") == "1" else None,
            staff_locked=True if kept.get("staff_locked") == "1" else None,
        ),
        search=kept.get("q", "")[: fleet_console.SEARCH_MAX],
        drift=True if kept.get("drift") == "1" else None,
        problem=problem,
        triage=triage,
    )
    return flt, kept


@bp.get("/devices")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices() -> tuple[str, int]:
    svc = services()
    settings, now = svc.settings, svc.clock()
    flt, kept = parse_filters(request.args, Triage.of(now, settings))
    sort, order = parse_sort(request.args)
    fmt = Formatter.current()
    cursor = request.args.get("cursor") or None
    page = fleet_console.overview(
        svc.uow(), principal(), flt, cursor=cursor, now=now, settings=settings, sort=sort
    )
    listing = {**kept, **order}
    return render(
        "fleet/index.html",
        rows=[(d, fmt.cells(d.facts)) for d in page.devices],
        fields=FIELDS,
        total=page.total,
        counts=page.counts,
        states=state_labels(),
        problems=[(p, label, page.problems.get(p, 0)) for p, label in problem_labels().items()],
        problem_label=problem_labels().get(flt.problem) if flt.problem else None,
        without_problem=_url(
            "console.devices", {k: v for k, v in listing.items() if k != "problem"}
        ),
        columns=columns(sort, kept),
        units=page.units,
        filters=kept,
        order=order,
        fmt=fmt,
        page_url=request.full_path,
        next_url=_url("console.devices", {**listing, "cursor": page.next_cursor})
        if page.next_cursor
        else "",
        first_url=_url("console.devices", listing) if cursor else "",
        export_url=_url("console.devices_export", kept),
        live_url=url_for("console.devices_live"),
        snapshot_url=url_for("console.devices_snapshot"),
        low_battery_pct=settings.low_battery_pct,
    )


@bp.get("/devices.csv")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_export() -> Response:
    svc = services()
    flt, kept = parse_filters(request.args, Triage.of(svc.clock(), svc.settings))
    settings = svc.settings
    who = principal()
    fleet_console.start_export(svc.uow(), who, flt, kept, settings.low_battery_pct)
    rows = fleet_console.export_rows(
        svc.uow(),
        who,
        flt,
        now=svc.clock(),
        low_battery_pct=settings.low_battery_pct,
        stale_factor=settings.offline_grace_factor,
    )
    stamp = svc.clock().strftime("%Y%m%d-%H%M")
    return Response(
        _csv_lines(rows),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="devices-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _url(endpoint: str, values: dict[str, str]) -> str:
    return url_for(endpoint, **values)  # type: ignore[arg-type]


def _csv_lines(rows: Iterator[list[str]]) -> Iterator[str]:
    """The export's CSV a few hundred rows at a time (memory stays flat for any fleet size)."""
    return spreadsheet.csv_lines(itertools.chain([EXPORT_COLUMNS], rows))
