"""docs/protocol.md says the same as the code: its topics, who subscribes to what, its
schemas. A native agent is written from the document alone (issue 22 found it contradicting
itself about subscriptions); these checks keep its lists and the code's in step."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from agent.core import AgentCore
from lainaamo.protocol import Kind, Topics
from server.adapters.mosquitto_auth import DEVICE_READS, DEVICE_WRITES

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def _section(start: str, end: str) -> str:
    text = DOC[DOC.index(start) :]
    return text[: text.index(end)]


def _leaves(text: str) -> list[str]:
    return re.findall(r"`\{p\}/\{id\}/([a-z/]+)`", text)


def test_the_topic_table_has_every_topic_and_direction() -> None:
    table = _section("## 3. Topics, QoS and retain", "- The agent subscribes")
    rows = {
        leaf: direction
        for leaf, direction in re.findall(
            r"^\| `\{p\}/\{id\}/([a-z/]+)` \| ([^|]+?) \|", table, re.M
        )
    }
    assert set(rows) == {kind.value for kind in Kind}
    to_device = {leaf for leaf, d in rows.items() if d.startswith("server → device")}
    from_device = {leaf for leaf, d in rows.items() if d.startswith("device → server")}
    assert to_device == set(DEVICE_READS)
    assert from_device == set(DEVICE_WRITES)


def test_every_place_that_lists_the_subscriptions_lists_the_agents_own() -> None:
    class Core:  # only what AgentCore.subscriptions uses
        device_id = "tab-001"
        topics = Topics("fleet/v1")

    agent = [t.removeprefix("fleet/v1/tab-001/") for t in AgentCore.subscriptions(Core())]  # type: ignore[arg-type]
    assert sorted(agent) == sorted(DEVICE_READS)
    places = {
        "§3": _section("- The agent subscribes to exactly", "\n- Everything is QoS 1"),
        "§7.1": _section("5. **Subscribe** to", "6. **Flush the outbox**"),
    }
    for where, text in places.items():
        assert _leaves(text) == agent, where
    checklist = _section("## 15. Checklist for a new agent", "## 16.")
    (line,) = [ln for ln in checklist.splitlines() if "After CONNACK" in ln]
    assert re.search(r"subscribe \(([a-z, ]+);", line).group(1).split(", ") == agent  # type: ignore[union-attr]


def test_the_document_names_every_schema() -> None:
    shipped = {
        path.name
        for path in resources.files("lainaamo.protocol").joinpath("schemas").iterdir()
        if path.name.endswith(".json")
    }
    intro = DOC[: DOC.index("## Contents")]
    assert set(re.findall(r"`([a-z_]+\.json)`", intro)) == shipped
