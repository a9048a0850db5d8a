"""The console's device import: a dry run that lists every problem, then chunked imports.

Atomicity: the browser first validates the whole file (`validate_import`, nothing written),
and imports only a file without problems, in chunks of a few hundred rows. Each chunk goes
through the API's own handler, `devices.import_devices`, in one transaction: all of its rows
or none. A chunk can still fail after the dry run (say, someone else registered one of its
devices meanwhile); then that chunk is reported with its rows and the import stops, while the
chunks before it stay imported (the summary says how many). Without JavaScript the whole file
is one `import_devices` call: all rows or none.

The CSV may be one of our exports: its extra columns (state, presence, battery, last seen)
are dropped and the spreadsheet formula guard (a leading quote) is removed before parsing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from lainaamo.errors import Conflict, InvalidInput
from server.domain.model import Principal
from server.service_layer import devices
from server.service_layer.fleet_console import EXPORT_ONLY
from server.service_layer.spreadsheet import unguard_cell
from server.service_layer.unit_of_work import UnitOfWork

CHUNK_ROWS = 500

Problem = dict[str, object]


@dataclass(frozen=True)
class ImportCheck:
    """The outcome of a dry run: how many data rows, and every problem (empty: importable)."""

    rows: int
    errors: list[Problem]
    device_ids: list[str]


def decode(raw: bytes) -> str:
    """An upload as text; InvalidInput for anything but UTF-8 text."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(
            "the CSV must be UTF-8 text", [{"row": None, "field": None, "message": "not UTF-8"}]
        ) from None
    if "\x00" in text:
        raise InvalidInput(
            "the file is not a CSV", [{"row": None, "field": None, "message": "binary data"}]
        )
    return text


def normalise(text: str) -> str:
    """Drop an export's extra columns and formula guards; unreadable text is left as it is."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        return text  # parse_csv reports it
    if not rows:
        return text
    header = [h.strip() for h in rows[0]]
    keep = [i for i, name in enumerate(header) if name not in EXPORT_ONLY]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        cells = [row[i] for i in keep if i < len(row)] + row[len(header) :]
        writer.writerow([unguard_cell(c) for c in cells])
    return out.getvalue()


def _rows(errors: list[Problem]) -> set[object]:
    return {e.get("row") for e in errors if e.get("row") not in (None, 1)}


def _sort(errors: list[Problem]) -> list[Problem]:
    return sorted(errors, key=lambda e: int(str(e.get("row") or 0)))


def validate_import(uow: UnitOfWork, principal: Principal, text: str) -> ImportCheck:
    """Everything `import_devices` would refuse, for every row, without writing anything."""
    devices.require_manager(principal)
    try:
        commands, errors = devices.parse_csv(normalise(text))
    except InvalidInput as exc:
        problems = exc.errors or [{"row": None, "field": None, "message": str(exc)}]
        return ImportCheck(0, _sort(list(problems)), [])
    if not commands and not errors:
        return ImportCheck(0, [{"row": None, "field": None, "message": "the CSV has no rows"}], [])
    with uow:
        clashes = devices.clashing_rows(uow.session, principal.organisation_id, commands)
    errors = errors + devices.duplicate_rows(commands) + clashes
    rows = len(commands) + len(_rows(errors) - {n for n, _ in commands})
    return ImportCheck(rows, _sort(errors), [c.device_id for _, c in commands])


def _shift(problem: Problem, first_row: int) -> Problem:
    row = problem.get("row")
    if isinstance(row, int) and row >= 2:
        return {**problem, "row": row - 2 + first_row}
    return problem


def import_chunk(uow: UnitOfWork, principal: Principal, text: str, first_row: int) -> int:
    """Import one chunk (a header and some rows) all or nothing, with the file's row numbers.

    `first_row` is the file's row number of the chunk's first data row (2 for the first).
    """
    try:
        return devices.import_devices(uow, principal, normalise(text))
    except InvalidInput as exc:
        shifted = [_shift(e, first_row) for e in exc.errors]
        raise InvalidInput(str(exc), shifted) from None
    except IntegrityError:
        raise Conflict(
            "a device of this chunk was registered meanwhile; nothing of the chunk was imported"
        ) from None
