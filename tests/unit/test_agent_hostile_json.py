"""Any JSON value in any field of any message the agent reads (cmd, desired, session).

Whatever the broker delivers, `AgentCore.handle` returns (never raises), logs nothing at ERROR
(the autouse guard fails the test otherwise: a message that reaches the agent's last-resort
handler is a gap in validation), sends only valid messages, runs no command and applies no
policy that the contract does not allow — and the agent goes on: a valid command afterwards
is run and acknowledged as usual.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.clock import START, FakeClock
from support.hostile_json import HOW, fields_of, hostile_text, with_value
from test_agent_core import DEVICE, TOPICS, FakePlatform, check, make_core

from lainaamo.protocol import Command, DesiredState, Kind, SessionSignal, encode

KINDS = (Kind.CMD, Kind.DESIRED, Kind.SESSION)


def base(kind: Kind, seq: int) -> dict[str, Any]:
    """A valid message of `kind` for the device, as its JSON object."""
    envelope: dict[str, Any] = dict(device_id=DEVICE, ts=START, boot=1, seq=seq)
    message: Any
    if kind is Kind.CMD:
        message = Command(
            **envelope,
            cmd_id=f"cmd-{seq:08d}",
            name="ring",
            expires_at=START + timedelta(minutes=10),
        )
    elif kind is Kind.DESIRED:
        message = DesiredState(**envelope, version=seq, policy={"mode": "kiosk"})
    else:
        message = SessionSignal(**envelope, session_id=f"s-{seq:08d}", type="hangup")
    data: dict[str, Any] = json.loads(encode(message))
    return data


hostile = st.sampled_from(KINDS).flatmap(
    lambda kind: st.tuples(st.just(kind), st.sampled_from(fields_of(kind)), HOW, hostile_text)
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(hostile, min_size=1, max_size=6))
@example(plan=[(Kind.CMD, "seq", "replace", "9" * 4_301)])
@example(plan=[(Kind.DESIRED, "version", "replace", "2.0")])
@example(plan=[(Kind.SESSION, "ts", "replace", '"9999-12-31T23:59:59-14:00"')])
@example(plan=[(Kind.DESIRED, "policy", "replace", "[" * 3_000 + "]" * 3_000)])
def test_any_json_in_any_field_never_stops_the_agent(
    tmp_path_factory: Any, plan: list[tuple[Kind, str, str, str]]
) -> None:
    platform = FakePlatform()
    core = make_core(Path(tmp_path_factory.mktemp("agent")), FakeClock(), platform)
    for seq, (kind, field, how, value) in enumerate(plan, start=1):
        payload = with_value(base(kind, seq), field, how, value)
        for out in core.handle(TOPICS.topic(DEVICE, kind), payload):
            check(out)  # whatever the agent answers is itself a valid message
    # Only what the contract allows ran: the base command is a ring (unsupported here).
    assert set(platform.executed) <= {"ring"}
    outs = core.handle(
        TOPICS.topic(DEVICE, Kind.CMD),
        json.dumps({**base(Kind.CMD, 999), "name": "sync", "cmd_id": "cmd-after-fuzz"}).encode(),
    )
    acks = [(o.message.cmd_id, o.message.status) for o in outs if o.topic.endswith("/cmd/ack")]
    assert acks == [("cmd-after-fuzz", "received"), ("cmd-after-fuzz", "done")]
