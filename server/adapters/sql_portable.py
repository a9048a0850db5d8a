"""Portable SQL for reports: epoch seconds, two-argument max/min and the month of a time.

Compiled differently for PostgreSQL and SQLite, so the report aggregates in the database on both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class Epoch(FunctionElement[float]):
    type = Float()
    inherit_cache = True


class Greatest(FunctionElement[float]):
    type = Float()
    inherit_cache = True


class Least(FunctionElement[float]):
    type = Float()
    inherit_cache = True


class Month(FunctionElement[str]):
    type = String()
    inherit_cache = True


def _per_dialect(element: type[FunctionElement[Any]], postgresql: str, sqlite: str) -> None:
    """Compile `element` from a template per dialect; `{}` stands for its arguments."""

    def compiler_of(template: str) -> Any:
        def compile_element(fn: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
            return template.format(compiler.process(fn.clauses, **kw))

        return compile_element

    compiles(element)(compiler_of(postgresql))
    compiles(element, "sqlite")(compiler_of(sqlite))


# date_part() is double precision; EXTRACT() is numeric since PostgreSQL 14, and numeric
# arithmetic made a year's report (250,000 loans) spend 90 % of its time in sums.
_per_dialect(Epoch, "date_part('epoch', {})", "((julianday({}) - 2440587.5) * 86400.0)")
_per_dialect(Greatest, "GREATEST({})", "MAX({})")  # SQLite's max/min of several arguments
_per_dialect(Least, "LEAST({})", "MIN({})")
_per_dialect(Month, "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM')", "strftime('%Y-%m', {})")
