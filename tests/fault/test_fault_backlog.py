"""A stuck ingest (SIGSTOP) while reports keep coming: the backlog builds up at the broker.

With the queue limits of deploy/mosquitto.conf the broker keeps every report and the stuck
ingest, once it carries on (SIGCONT), commits each one once. With a tiny limit the broker
drops reports, and the drop is not silent: the broker counts it in `$SYS`, and the ingest's
broker watch exports the count as `lainaamo_broker_dropped_messages_total` (the alert
LainaamoBrokerDroppingMessages fires on it; monitoring/tests/broker.yml tests the rule).

The test reads the broker's `$SYS` figures itself too (the ingest's watch is stopped with
the ingest), after a full round of them (`sys_interval 1` here), never a stale one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faultkit import (
    Publisher,
    Report,
    SysFigures,
    assert_exactly_once,
    assert_no_errors,
    count_reports,
    dump,
    ingest_process,
    metric,
    pause,
    resume,
    stored_reports,
    subscribed,
    wait_stored,
)
from support.fleet import make_fleet
from support.mosquitto import Mosquitto
from support.postgres import create_database, drop_database
from support.processes import Process, wait_until

from server.entrypoints.broker_watch import DROPPED_TOPIC, STORED_TOPIC, TOPICS

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.conf"
RECEIVE_MAXIMUM = 10  # what the broker may have in flight to the ingest; the rest is queued


def shipped_queue_limits() -> str:
    """The `max_queued_*` lines of deploy/mosquitto.conf."""
    lines = re.findall(r"(?m)^max_queued_\w+ \d+$", DEPLOY_CONF.read_text(encoding="utf-8"))
    assert {line.split()[0] for line in lines} == {"max_queued_messages", "max_queued_bytes"}
    return "\n".join(lines)


def run_stuck_ingest(
    pg_url: str, tmp_path: Path, limits: str, reports: int
) -> tuple[set[Report], float]:
    """Steady ingest, then SIGSTOP, `reports` more, SIGCONT; returns (sent, broker drops)."""
    # Appended after tests/support/mosquitto.py's own settings, so these win.
    broker = Mosquitto(tmp_path / "broker", extra_conf=f"sys_interval 1\n{limits}")
    broker.start()
    figures = SysFigures(broker, TOPICS)
    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=3)
    factory = fleet.services.session_factory
    ingest, port = ingest_process(
        db_url,
        broker,
        tmp_path / "ingest.log",
        LAINAAMO_MQTT_PROTOCOL="5",
        LAINAAMO_INGEST_RECEIVE_MAXIMUM=str(RECEIVE_MAXIMUM),
    )
    processes: list[Process] = [ingest.start()]
    publisher = Publisher(broker)
    try:
        wait_until(subscribed(port), 30, "the ingest to subscribe")
        before = publisher.publish(20)
        wait_stored(factory, before, 20, "steady ingest")
        held_before = figures.fresh()[STORED_TOPIC]  # retained messages: nothing in flight

        pause(ingest)
        stuck = publisher.publish(reports)  # each acknowledged by the broker: its to keep now
        now = figures.fresh()
        dropped = now[DROPPED_TOPIC]
        # The broker holds what it took, in flight to the stuck ingest or queued, or it
        # dropped it: the backlog is at the broker, and any loss is counted.
        assert now[STORED_TOPIC] + dropped >= held_before + reports
        assert now[STORED_TOPIC] >= held_before + RECEIVE_MAXIMUM, "a backlog at the broker"
        assert count_reports(factory) == len(before), "the stuck ingest committed nothing"

        resume(ingest)
        sent = before | stuck
        wait_until(
            lambda: count_reports(factory) + dropped == len(sent),
            30,
            "the resumed ingest to commit every report the broker kept",
        )
        rows = stored_reports(factory)
        assert len(rows) == len(set(rows)) and set(rows) <= sent
        # The ingest process exports the broker's figures (its broker watch).
        wait_until(
            lambda: metric(port, "lainaamo_broker_dropped_messages_total") == dropped,
            15,
            "the ingest's /metrics to show the broker's drops",
        )
        assert metric(port, "lainaamo_broker_stored_messages") is not None
        if dropped == 0:
            assert_exactly_once(factory, sent)
        assert_no_errors(ingest)
        return sent, dropped
    except AssertionError:
        dump(*processes)
        print(broker.log_tail())
        raise
    finally:
        resume(ingest)
        publisher.close()
        figures.close()
        for process in processes:
            process.stop()
        broker.stop()
        fleet.services.close()
        drop_database(db_url)


def test_a_stuck_ingest_builds_a_backlog_at_the_broker_and_loses_nothing_below_the_limit(
    pg_url: str, tmp_path: Path
) -> None:
    sent, dropped = run_stuck_ingest(pg_url, tmp_path, shipped_queue_limits(), 300)
    assert dropped == 0
    assert len(sent) == 320


def test_beyond_the_queue_limit_the_broker_drops_and_the_drops_are_counted(
    pg_url: str, tmp_path: Path
) -> None:
    limits = "max_queued_messages 20\nmax_queued_bytes 0"
    sent, dropped = run_stuck_ingest(pg_url, tmp_path, limits, 100)
    # In flight (RECEIVE_MAXIMUM) and queued (20) survive; the rest was dropped, visibly.
    print(f"dropped {dropped:.0f} of 100")
    assert dropped > 0
    assert dropped <= 100 - RECEIVE_MAXIMUM - 20
