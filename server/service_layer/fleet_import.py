"""The console's device import: a dry run that lists every problem, then chunked imports.

Atomicity: the browser first validates the whole file (`validate_import`, nothing written),
and imports only a file without problems, in chunks of a few hundred rows. Each chunk goes
through the API's own handler, `devices.import_devices`, in one transaction: all of its rows
or none. A chunk can still fail after the dry run (say, someone else registered one of its
devices meanwhile); then that chunk is reported with its rows and the import stops, while the
chunks before it stay imported (the summary says how many). Without JavaScript the whole file
is one `import_devices` call: all rows or none.

The CSV may be one of our exports: its extra columns (state, presence, battery, last seen)
are dropped and the spreadsheet formula guard (a leading quote) is removed before parsing. It
may come from a Finnish or Swedish Excel: semicolons for commas, a byte-order mark, or
Windows-1252 instead of UTF-8 (`decode`, `separator`). A unit may be given by its code or its
name, in any case; an unknown one is refused with the list of the organisation's units.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lainaamo.errors import Conflict, InvalidInput
from server.adapters import orm
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
    """An upload as text: UTF-8 with or without a byte-order mark (Excel writes one), else
    Windows-1252 (an older Excel's "CSV") when that reads as clean text; InvalidInput otherwise."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")  # undefined bytes (0x81, 0x8d, …) fail here too
        except UnicodeDecodeError:
            text = ""
        if not text or _binary(text):
            raise InvalidInput(
                "the CSV must be UTF-8 text",
                [{"row": None, "field": None, "message": "not UTF-8", "code": "encoding"}],
            ) from None
    if _binary(text):
        raise InvalidInput(
            "the file is not a CSV",
            [{"row": None, "field": None, "message": "binary data", "code": "binary"}],
        )
    return text


def _binary(text: str) -> bool:
    return any(ord(c) < 32 and c not in "\t\r\n" for c in text)


def separator(text: str) -> str:
    """The file's separator, read from its header: a semicolon (a Finnish or Swedish Excel's
    CSV) when the header has more semicolons than commas, else a comma."""
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


def normalise(text: str, units: dict[str, str] | None = None) -> str:
    """The upload as the import reads it: comma-separated, its header's names trimmed and in
    lower case, an export's extra columns and formula guards dropped, and (given `units`, from
    `unit_lookup`) each unit cell naming a unit by its code or its name made its code; an
    unknown unit is left as it is for the import to refuse. Unreadable text is left as it is."""
    try:
        rows = list(
            csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=separator(text))
        )
    except csv.Error:
        return text  # parse_csv reports it
    if not rows:
        return text
    header = [h.strip().lower() for h in rows[0]]
    keep = [i for i, name in enumerate(header) if name not in EXPORT_ONLY]
    unit_at = header.index("unit") if "unit" in header else None
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header[i] for i in keep])
    for row in rows[1:]:
        if units and unit_at is not None and unit_at < len(row):
            cell = unguard_cell(row[unit_at]).strip()
            row = [*row[:unit_at], units.get(cell.casefold(), cell), *row[unit_at + 1 :]]
        cells = [row[i] for i in keep if i < len(row)] + row[len(header) :]
        writer.writerow([unguard_cell(c) for c in cells])
    return out.getvalue()


@dataclass(frozen=True)
class Units:
    """The organisation's units for an import: a unit cell may give the code or the name."""

    by_key: dict[str, str]  # casefolded code or name -> code
    listed: list[str]  # "Name (code)" of each, by name

    def problem(self, problem: Problem) -> Problem:
        """An unknown unit's refusal, listing the valid units."""
        message = str(problem.get("message", ""))
        if problem.get("field") != "unit" or not message.startswith("no unit "):
            return problem
        value = message[len("no unit ") :].strip("'\"")
        return {
            **problem,
            "message": f"no unit {value!r}; the units are: {', '.join(self.listed)}",
            "code": "unknown_unit",
            "value": value,
            "units": self.listed,
        }


def unit_lookup(uow: UnitOfWork, principal: Principal) -> Units:
    """The principal's organisation's units, by code and by name (case-insensitive)."""
    with uow:
        found = uow.session.execute(
            select(orm.Unit.code, orm.Unit.name)
            .where(orm.Unit.organisation_id == principal.organisation_id)
            .order_by(orm.Unit.name)
        ).all()
    by_key: dict[str, str] = {}
    for code, name in found:
        by_key.setdefault(name.strip().casefold(), code)
    for code, _name in found:
        by_key[code.casefold()] = code  # a code wins over another unit's same name
    return Units(by_key, [f"{name} ({code})" for code, name in found])


def _rows(errors: list[Problem]) -> set[object]:
    return {e.get("row") for e in errors if e.get("row") not in (None, 1)}


def _sort(errors: list[Problem]) -> list[Problem]:
    return sorted(errors, key=lambda e: int(str(e.get("row") or 0)))


def validate_import(uow: UnitOfWork, principal: Principal, text: str) -> ImportCheck:
    """Everything `import_devices` would refuse, for every row, without writing anything."""
    devices.require_manager(principal)
    units = unit_lookup(uow, principal)
    try:
        commands, errors = devices.parse_csv(normalise(text, units.by_key))
    except InvalidInput as exc:
        problems = exc.errors or [{"row": None, "field": None, "message": str(exc)}]
        return ImportCheck(0, _sort(list(problems)), [])
    if not commands and not errors:
        return ImportCheck(0, [{"row": None, "field": None, "message": "the CSV has no rows"}], [])
    with uow:
        clashes = devices.clashing_rows(uow.session, principal.organisation_id, commands)
    errors = errors + devices.duplicate_rows(commands) + clashes
    rows = len(commands) + len(_rows(errors) - {n for n, _ in commands})
    found = [units.problem(e) for e in _sort(errors)]
    return ImportCheck(rows, found, [c.device_id for _, c in commands])


def _shift(problem: Problem, first_row: int) -> Problem:
    row = problem.get("row")
    if isinstance(row, int) and row >= 2:
        return {**problem, "row": row - 2 + first_row}
    return problem


def import_chunk(uow: UnitOfWork, principal: Principal, text: str, first_row: int) -> int:
    """Import one chunk (a header and some rows) all or nothing, with the file's row numbers.

    `first_row` is the file's row number of the chunk's first data row (2 for the first).
    """
    devices.require_manager(principal)
    units = unit_lookup(uow, principal)
    try:
        return devices.import_devices(uow, principal, normalise(text, units.by_key))
    except InvalidInput as exc:
        shifted = [units.problem(_shift(e, first_row)) for e in exc.errors]
        raise InvalidInput(str(exc), shifted) from None
    except IntegrityError:
        raise Conflict(
            "a device of this chunk was registered meanwhile; nothing of the chunk was imported"
        ) from None
