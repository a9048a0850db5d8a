"""The MQTT contract: topics, parsing, encoding and every way a payload can be refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.messages import status_report

from lainaamo.errors import ProtocolError
from lainaamo.protocol import (
    MAX_PAYLOAD_BYTES,
    Command,
    CommandAck,
    DesiredState,
    EnforcementReport,
    Kind,
    Presence,
    StatusReport,
    Topics,
    encode,
    parse,
)
from lainaamo.protocol.messages import load_schema

NOW = datetime(2026, 11, 22, 12, 0, 0, 123000, tzinfo=UTC)


def status(**changes: Any) -> StatusReport:
    fields: dict[str, Any] = dict(boot=3, seq=7, ts=NOW, storage_free_mb=12000, uptime_s=3600)
    return status_report(**(fields | {"desired_version": 4} | changes))


EXAMPLES = [
    Presence(device_id="tab-001", ts=NOW, boot=1, seq=0, state="offline", reason="will"),
    Presence(
        device_id="tab-001",
        ts=NOW,
        boot=1,
        seq=1,
        state="online",
        reason="birth",
        agent_version="0.1.0",
        status_interval_s=60,
    ),
    status(),
    status(storage_total_mb=32000, signal_pct=None, reason="change"),
    status(enforcement=EnforcementReport()),
    status(enforcement=EnforcementReport(("kiosk",), {"message": "no lock screen"})),
    DesiredState(device_id="tab-001", ts=NOW, boot=9, seq=1, version=5, policy={"mode": "kiosk"}),
    Command(
        device_id="tab-001",
        ts=NOW,
        boot=9,
        seq=2,
        cmd_id="c0ffee-0001",
        name="ring",
        args={},
        expires_at=NOW + timedelta(minutes=10),
    ),
    CommandAck(device_id="tab-001", ts=NOW, boot=1, seq=9, cmd_id="c0ffee-0001", status="done"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_encode_then_parse_gives_the_same_message(message: Any) -> None:
    assert parse(message.kind, "tab-001", encode(message)) == message


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_encoded_examples_satisfy_the_published_schema(message: Any) -> None:
    schema = load_schema(message.kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(
        json.loads(encode(message)),
        schema,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def test_every_schema_shares_the_envelope() -> None:
    envelope = load_schema(Kind.STATUS)["properties"]
    for kind in Kind:
        schema = load_schema(kind)
        for name in ("v", "device_id", "ts", "boot", "seq"):
            assert schema["properties"][name] == envelope[name], (kind, name)
            assert name in schema["required"]
        assert schema["additionalProperties"] is False


def test_schema_files_in_the_package_are_the_only_ones() -> None:
    folder = Path(__file__).parents[2] / "lainaamo" / "protocol" / "schemas"
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(k.schema_name for k in Kind)


def payload(message: Any, **changes: Any) -> bytes:
    data = json.loads(encode(message))
    data.update(changes)
    for key in [k for k, v in changes.items() if v is ...]:
        del data[key]
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "oversized"),
        (b"{not json", "malformed"),
        (b"\xff\xfe", "malformed"),
        (b"[1, 2]", "malformed"),
        (b"[" * 10000, "malformed"),  # deeper than the JSON parser recurses
        (payload(status(), battery_pct=101), "invalid"),
        (payload(status(), battery_pct=True), "invalid"),
        (payload(status(), charging="yes"), "invalid"),
        (payload(status(), v=2), "invalid"),
        (payload(status(), boot=0), "invalid"),
        (payload(status(), seq=-1), "invalid"),
        (payload(status(), ts="yesterday"), "invalid"),
        (payload(status(), ts="2026-11-22T12:00:00"), "invalid"),
        (payload(status(), extra=1), "invalid"),
        (payload(status(), network=...), "invalid"),
        (payload(status(), device_id="tab/+"), "invalid"),
        (payload(status(), device_id="tab-002"), "mismatched"),
        (payload(status(), enforcement=[]), "invalid"),
        (payload(status(), enforcement={"unsupported": ["Kiosk"]}), "invalid"),
        (payload(status(), enforcement={"unsupported": ["kiosk", "kiosk"]}), "invalid"),
        (payload(status(), enforcement={"unsupported": [f"k{i}" for i in range(33)]}), "invalid"),
        (payload(status(), enforcement={"failed": {"kiosk-x": "no"}}), "invalid"),
        (payload(status(), enforcement={"failed": {"kiosk": "x" * 121}}), "invalid"),
        (payload(status(), enforcement={"failed": {"kiosk": 1}}), "invalid"),
        (payload(status(), enforcement={"other": []}), "invalid"),
        # A key is either unsupported or failed.
        (payload(status(), enforcement={"unsupported": ["a"], "failed": {"a": "x"}}), "invalid"),
    ],
)
def test_bad_payloads_are_refused_with_a_bounded_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(Kind.STATUS, "tab-001", raw)
    assert caught.value.reason == reason


def test_an_empty_enforcement_means_every_key_is_enforced() -> None:
    for empty in ({}, {"unsupported": []}, {"failed": {}}, {"unsupported": [], "failed": {}}):
        report = parse(Kind.STATUS, "tab-001", payload(status(), enforcement=empty))
        assert isinstance(report, StatusReport) and report.enforcement == EnforcementReport()
        assert report.enforcement.complete
    report = parse(Kind.STATUS, "tab-001", payload(status(), enforcement={"failed": {"a": ""}}))
    assert isinstance(report, StatusReport) and report.enforcement is not None
    assert not report.enforcement.complete
    # Left out: the device does not say (an agent from before 2026-12).
    report = parse(Kind.STATUS, "tab-001", payload(status()))
    assert isinstance(report, StatusReport) and report.enforcement is None


def test_policy_keys_are_named_as_a_status_report_names_them() -> None:
    """A device names each key it cannot enforce, so the server sends none it cannot name."""
    desired = DesiredState(device_id="tab-001", ts=NOW, boot=9, seq=1, version=5, policy={})
    for key, ok in (("wallpaper", True), ("timeout_s", True), ("Wall", False), ("a-b", False)):
        raw = payload(desired, policy={"mode": "kiosk", key: 1})
        if ok:
            parse(Kind.DESIRED, "tab-001", raw)
        else:
            with pytest.raises(ProtocolError):
                parse(Kind.DESIRED, "tab-001", raw)


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_arbitrary_bytes_never_raise_anything_but_protocol_errors(raw: bytes) -> None:
    for kind in Kind:
        try:
            parse(kind, "tab-001", raw)
        except ProtocolError:
            pass


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of `children` (a named function: hypothesis reads an `extend`
    lambda's source to check that it recurses, which is fragile for multi-line lambdas)."""
    return st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=5), children, max_size=3
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    containers,
    max_leaves=6,
)


STATUS_KEYS = sorted(load_schema(Kind.STATUS)["properties"])


@given(st.dictionaries(st.sampled_from(STATUS_KEYS), json_values, max_size=4))
@settings(max_examples=300)
def test_json_objects_with_plausible_keys_never_crash_the_parser(data: dict[str, Any]) -> None:
    base = json.loads(encode(status()))
    base.update(data)
    try:
        message = parse(Kind.STATUS, "tab-001", json.dumps(base).encode())
    except ProtocolError:
        return
    assert isinstance(message, StatusReport)
    assert 0 <= message.battery_pct <= 100


class TestTopics:
    def test_builds_and_parses(self) -> None:
        topics = Topics("fleet/v1")
        for kind in Kind:
            topic = topics.topic("tab-001", kind)
            assert topics.parse(topic) == ("tab-001", kind)
        assert topics.topic("tab-001", Kind.CMD_ACK) == "fleet/v1/tab-001/cmd/ack"
        assert topics.wildcard(Kind.STATUS) == "fleet/v1/+/status"

    @pytest.mark.parametrize(
        "topic",
        [
            "fleet/v1/tab-001",
            "fleet/v1/tab-001/other",
            "other/v1/tab-001/status",
            "fleet/v1/+/status",
            "fleet/v1//status",
            "fleet/v1/tab-001/status/extra",
            "",
        ],
    )
    def test_refuses_foreign_topics(self, topic: str) -> None:
        with pytest.raises(ProtocolError) as caught:
            Topics("fleet/v1").parse(topic)
        assert caught.value.reason == "unknown_topic"

    def test_a_prefix_with_wildcards_is_refused(self) -> None:
        with pytest.raises(ValueError):
            Topics("fleet/#")

    def test_a_device_id_that_would_break_topics_is_refused(self) -> None:
        with pytest.raises(ValueError):
            Topics().topic("a/b", Kind.STATUS)
