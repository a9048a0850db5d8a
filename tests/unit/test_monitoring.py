"""monitoring/: Prometheus config, alert rules and their promtool unit tests, Grafana provisioning.

promtool (Debian's `prometheus` package, installed by `make test` through
scripts/ensure-services.sh) validates the configuration, runs every rule's unit tests and
parses every dashboard query.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.metrics_catalogue import sample_names

ROOT = Path(__file__).parents[2]
MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
GRAFANA = MONITORING / "grafana"
DASHBOARDS = {
    "Fleet operations": GRAFANA / "dashboards" / "fleet-operations.json",
    "Loan programme": GRAFANA / "dashboards" / "loan-programme.json",
}
# Series Prometheus itself adds to every scrape (usable in rules besides ours).
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
_METRIC = re.compile(r"\blainaamo_[a-z0-9_]+")


def promtool(*args: str, cwd: Path = ROOT) -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is missing: install Debian's prometheus package "
            "(`sudo apt-get install prometheus`, or `make services` as root)"
        )
    done = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every query in the dashboards."""
    found = []
    for title, path in DASHBOARDS.items():
        for panel in panels(json.loads(path.read_text(encoding="utf-8"))):
            for target in panel.get("targets", []):
                found.append((f"{title} / {panel['title']} / {target['refId']}", target["expr"]))
    return found


# --- Prometheus ----------------------------------------------------------------------------


def test_alert_rules_and_config_are_valid() -> None:
    assert "SUCCESS" in promtool("check", "rules", str(ALERTS))
    # The config names alerts.yml relative to itself, so this also checks that it is found.
    out = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert "1 rule files found" in out


def test_prometheus_scrapes_the_web_server_and_the_ingest() -> None:
    config = load_yaml(MONITORING / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
        for job in config["scrape_configs"]
    }
    # Ports: http_port and ingest_metrics_port of lainaamo/config.py.
    assert targets == {"lainaamo-api": ["api:8000"], "lainaamo-ingest": ["ingest:9101"]}


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool rule tests in monitoring/tests/"
    out = promtool("test", "rules", *(str(p) for p in RULE_TESTS))
    assert "FAILED" not in out


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert sorted(set(names) - firing) == [], "alerts never tested firing"
    assert sorted(set(names) - quiet) == [], "alerts never tested not firing"
    assert sorted((firing | quiet) - set(names)) == [], "tests of alerts that do not exist"


def test_alerts_cover_the_issue_and_say_what_to_do() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for needed in (
        "LainaamoServerDown",
        "LainaamoIngestDown",
        "LainaamoBrokerDisconnected",
        "LainaamoIngestBacklogGrowing",
        "LainaamoIngestLagHigh",
        "LainaamoManyDevicesOffline",
        "LainaamoDriftNotConverging",
        "LainaamoOverdueLoansRising",
        "LainaamoCommandFailures",
        "LainaamoSupportFailureRatio",
        "LainaamoSupportSlowSetup",
    ):
        assert needed in rules
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_rules_and_dashboards_use_only_catalogued_metrics() -> None:
    known = sample_names()
    used = {("alerts.yml", m) for rule in alert_rules() for m in _METRIC.findall(rule["expr"])}
    used |= {(where, m) for where, expr in dashboard_exprs() for m in _METRIC.findall(expr)}
    assert used, "no metric names found"
    unknown = sorted((where, m) for where, m in used if m not in known)
    assert unknown == [], "not in docs/metrics.md (or not the scraped sample name)"
    for rule in alert_rules():
        for word in re.findall(r"\b(?<![_:])([a-z_]+)\{", rule["expr"]):
            assert word.startswith("lainaamo_") or word in PROMETHEUS_SERIES, word


# --- Grafana -------------------------------------------------------------------------------


def test_grafana_datasource_and_dashboard_provider() -> None:
    sources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = sources["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "lainaamo-prometheus",
        "http://prometheus:9090",
    )
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "lainaamo.yml")
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


@pytest.mark.parametrize("title", DASHBOARDS)
def test_dashboard_structure(title: str) -> None:
    dashboard = json.loads(DASHBOARDS[title].read_text(encoding="utf-8"))
    assert dashboard["title"] == title
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    all_panels = list(panels(dashboard))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {title}"
    queried = [panel for panel in all_panels if panel["type"] not in {"row", "text"}]
    assert queried
    for panel in queried:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "lainaamo-prometheus", panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "lainaamo-prometheus", panel["title"]
            assert target["expr"].strip(), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_loan_programme_shows_loans_queue_support_and_waits_for_usage() -> None:
    dashboard = json.loads(DASHBOARDS["Loan programme"].read_text(encoding="utf-8"))
    exprs = " ".join(expr for where, expr in dashboard_exprs() if where.startswith("Loan"))
    for metric in (
        "lainaamo_devices{",
        "lainaamo_loans{",
        "lainaamo_loans_overdue",
        'lainaamo_commands{state="queued"}',
        "lainaamo_support_sessions_requested_total",
        "lainaamo_support_sessions_ended_total",
    ):
        assert metric in exprs
    usage = [p for p in panels(dashboard) if "usage" in p["title"].lower()]
    assert usage and all(not p.get("targets") for p in usage), "usage panels must not query yet"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool has no "check this expression" command, but it parses every recording rule:
    # one rule per query validates them all offline.
    exprs = dashboard_exprs()
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query:{i}", "expr": expr}
                    for i, (_, expr) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    assert f"SUCCESS: {len(exprs)} rules found" in promtool("check", "rules", str(path))
