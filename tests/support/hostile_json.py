"""Hostile JSON for property tests of every MQTT consumer (ingest and agent alike).

`hostile_text` draws the JSON text of one value: arbitrary JSON (hypothesis), or one of the
texts that Python's json module reads into values that are hard to hold or refuses in ways
that are not JSONDecodeError. `with_value` puts it into a message in place of one field.
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


def fields_of(kind: Kind) -> list[str]:
    """Every field the kind's schema knows, and one it does not."""
    return sorted(load_schema(kind)["properties"]) + ["unexpected_field"]


def with_value(data: dict[str, Any], field: str, how: str, value: str) -> bytes:
    """The payload of `data` with `field` replaced by the JSON text `value` (or removed)."""
    data = dict(data)
    if how == "remove":
        data.pop(field, None)
        return json.dumps(data).encode()
    data[field] = PLACEHOLDER
    return json.dumps(data).replace(f'"{PLACEHOLDER}"', value).encode()


HOW = st.sampled_from(["replace", "replace", "replace", "remove"])
