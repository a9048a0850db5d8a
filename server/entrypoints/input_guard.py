"""Refused at the edge, for every request: what no handler could look up or store.

Whatever a client sends must get a 4xx, never a 500 from the database driver. Two kinds of
value cannot reach a database at all, whichever route they arrive at:

- text with NUL (PostgreSQL refuses it in every text column and parameter) or with lone
  UTF-16 surrogates (JSON can carry `"\\ud800"`; no driver can encode it): refused in the
  path (404: nothing is named so), and in query parameters, form fields and JSON strings
  and keys (422, naming the field), before any route or sign-in check runs;
- numbers beyond a column: `<int:...>` path ids stop at PostgreSQL's `integer` (ids beyond
  it match no route: 404), `<bigint:...>` at `bigint`; JSON numbers beyond `bigint`, NaN
  and Infinity (which Python's JSON parser accepts, and JSON does not) are refused.

A JSON body nested deeper than the parser's recursion limit is refused too (it raised a
RecursionError, which Flask does not catch). Values that fit here but not a particular
field are for the route's own validation (the API's models, api/spec.py, and the domain's
commands).
"""

from __future__ import annotations

import math
import re
from typing import Any

from flask import Flask, request
from werkzeug.routing import IntegerConverter

from lainaamo.errors import InvalidInput, NotFound

INT_MAX = 2**31 - 1  # PostgreSQL `integer`: the ids of loans, users, tokens, webhooks, ...
BIGINT_MAX = 2**63 - 1  # PostgreSQL `bigint` (the ORM's BigInteger and BigId)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class IntId(IntegerConverter):
    """`<int:...>`: an id of an `integer` column; a larger number matches no route (404)."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", INT_MAX)
        super().__init__(url_map, *args, **kwargs)


class BigIntId(IntegerConverter):
    """`<bigint:...>`: an id of a `bigint` column."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(url_map, *args, **kwargs)


def install(app: Flask) -> None:
    """Register the id converters and the check that runs before every request."""
    app.url_map.converters["int"] = IntId
    app.url_map.converters["bigint"] = BigIntId
    app.before_request(check_request)


def storable(text: str) -> bool:
    """Whether a database can hold `text` (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def whole_number(text: str, lo: int, hi: int) -> int | None:
    """`text` as an integer in [lo, hi] if it is plain ASCII digits, else None.

    Not `str.isdigit()`, which takes "²" and "٣", nor `int()`, which takes " 1_0 ".
    """
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if lo <= number <= hi else None


def check_request() -> None:
    """Before every request (the API's and the console's alike): see the module docstring."""
    if not storable(request.path):
        raise NotFound("no such resource")
    bad = [f"query.{k}" for k, v in request.args.items(multi=True) if not _fits(k, v)]
    if request.mimetype in FORM_TYPES:
        bad += [f"form.{k}" for k, v in request.form.items(multi=True) if not _fits(k, v)]
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            raise InvalidInput(
                "the JSON body is nested too deeply", [{"field": "body", "message": "flatter"}]
            ) from None
        bad += _json_problems(body)
    if bad:
        message = "no NUL characters, lone surrogates or out-of-range numbers"
        raise InvalidInput(
            "a value cannot be stored",
            [{"field": _UNSTORABLE.sub("?", f), "message": message} for f in bad[:20]],
        )


def _fits(*texts: object) -> bool:
    """Whether a query or form field's name and value can be stored (a multipart part may
    come without a name: None)."""
    return all(storable(t) for t in texts if isinstance(t, str))


def _json_problems(body: Any) -> list[str]:
    """The places in a parsed JSON body that no column could hold (iterative: any depth)."""
    problems: list[str] = []
    todo: list[tuple[str, Any]] = [("body", body)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not storable(key):
                    problems.append(f"{where}.<key>")
                todo.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            todo.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, str):
            if not storable(value):
                problems.append(where)
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(where)
        elif isinstance(value, int) and not isinstance(value, bool):
            if not -BIGINT_MAX - 1 <= value <= BIGINT_MAX:
                problems.append(where)
    return problems
