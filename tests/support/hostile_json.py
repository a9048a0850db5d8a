"""Hostile JSON for property tests of every MQTT consumer (ingest and agent alike).

`hostile_text` draws the JSON text of one value: arbitrary JSON (hypothesis), or one of the
texts that Python's json module reads into values that are hard to hold or refuses in ways
that are not JSONDecodeError. `with_value` puts it into a message in place of one field, a
nested one too: `fields_of` names every field of a kind's schema by its path
(`enforcement.failed.*`, `launches.chat`, `ice_servers.0.urls.0`).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from lainaamo.protocol import Kind
from lainaamo.protocol.messages import load_schema

# Written as raw text: json.dumps cannot even write some.
RAW_LITERALS = [
    "9" * 4_301,
    "-" + "9" * 5_000,
    "1" + "0" * 4_400 + ".5",
    "1e999999",
    "-1e999999",
    "1E400",
    "1e-400",
    "2.5e308",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "-0.0",
    "1.0",
    "0.5",
    str(2**53),
    str(2**62),
    str(2**63),
    str(2**64),
    str(-(2**63) - 1),
    "[" * 3_000 + "]" * 3_000,
    '{"a":' * 1_000 + "1" + "}" * 1_000,
    '"\\u0000"',
    '"\\ud800"',
    '"x\\udfff\\ud800y"',
    '"' + "é" * 6_000 + '"',
    '"0001-01-01T00:00:00+14:00"',
    '"9999-12-31T23:59:59-14:00"',
    '"2026-02-30T10:00:00Z"',
    '"\\u202eevil\\u202c"',
    '"\\ufeff\\u200b\\u00ad"',
    "{}",
    "[]",
    "null",
    "true",
]


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of `children` (a named function: hypothesis reads an `extend`
    lambda's source to check that it recurses, which is fragile for multi-line lambdas)."""
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=40),
    containers,
    max_leaves=12,
)
# A hostile value, as the JSON text put into the payload.
hostile_text = st.one_of(st.sampled_from(RAW_LITERALS), json_values.map(json.dumps))


PLACEHOLDER = "@@hostile@@"


UNEXPECTED = "unexpected_field"
ANY_KEY = "*"  # in a path: the value of an entry of a map (an object keyed by the sender)
FIRST = "0"  # in a path: the first item of an array


def fields_of(kind: Kind) -> list[str]:
    """Every field the kind's schema knows, nested ones by their dotted path, and at the top
    and in every closed object one field it does not."""
    return sorted(_paths(load_schema(kind), ""))


def _paths(schema: dict[str, Any], prefix: str) -> list[str]:
    found: list[str] = []
    properties = schema.get("properties", {})
    for name, spec in properties.items():
        found.append(prefix + name)
        found += _nested(spec, f"{prefix}{name}.")
    if properties and schema.get("additionalProperties") is False:
        found.append(prefix + UNEXPECTED)
    return found


def _nested(spec: dict[str, Any], prefix: str) -> list[str]:
    """The paths inside one field's value."""
    found = _paths(spec, prefix)
    values = spec.get("additionalProperties")
    if isinstance(values, dict):
        found += [prefix + ANY_KEY, *_nested(values, f"{prefix}{ANY_KEY}.")]
    items = spec.get("items")
    if isinstance(items, dict):
        found += [prefix + FIRST, *_nested(items, f"{prefix}{FIRST}.")]
    return found


def with_value(data: dict[str, Any], field: str, how: str, value: str) -> bytes:
    """The payload of `data` with the field at path `field` replaced by the JSON text `value`
    (or removed). Containers on the way that `data` lacks are made (a list for an array's
    item, an object otherwise); `*` is the map's first key, or `key` in an empty map."""
    data = json.loads(json.dumps(data))  # a deep copy
    *parents, last = field.split(".")
    holder: Any = data
    path = [*parents, last]
    for at, step in enumerate(parents):
        holder = _child(holder, step, [] if path[at + 1] == FIRST else {})
        if not isinstance(holder, dict | list):
            return json.dumps(data).encode()  # a scalar on the way: nothing nested to replace
    if isinstance(holder, dict) and last == ANY_KEY:
        last = next(iter(holder), "key")
    if how == "remove":
        if isinstance(holder, dict):
            holder.pop(last, None)
        elif holder:
            holder.pop(0)
        return json.dumps(data).encode()
    if isinstance(holder, dict):
        holder[last] = PLACEHOLDER
    elif holder:
        holder[0] = PLACEHOLDER
    else:
        holder.append(PLACEHOLDER)
    return json.dumps(data).replace(f'"{PLACEHOLDER}"', value).encode()


def _child(holder: dict[str, Any] | list[Any], step: str, empty: Any) -> Any:
    """The container at `step` of `holder`, made (as `empty`) when it is missing."""
    if isinstance(holder, list):
        if not holder:
            holder.append(empty)
        return holder[0]
    if step == ANY_KEY:
        step = next(iter(holder), "key")
    if step not in holder:
        holder[step] = empty
    return holder[step]


HOW = st.sampled_from(["replace", "replace", "replace", "remove"])
