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


@compiles(Epoch)
def _epoch_pg(element: Epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # date_part() is double precision; EXTRACT() is numeric since PostgreSQL 14, and numeric
    # arithmetic made a year's report (250,000 loans) spend 90 % of its time in sums.
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(Epoch, "sqlite")
def _epoch_sqlite(element: Epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(Greatest)
def _greatest_pg(element: Greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


@compiles(Greatest, "sqlite")
def _greatest_sqlite(element: Greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"MAX({compiler.process(element.clauses, **kw)})"


@compiles(Least)
def _least_pg(element: Least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"LEAST({compiler.process(element.clauses, **kw)})"


@compiles(Least, "sqlite")
def _least_sqlite(element: Least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"MIN({compiler.process(element.clauses, **kw)})"


@compiles(Month)
def _month_pg(element: Month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM')"


@compiles(Month, "sqlite")
def _month_sqlite(element: Month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)})"
