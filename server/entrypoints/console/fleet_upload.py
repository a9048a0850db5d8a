"""Importing devices from CSV: a plain upload form, and JSON endpoints for the progress bar.

Without JavaScript the whole file is imported in one transaction or not at all, and the
page lists every problem. With JavaScript (`fleet.js`) the browser sends the file for a dry
run first, then imports it in chunks and shows the progress; see `service_layer.fleet_import`
for what that means for atomicity.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, InvalidInput
from server.domain.model import Role
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import principal, render, roles
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.console.i18n import ngettext
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import fleet_import
from server.service_layer.devices import CSV_COLUMNS, MAX_IMPORT_ROWS
from server.service_layer.fleet_console import EXPORT_ONLY


def _page(status: int = 200, errors: list[dict[str, object]] | None = None) -> tuple[str, int]:
    return render(
        "fleet/import.html",
        status,
        columns=CSV_COLUMNS,
        export_only=EXPORT_ONLY,
        max_rows=MAX_IMPORT_ROWS,
        chunk_rows=fleet_import.CHUNK_ROWS,
        errors=errors or [],
    )


def for_people(errors: list[dict[str, object]]) -> list[dict[str, object]]:
    """The import's problems with the ones the import explains by `code` in the user's
    language (an unknown unit lists the valid ones; an unreadable encoding says what to do)."""
    shown = []
    for e in errors:
        if e.get("code") == "unknown_unit":
            units = e.get("units")
            listed = ", ".join(str(u) for u in units) if isinstance(units, list) else ""
            message = _(
                "There is no unit “%(value)s”. Give a unit's code or name: %(units)s.",
                value=str(e.get("value", "")),
                units=listed,
            )
            e = {**e, "message": message}
        elif e.get("code") == "encoding":
            message = _("The file is not UTF-8 text: save it from Excel as “CSV UTF-8”.")
            e = {**e, "message": message}
        shown.append(e)
    return shown


def _json(body: dict[str, Any], status: int) -> tuple[Response, int]:
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, status


def _json_error(exc: DomainError) -> tuple[Response, int]:
    details = for_people(exc.errors) if isinstance(exc, InvalidInput) else []
    return _json(
        {
            "error": {
                "status": http_status(exc),
                "code": exc.code,
                "message": str(exc),
                "details": details,
            }
        },
        http_status(exc),
    )


def _body_text() -> str:
    """The CSV of a JSON-side request: the raw body (text/csv)."""
    return fleet_import.decode(request.get_data(cache=False))


@bp.get("/devices/import")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_import() -> tuple[str, int]:
    return _page()


@bp.post("/devices/import")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_import_upload() -> BaseResponse | tuple[str, int]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a CSV file to import."), "error")
        return _page(422)
    try:
        text = fleet_import.decode(upload.read())
        created = fleet_import.import_chunk(services().uow(), principal(), text, 2)
    except InvalidInput as exc:
        flash(_("Nothing was imported: fix the problems below and try again."), "error")
        errors = exc.errors or [{"row": None, "field": None, "message": str(exc)}]
        return _page(422, for_people(errors))
    except DomainError as exc:
        flash(_("Nothing was imported: %(reason)s", reason=str(exc)), "error")
        return _page(http_status(exc))
    flash(ngettext("%(num)s device imported.", "%(num)s devices imported.", created), "ok")
    return redirect(url_for("console.devices"))


@bp.post("/devices/import/validate")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_import_validate() -> tuple[Response, int]:
    try:
        check = fleet_import.validate_import(services().uow(), principal(), _body_text())
    except DomainError as exc:
        return _json_error(exc)
    errors = for_people(check.errors)
    return _json({"rows": check.rows, "errors": errors, "ok": not check.errors}, 200)


@bp.post("/devices/import/chunk")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_import_chunk() -> tuple[Response, int]:
    try:
        first_row = int(request.args.get("first_row", "2"))
    except ValueError:
        first_row = 2
    try:
        created = fleet_import.import_chunk(
            services().uow(), principal(), _body_text(), max(2, first_row)
        )
    except DomainError as exc:
        return _json_error(exc)
    return _json({"created": created}, 201)
