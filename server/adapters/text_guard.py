"""No personal identity code reaches the database through the ORM, whatever the entry point.

A `before_flush` listener (registered in orm.py, before the audit chain's) looks at every
String/Text column, and every string and key inside every JSON column, of the rows a flush
adds or changes, and refuses the flush with the project's InvalidInput naming the fields
when one holds something that looks like a code (lainaamo.privacy). The API answers 422 in
its error shape and the console shows the error; nothing of the transaction is written, its
audit events included.

Default-on: a new column is checked without anyone remembering to. The only way out is
`info=machine_made("why")` on the column, for values no person types — hashes, tokens,
generated ids, SDPs — which look like a code by chance about as often as 1 in 250 (see
lainaamo/privacy.py) and would make writes fail at random.

Core statements (session.execute(insert/update(...))) bypass flushes. The ingest writes
status reports that way; their text is checked by the protocol's parse() instead. The other
Core updates write values made by the server (states, fixed details, timestamps).
"""

from __future__ import annotations

import functools
from itertools import chain
from typing import Any

from sqlalchemy import JSON, String, inspect
from sqlalchemy.orm import Mapper, Session

from lainaamo.privacy import find_identity_code
from server.domain.privacy import identity_code_refused

MACHINE_MADE = "machine_made"


def machine_made(why: str) -> dict[str, str]:
    """`info=` of a column whose text no person types (never checked): say why."""
    return {MACHINE_MADE: why}


@functools.cache
def checked_columns(mapper: Mapper[Any]) -> dict[str, bool]:
    """Attribute key → whether it is JSON, for the text columns of a mapped class to check."""
    checked: dict[str, bool] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if MACHINE_MADE in column.info:
            continue
        if isinstance(column.type, JSON):
            checked[prop.key] = True
        elif isinstance(column.type, String):
            checked[prop.key] = False
    return checked


def refuse_personal_data(session: Session, _context: object, _instances: object) -> None:
    """before_flush: raise InvalidInput if a new or changed text holds an identity code."""
    fields: list[str] = []
    for obj in chain(session.new, session.dirty):
        state = inspect(obj)
        checked = checked_columns(state.mapper)
        # New rows: everything set on them; loaded rows: only what changed since loading.
        keys = state.dict.keys() if state.key is None else state.committed_state.keys()
        for key in checked.keys() & keys:
            value = state.dict.get(key)
            if value is None:
                continue
            where = find_identity_code(value)
            if where is None:
                continue
            # The innermost key names it best: "serial", or "label" inside kiosk shortcuts.
            name = _innermost_key(where) or key
            if name not in fields:
                fields.append(name)
    if fields:
        raise identity_code_refused(fields)


def _innermost_key(path: str) -> str:
    """The last key of a JSON path: label of .shortcuts[0].label, apps of .apps[2]."""
    for part in reversed(path.split(".")):
        name = part.split("[", 1)[0]
        if name:
            return name
    return ""
