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


def test_prometheus_scrapes_the_web_server_the_ingest_and_the_scheduler() -> None:
    config = load_yaml(MONITORING / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    targets = {
        job["job_name"]: [
            (name, sd["type"], sd["port"])
            for sd in job.get("dns_sd_configs", [])
            for name in sd["names"]
        ]
        + [target for s in job.get("static_configs", []) for target in s["targets"]]
        for job in config["scrape_configs"]
    }
    # Ports: http_port, ingest_metrics_port and scheduler_metrics_port of lainaamo/config.py;
    # names: the compose services (tests/unit/test_compose.py checks them against the file).
    assert targets == {
        "lainaamo-api": [("web", "A", 8000)],
        "lainaamo-fleet": ["web:8000"],
        "lainaamo-ingest": [("ingest", "A", 9101)],
        "lainaamo-scheduler": [("scheduler", "A", 9102)],
    }


def test_the_figures_from_the_database_are_scraped_once() -> None:
    # Every web container computes them from the same database: lainaamo-api scrapes each
    # container's own metrics, lainaamo-fleet the database figures from one (app.py serves
    # them apart; tests/e2e/test_production_shape.py checks the split on a running server).
    jobs = {
        job["job_name"]: job for job in load_yaml(MONITORING / "prometheus.yml")["scrape_configs"]
    }
    assert jobs["lainaamo-api"]["metrics_path"] == "/metrics/process"
    assert jobs["lainaamo-fleet"]["metrics_path"] == "/metrics/fleet"
    assert "dns_sd_configs" not in jobs["lainaamo-fleet"], "one target, not one per container"
    for name in ("lainaamo-ingest", "lainaamo-scheduler"):
        assert jobs[name]["metrics_path"] == "/metrics"


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
        "LainaamoSchedulerNotLeading",
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


def test_loan_programme_shows_use_loans_queue_and_support_per_unit() -> None:
    dashboard = json.loads(DASHBOARDS["Loan programme"].read_text(encoding="utf-8"))
    exprs = " ".join(expr for where, expr in dashboard_exprs() if where.startswith("Loan"))
    for metric in (
        "lainaamo_devices{",
        "lainaamo_loans{",
        "lainaamo_loans_overdue",
        "lainaamo_loans_unused",
        "lainaamo_loan_queue_oldest_wait_seconds",
        "lainaamo_usage_active_seconds_total",
        "lainaamo_usage_launches_total",
        "lainaamo_support_unit_sessions_total",
        "lainaamo_support_sessions_ended_total",
    ):
        assert metric in exprs
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "unit"
    per_unit = [p for p in panels(dashboard) if "by unit" in p["title"]]
    assert per_unit and all("by (unit)" in t["expr"] for p in per_unit for t in p["targets"])


def test_dashboards_are_what_the_builder_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for name, dashboard in builder.DASHBOARDS.items():
        on_disk = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert on_disk == builder.render(dashboard), (
            f"{name} differs: run python monitoring/grafana/build_dashboards.py"
        )


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
