"""docs/metrics.md lists exactly what the server exports, with bounded labels only."""

from __future__ import annotations

from support.fleet import Fleet
from support.metrics_catalogue import ALLOWED_LABELS, FORBIDDEN_LABELS, documented

from server.entrypoints.app import scrape_registry
from server.entrypoints.broker_watch import TOPICS, BrokerWatch


def exported(fleet: Fleet) -> dict[str, tuple[str, frozenset[str]]]:
    """Family name -> (type, label names) of everything the web and ingest processes export."""
    services = fleet.services
    # The ingest and remote-support metrics are created on first use; force them.
    ingest = services.ingest_metrics
    assert ingest.support is services.support_metrics  # one set, shared with the API
    # Labelled metrics without a child have no samples to read labels from: one command each.
    ingest.command_outcomes.labels("lock", "done")
    ingest.command_latency.labels("lock")
    # The web's HTTP metrics and the scheduler's (one process of each kind in production).
    services.http_metrics.observe("/api/v1/devices", "GET", 200, 0.01)
    assert services.scheduler_metrics.leader is not None
    # The ingest's broker watch (as `lainaamo ingest` wires it), once the broker has spoken.
    watch = BrokerWatch(services.settings, services.registry)
    for topic in TOPICS:
        assert watch.figures.update(topic, b"0")
    families: dict[str, tuple[str, frozenset[str]]] = {}
    for family in scrape_registry(services).collect():
        # `_created` samples carry no labels of their own; `le` is the histogram bucket.
        labels = frozenset(label for sample in family.samples for label in sample.labels)
        assert family.samples, f"{family.name} has no samples: its labels cannot be checked"
        families[family.name] = (family.type, labels)
    return families


def test_every_exported_metric_is_documented_and_every_documented_one_exported(
    fleet: Fleet,
) -> None:
    families = exported(fleet)
    docs = documented()
    # The fleet gauges come from the database: their absence would mean the query failed.
    assert "lainaamo_devices" in families and "lainaamo_loans_overdue" in families
    assert sorted(set(families) - set(docs)) == [], "exported but not in docs/metrics.md"
    assert sorted(set(docs) - set(families)) == [], "in docs/metrics.md but not exported"
    for name, (kind, labels) in families.items():
        entry = docs[name]
        assert kind == entry.type, f"{name}: exported as {kind}, documented as {entry.type}"
        assert labels - {"le"} == entry.labels, f"{name}: labels {sorted(labels)}"


def test_labels_are_bounded(fleet: Fleet) -> None:
    for name, (_, labels) in exported(fleet).items():
        assert not labels & FORBIDDEN_LABELS, f"{name} has a per-object label"
        assert labels <= ALLOWED_LABELS, f"{name} has labels {sorted(labels - ALLOWED_LABELS)}"


def test_fleet_gauges_count_the_seeded_fleet_per_unit(fleet: Fleet) -> None:
    devices: dict[str, float] = {}
    for family in scrape_registry(fleet.services, "fleet").collect():
        if family.name == "lainaamo_devices":
            for sample in family.samples:
                unit = sample.labels["unit"]
                devices[unit] = devices.get(unit, 0) + sample.value
    # tab-001…tab-009 of the seed, three in each of its three units, whatever their states.
    assert devices == {"aikuissosiaalityo": 3, "mielenterveys": 3, "paihde": 3}
