"""IT support's fleet overview: filters, search, paging, state counts and the CSV export.

Live updates are in `fleet_live`, the import in `fleet_upload`; both are registered here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from flask import Blueprint, Response, request, url_for
from werkzeug.datastructures import MultiDict

from lainaamo.errors import InvalidInput
from server.domain.model import LifecycleState, Role
from server.entrypoints.console import fleet_live, fleet_upload
from server.entrypoints.console.core import principal, render, roles
from server.entrypoints.console.fleet_view import FIELDS, Formatter, state_labels
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.web.context import services
from server.service_layer import fleet_console, spreadsheet, views
from server.service_layer.fleet_console import EXPORT_COLUMNS, FleetFilter

FILTER_KEYS = ("q", "unit", "state", "online", "low_battery", "drift", "staff_locked")


def parse_filters(args: MultiDict[str, str]) -> tuple[FleetFilter, dict[str, str]]:
    """The filter form's values as a FleetFilter, and the non-empty ones (for links)."""
    kept = {k: args.get(k, "").strip() for k in FILTER_KEYS if args.get(k, "").strip()}
    state = kept.get("state")
    try:
        states = (LifecycleState(state),) if state else ()
    except ValueError:
        raise InvalidInput(
            _("Unknown lifecycle state."), [{"field": "state", "message": _("Choose a state.")}]
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
    )
    return flt, kept


def register(bp: Blueprint) -> None:
    @bp.get("/devices")
    @roles(Role.IT_SUPPORT, Role.ADMIN)
    def devices() -> tuple[str, int]:
        flt, kept = parse_filters(request.args)
        svc = services()
        settings = svc.settings
        fmt = Formatter.current()
        cursor = request.args.get("cursor") or None
        with svc.session_factory() as session:
            page, next_cursor, total = fleet_console.list_page(
                session,
                principal(),
                flt,
                cursor=cursor,
                low_battery_pct=settings.low_battery_pct,
            )
            now = svc.clock()
            rows = [
                (
                    d,
                    fmt.cells(
                        fleet_console.facts(
                            d, now, settings.low_battery_pct, settings.offline_grace_factor
                        )
                    ),
                )
                for d in page
            ]
            counts = fleet_console.state_counts(session, principal())
            units = fleet_console.units(session, principal())
        return render(
            "fleet/index.html",
            rows=rows,
            fields=FIELDS,
            total=total,
            counts=counts,
            states=state_labels(),
            units=units,
            filters=kept,
            fmt=fmt,
            next_url=_url("console.devices", {**kept, "cursor": next_cursor or ""})
            if next_cursor
            else "",
            first_url=_url("console.devices", kept) if cursor else "",
            export_url=_url("console.devices_export", kept),
            live_url=url_for("console.devices_live"),
            snapshot_url=url_for("console.devices_snapshot"),
            low_battery_pct=settings.low_battery_pct,
        )

    @bp.get("/devices.csv")
    @roles(Role.IT_SUPPORT, Role.ADMIN)
    def devices_export() -> Response:
        flt, kept = parse_filters(request.args)
        svc = services()
        settings = svc.settings
        who = principal()
        with svc.session_factory() as session:
            total = fleet_console.count(session, who, flt, settings.low_battery_pct)
        fleet_console.record_export(svc.uow(), who, kept, total)
        rows = fleet_console.export_rows(
            svc.session_factory,
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

    fleet_live.register(bp)
    fleet_upload.register(bp)


def _url(endpoint: str, values: dict[str, str]) -> str:
    return url_for(endpoint, **values)  # type: ignore[arg-type]


def _csv_lines(rows: Iterator[list[str]]) -> Iterator[str]:
    """The export's CSV a few hundred rows at a time (memory stays flat for any fleet size)."""
    return spreadsheet.csv_lines(itertools.chain([EXPORT_COLUMNS], rows))
