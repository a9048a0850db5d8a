"""The broker watch's figures: what it takes from `$SYS`, what it exports, what it refuses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from server.adapters.mosquitto_auth import SERVER_SYS_READS
from server.entrypoints.broker_watch import DROPPED_TOPIC, STORED_TOPIC, TOPICS, BrokerFigures


def registry_with(figures: BrokerFigures) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(figures)
    return registry


def test_nothing_is_exported_before_the_broker_has_spoken() -> None:
    registry = registry_with(BrokerFigures())
    assert registry.get_sample_value("lainaamo_broker_dropped_messages_total") is None
    assert registry.get_sample_value("lainaamo_broker_stored_messages") is None


def test_the_broker_counts_are_exported_and_forgotten_with_the_connection() -> None:
    figures = BrokerFigures()
    registry = registry_with(figures)
    assert figures.update(DROPPED_TOPIC, b"17")
    assert figures.update(STORED_TOPIC, b" 4242\n")
    assert registry.get_sample_value("lainaamo_broker_dropped_messages_total") == 17
    assert registry.get_sample_value("lainaamo_broker_stored_messages") == 4242
    assert figures.update(DROPPED_TOPIC, b"0")  # the broker restarted: a counter reset
    assert registry.get_sample_value("lainaamo_broker_dropped_messages_total") == 0
    figures.forget()
    assert registry.get_sample_value("lainaamo_broker_dropped_messages_total") is None


def test_anything_but_a_count_on_a_watched_topic_changes_nothing() -> None:
    figures = BrokerFigures()
    figures.update(DROPPED_TOPIC, b"5")
    # 400 digits: more than a float holds (OverflowError); 5,000: more than int() reads.
    for payload in (
        b"",
        b"-1",
        b"1.5",
        b"many",
        b"\xff\xfe",
        b"5 seconds",
        b"9" * 400,
        b"9" * 5000,
    ):
        assert not figures.update(DROPPED_TOPIC, payload)
    assert not figures.update("$SYS/broker/uptime", b"7")
    assert figures.get(DROPPED_TOPIC) == 5


@given(st.text(max_size=60), st.binary(max_size=60))
def test_no_message_makes_it_raise(topic: str, payload: bytes) -> None:
    figures = BrokerFigures()
    figures.update(topic, payload)
    list(figures.collect())


def test_the_acl_lets_the_server_read_what_the_watch_subscribes_to() -> None:
    assert set(TOPICS) == set(SERVER_SYS_READS)
