"""Hostile MQTT payloads mixed with valid ones, through the real ingest handler.

Malformed JSON, wrong types, oversized payloads, unicode oddities (lone surrogates, NUL, RTL
marks), foreign topics, replays and shuffled order: ingest never crashes (nothing is logged
at ERROR), every valid report lands exactly once, and every rejection is counted by reason.
Usage totals (the tablets are on loan) ride along: each valid one is counted once, and a day
that is no calendar date is refused as invalid.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from support.fleet import Fleet
from support.messages import status_report, usage_report

from lainaamo.config import Settings
from lainaamo.protocol import encode
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.entrypoints.demo import seed_loans
from server.entrypoints.ingest import Incoming, IngestConsumer

PREFIX = Settings.load({}).topic_prefix  # what the fleet fixture's ingest subscribes to
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DEVICES = ("tab-001", "tab-002", "tab-003")
ODD_TEXT = ["\u202eevil\u202c", "\u200f\u05d0", "e\u0301", "\U0001f600", "\ufeff", "x"]
HOSTILE_TEXT = ["a\u0000b", "\ud800", "x\udfffy"]
_seq = itertools.count(1)
_sent: dict[str, list[tuple[str, bytes]]] = {}  # valid messages sent so far, per database


def valid_payload(device: str, text: str) -> tuple[str, bytes, tuple[str, int, int]]:
    """A fresh status report (unique position) whose os_version is `text`."""
    seq = next(_seq)
    message = status_report(device, 1, seq, ts=T0 + timedelta(seconds=seq), os_version=text)
    return f"{PREFIX}/{device}/status", encode(message), (device, 1, seq)


def valid_usage(device: str) -> tuple[str, bytes]:
    """Fresh usage totals of yesterday (a new position: newer than any sent before)."""
    seq = next(_seq)
    message = usage_report(device, 1, seq, "2026-11-21", ts=T0, active_s=seq % 90_000)
    return f"{PREFIX}/{device}/usage", encode(message)


def junk_reason(payload: bytes) -> str:
    """Random bytes are malformed, unless they happen to be a JSON object (`{}`): invalid."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return "malformed"
    return "invalid" if isinstance(data, dict) else "malformed"


def tampered(change: str) -> tuple[str, bytes, str]:
    """(topic, payload, expected rejection reason)."""
    topic, payload, _ = valid_payload("tab-001", "Android 14")
    data: dict[str, Any] = json.loads(payload)
    if change == "truncated":
        return topic, payload[: len(payload) // 2], "malformed"
    if change == "not_utf8":
        return topic, b'{"device_id": "\xff\xfe"}', "malformed"
    if change == "array":
        return topic, b"[1, 2, 3]", "malformed"
    if change == "deep":
        return topic, b"[" * 5_000 + b"]" * 5_000, "malformed"
    if change == "oversized":
        data["os_version"] = "x" * 20_000
        return topic, json.dumps(data).encode(), "oversized"
    if change == "wrong_type":
        data["battery_pct"] = "50"
        return topic, json.dumps(data).encode(), "invalid"
    if change == "missing":
        del data["boot"]
        return topic, json.dumps(data).encode(), "invalid"
    if change == "bad_ts":
        data["ts"] = "yesterday"
        return topic, json.dumps(data).encode(), "invalid"
    if change == "mismatched":
        return f"{PREFIX}/tab-002/status", payload, "mismatched"
    if change == "unknown_topic":
        return f"{PREFIX}/tab-001/cmd", payload, "unknown_topic"
    if change == "unknown_device":
        data["device_id"] = "tab-999"
        return f"{PREFIX}/tab-999/status", json.dumps(data).encode(), "unknown_device"
    if change in ("impossible_day", "status_as_usage"):
        usage_topic, usage_payload = valid_usage("tab-002")
        if change == "status_as_usage":
            return usage_topic, payload, "invalid"
        day: dict[str, Any] = {**json.loads(usage_payload), "day": "2026-02-30"}
        return usage_topic, json.dumps(day).encode(), "invalid"
    assert change.startswith("text:")
    data["os_version"] = HOSTILE_TEXT[int(change[5:])]
    return topic, json.dumps(data).encode(), "invalid"


CHANGES = [
    "truncated",
    "not_utf8",
    "array",
    "deep",
    "oversized",
    "wrong_type",
    "missing",
    "bad_ts",
    "mismatched",
    "unknown_topic",
    "unknown_device",
    "impossible_day",
    "status_as_usage",
    *(f"text:{i}" for i in range(len(HOSTILE_TEXT))),
]
item = st.one_of(
    st.tuples(st.just("valid"), st.sampled_from(DEVICES), st.sampled_from(ODD_TEXT)),
    st.tuples(st.just("usage"), st.sampled_from(DEVICES), st.just("")),
    st.tuples(st.just("bad"), st.sampled_from(CHANGES), st.just("")),
    st.tuples(st.just("replay"), st.just(""), st.just("")),
    st.tuples(st.just("junk"), st.binary(max_size=200), st.just("")),
)


def counts(registry: CollectorRegistry, name: str, label: str = "reason") -> Counter[str]:
    found: Counter[str] = Counter()
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                found[sample.labels[label]] = int(sample.value)
    return found


def lend_the_tablets(fleet: Fleet) -> None:
    """tab-001…003 on loan in units that collect usage (once per database)."""
    with fleet.services.session_factory() as session:
        if session.scalar(select(func.count()).select_from(orm.Loan)):
            return
    seed_loans(fleet.services, T0, lent=len(DEVICES), queued=0)


def positions(fleet: Fleet) -> Counter[tuple[str, int, int]]:
    with fleet.services.session_factory() as session:
        rows = session.execute(
            select(orm.StatusReport.device_id, orm.StatusReport.boot, orm.StatusReport.seq)
        ).all()
    return Counter((r.device_id, r.boot, r.seq) for r in rows)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(item, min_size=1, max_size=12), order=st.randoms(use_true_random=False))
def test_hostile_payloads_never_crash_or_lose_valid_reports(
    fleet: Fleet, plan: list[tuple[str, Any, str]], order: Any
) -> None:
    lend_the_tablets(fleet)
    registry = CollectorRegistry()
    consumer = IngestConsumer(
        fleet.services.settings, fleet.services.session_factory, IngestMetrics(registry)
    )
    # Keyed by the test's own database: id(fleet) can be reused by a later test's fleet once
    # the earlier one is gone, whose history would then replay messages this database never had.
    # Replays come from this example's own valid messages, else from messages that earlier
    # examples saw land in this very database (keyed by its URL: hypothesis may run an
    # example's body more than once, and id(fleet) may be reused by a later test's fleet).
    history = _sent.setdefault(fleet.services.settings.database_url, [])
    local: list[tuple[str, bytes]] = []
    local_positions: list[tuple[str, int, int]] = []
    batch_items: list[tuple[str, bytes]] = []
    expected_valid: list[tuple[str, int, int]] = []
    expected_rejected: Counter[str] = Counter()
    expected_usage = 0
    replays = 0
    for kind, what, text in plan:
        if kind == "valid":
            topic, payload, position = valid_payload(what, text)
            expected_valid.append(position)
            local.append((topic, payload))
            local_positions.append(position)
        elif kind == "usage":
            topic, payload = valid_usage(what)
            expected_usage += 1
            local.append((topic, payload))
            local_positions.append(("", 0, 0))  # not a status report: never in the history
        elif kind == "bad":
            topic, payload, reason = tampered(what)
            expected_rejected[reason] += 1
        elif kind == "junk":
            topic, payload = f"{PREFIX}/tab-003/status", what
            expected_rejected[junk_reason(what)] += 1
        elif local or history:
            # Delivered again: in this very batch (maybe before its original), or earlier.
            topic, payload = (local or history)[-1]
            replays += 1
        else:
            continue
        batch_items.append((topic, payload))
    before = positions(fleet)
    batch_list = list(batch_items)
    order.shuffle(batch_list)  # out of order, replays before their originals included
    now = time.monotonic()
    batch = [
        Incoming(0, topic, payload, mid, 0, T0, now)
        for mid, (topic, payload) in enumerate(batch_list)
    ]
    consumer._handle(batch)
    after = positions(fleet)
    history.extend(m for m, position in zip(local, local_positions, strict=True) if after[position])
    landed = after - before
    assert sorted(landed) == sorted(expected_valid)
    assert all(after[p] == 1 for p in expected_valid)
    rejected = counts(registry, "lainaamo_ingest_rejected_messages_total")
    assert +rejected == +expected_rejected
    dropped = counts(registry, "lainaamo_ingest_dropped_messages_total")
    assert dropped["duplicate"] == replays
    assert dropped["stale"] == dropped["not_collected"] == 0
    ingested = counts(registry, "lainaamo_ingest_messages_total", "kind")
    assert ingested["usage"] == expected_usage
