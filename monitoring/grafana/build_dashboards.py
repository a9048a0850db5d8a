"""Writes the Grafana dashboards in dashboards/ from the compact descriptions below.

Run `python monitoring/grafana/build_dashboards.py` after changing them; a test
(tests/unit/test_monitoring.py) fails when the JSON files differ from what this writes, and
checks every query with promtool and against docs/metrics.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "lainaamo-prometheus"}
UNIT = 'unit=~"$unit"'

# (title, [(kind, title, width, height, unit, [(expr, legend)])] per row) per dashboard.
Panel = tuple[str, str, int, int, str, list[tuple[str, str]]]


def unit_variable() -> dict[str, Any]:
    query = "label_values(lainaamo_devices, unit)"
    return {
        "name": "unit",
        "label": "Unit",
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "unit"},
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


FLEET_OPERATIONS: list[tuple[str, list[Panel]]] = [
    (
        "Services",
        [
            ("stat", "Web servers up", 5, 4, "short", [('sum(up{job="lainaamo-api"})', "web")]),
            (
                "stat",
                "Ingests up",
                5,
                4,
                "short",
                [('sum(up{job="lainaamo-ingest"})', "ingest")],
            ),
            (
                "stat",
                "Scheduler leading",
                5,
                4,
                "short",
                [("sum(lainaamo_scheduler_leader)", "leader")],
            ),
            (
                "stat",
                "Broker connected (ingests)",
                5,
                4,
                "short",
                [("min(lainaamo_ingest_broker_connected)", "broker")],
            ),
            (
                "stat",
                "Version",
                4,
                4,
                "short",
                [("count by (version) (lainaamo_build_info)", "{{version}}")],
            ),
        ],
    ),
    (
        "Devices",
        [
            (
                "timeseries",
                "Devices by state",
                12,
                8,
                "short",
                [(f"sum by (state) (lainaamo_devices{{{UNIT}}})", "{{state}}")],
            ),
            (
                "timeseries",
                "Online, stale, low battery, in drift",
                12,
                8,
                "short",
                [
                    (f"sum(lainaamo_devices_online{{{UNIT}}})", "online"),
                    (f"sum(lainaamo_devices_stale{{{UNIT}}})", "stale"),
                    (f"sum(lainaamo_devices_low_battery{{{UNIT}}})", "low battery"),
                    (f"sum(lainaamo_devices_in_drift{{{UNIT}}})", "in drift"),
                ],
            ),
            (
                "bargauge",
                "Online share of devices on loan, by unit",
                12,
                8,
                "percentunit",
                [
                    (
                        f"sum by (unit) (lainaamo_devices_online{{{UNIT}}})"
                        f' / sum by (unit) (lainaamo_devices{{state="on_loan", {UNIT}}})',
                        "{{unit}}",
                    )
                ],
            ),
            (
                "bargauge",
                "Stale and in drift, by unit",
                12,
                8,
                "short",
                [
                    (f"sum by (unit) (lainaamo_devices_stale{{{UNIT}}})", "{{unit}} stale"),
                    (f"sum by (unit) (lainaamo_devices_in_drift{{{UNIT}}})", "{{unit}} drift"),
                ],
            ),
        ],
    ),
    (
        "Ingest",
        [
            (
                "timeseries",
                "Messages ingested per second",
                12,
                8,
                "short",
                [("sum by (kind) (rate(lainaamo_ingest_messages_total[5m]))", "{{kind}}")],
            ),
            (
                "timeseries",
                "Rejected and dropped messages per second",
                12,
                8,
                "short",
                [
                    (
                        "sum by (reason) (rate(lainaamo_ingest_rejected_messages_total[5m]))",
                        "rejected {{reason}}",
                    ),
                    (
                        "sum by (reason) (rate(lainaamo_ingest_dropped_messages_total[5m]))",
                        "dropped {{reason}}",
                    ),
                ],
            ),
            (
                "timeseries",
                "Ingest lag (p50, p95)",
                12,
                8,
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) "
                        "(rate(lainaamo_ingest_lag_seconds_bucket[5m])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(lainaamo_ingest_lag_seconds_bucket[5m])))",
                        "p95",
                    ),
                ],
            ),
            (
                "timeseries",
                "Backlog and commit errors",
                12,
                8,
                "short",
                [
                    ("sum(lainaamo_ingest_backlog_messages)", "backlog"),
                    ("sum(increase(lainaamo_ingest_commit_errors_total[5m]))", "commit errors"),
                ],
            ),
            (
                "timeseries",
                "Tablets' outboxes: oldest unconfirmed report (p50, p90)",
                12,
                8,
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) "
                        "(rate(lainaamo_device_outbox_oldest_seconds_bucket[15m])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.9, sum by (le) "
                        "(rate(lainaamo_device_outbox_oldest_seconds_bucket[15m])))",
                        "p90",
                    ),
                ],
            ),
            (
                "timeseries",
                "Reports tablets sent again or dropped, per hour",
                12,
                8,
                "short",
                [
                    ("sum(increase(lainaamo_device_reports_resent_total[1h]))", "sent again"),
                    ("sum(increase(lainaamo_device_reports_dropped_total[1h]))", "dropped"),
                ],
            ),
        ],
    ),
    (
        "Commands",
        [
            (
                "timeseries",
                "Command outcomes per hour",
                12,
                8,
                "short",
                [
                    (
                        "sum by (outcome) (increase(lainaamo_command_outcomes_total[1h]))",
                        "{{outcome}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Command latency (p95) by command",
                12,
                8,
                "s",
                [
                    (
                        "histogram_quantile(0.95, sum by (name, le) "
                        "(rate(lainaamo_command_latency_seconds_bucket[1h])))",
                        "{{name}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Commands in flight by state",
                12,
                8,
                "short",
                [("sum by (state) (lainaamo_commands)", "{{state}}")],
            ),
        ],
    ),
    (
        "Web server",
        [
            (
                "timeseries",
                "Responses per second by status class",
                12,
                8,
                "reqps",
                [("sum by (code) (rate(lainaamo_http_responses_total[5m]))", "{{code}}")],
            ),
            (
                "timeseries",
                "Slowest routes (p95)",
                12,
                8,
                "s",
                [
                    (
                        "topk(8, histogram_quantile(0.95, sum by (route, method, le) "
                        "(rate(lainaamo_http_request_duration_seconds_bucket[5m]))))",
                        "{{method}} {{route}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Remote support and integration",
        [
            (
                "timeseries",
                "Sessions ended per hour by outcome",
                12,
                8,
                "short",
                [
                    (
                        "sum by (outcome) (increase(lainaamo_support_sessions_ended_total[1h]))",
                        "{{outcome}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Setup time (p50, p90)",
                12,
                8,
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) "
                        "(rate(lainaamo_support_setup_seconds_bucket[1h])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.9, sum by (le) "
                        "(rate(lainaamo_support_setup_seconds_bucket[1h])))",
                        "p90",
                    ),
                ],
            ),
            (
                "timeseries",
                "Webhook deliveries by state",
                12,
                8,
                "short",
                [("sum by (state) (lainaamo_webhook_deliveries)", "{{state}}")],
            ),
            (
                "timeseries",
                "Webhook posts per hour by outcome",
                12,
                8,
                "short",
                [
                    (
                        "sum by (outcome) (increase(lainaamo_webhook_delivery_attempts_total[1h]))",
                        "{{outcome}}",
                    )
                ],
            ),
        ],
    ),
]

LOAN_PROGRAMME: list[tuple[str, list[Panel]]] = [
    (
        "Utilisation and loans",
        [
            (
                "stat",
                "Devices on loan",
                5,
                4,
                "short",
                [(f'sum(lainaamo_devices{{state="on_loan", {UNIT}}})', "on loan")],
            ),
            (
                "stat",
                "Checked out (on loan / usable devices)",
                5,
                4,
                "percentunit",
                [
                    (
                        f'sum(lainaamo_devices{{state="on_loan", {UNIT}}}) / sum(lainaamo_devices'
                        f'{{state=~"on_loan|in_stock|awaiting_wipe|in_repair", {UNIT}}})',
                        "checked out",
                    )
                ],
            ),
            (
                "stat",
                "Loans with no use in 14 days",
                5,
                4,
                "short",
                [(f"sum(lainaamo_loans_unused{{{UNIT}}})", "unused")],
            ),
            (
                "stat",
                "Overdue loans",
                5,
                4,
                "short",
                [(f"sum(lainaamo_loans_overdue{{{UNIT}}})", "overdue")],
            ),
            (
                "stat",
                "Longest wait in the queue",
                4,
                4,
                "s",
                [(f"max(lainaamo_loan_queue_oldest_wait_seconds{{{UNIT}}})", "wait")],
            ),
            (
                "timeseries",
                "Loans by state",
                12,
                8,
                "short",
                [
                    (
                        "sum by (state) "
                        f'(lainaamo_loans{{state=~"requested|ready|on_loan|paused", {UNIT}}})',
                        "{{state}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Overdue loans and waiting requests by unit",
                12,
                8,
                "short",
                [
                    (f"sum by (unit) (lainaamo_loans_overdue{{{UNIT}}})", "{{unit}} overdue"),
                    (
                        f'sum by (unit) (lainaamo_loans{{state="requested", {UNIT}}})',
                        "{{unit}} waiting",
                    ),
                ],
            ),
        ],
    ),
    (
        "Usage (daily totals reported by the tablets)",
        [
            (
                "timeseries",
                "Active (screen-on) hours per day, by unit",
                12,
                8,
                "h",
                [
                    (
                        f"sum by (unit) (increase(lainaamo_usage_active_seconds_total{{{UNIT}}}"
                        "[1d])) / 3600",
                        "{{unit}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Active minutes per day per device on loan, by unit",
                12,
                8,
                "m",
                [
                    (
                        f"sum by (unit) (increase(lainaamo_usage_active_seconds_total{{{UNIT}}}"
                        "[1d])) / 60 / sum by (unit) "
                        f'(lainaamo_devices{{state="on_loan", {UNIT}}})',
                        "{{unit}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Launches per day by shortcut category",
                12,
                8,
                "short",
                [
                    (
                        "sum by (category) "
                        f"(increase(lainaamo_usage_launches_total{{{UNIT}}}[1d]))",
                        "{{category}}",
                    )
                ],
            ),
            (
                "bargauge",
                "Loans with no use in 14 days, by unit",
                12,
                8,
                "short",
                [(f"sum by (unit) (lainaamo_loans_unused{{{UNIT}}})", "{{unit}}")],
            ),
        ],
    ),
    (
        "Remote support",
        [
            (
                "timeseries",
                "Connected support sessions per week, by unit",
                12,
                8,
                "short",
                [
                    (
                        f"sum by (unit) (increase(lainaamo_support_unit_sessions_total{{{UNIT}}}"
                        "[1w]))",
                        "{{unit}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Support hours per week, by unit",
                12,
                8,
                "h",
                [
                    (
                        f"sum by (unit) (increase(lainaamo_support_unit_seconds_total{{{UNIT}}}"
                        "[1w])) / 3600",
                        "{{unit}}",
                    )
                ],
            ),
            (
                "timeseries",
                "Requests, completed and declined sessions per day (all units)",
                12,
                8,
                "short",
                [
                    (
                        "sum(increase(lainaamo_support_sessions_requested_total[1d]))",
                        "requested",
                    ),
                    (
                        "sum(increase(lainaamo_support_sessions_ended_total{outcome=~"
                        '"hangup_counsellor|hangup_client|max_duration|idle"}[1d]))',
                        "completed",
                    ),
                    (
                        "sum(increase(lainaamo_support_sessions_ended_total{outcome=~"
                        '"declined|consent_timeout"}[1d]))',
                        "declined or unanswered",
                    ),
                ],
            ),
            (
                "timeseries",
                "Session length (median, all units)",
                12,
                8,
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) "
                        "(rate(lainaamo_support_session_duration_seconds_bucket[1d])))",
                        "median",
                    )
                ],
            ),
        ],
    ),
]


def build(
    uid: str, title: str, description: str, rows: list[tuple[str, list[Panel]]]
) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row_title, row_panels in rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x, line_h = 0, 0
        for kind, panel_title, w, h, unit, queries in row_panels:
            if x + w > 24:
                x, y = 0, y + line_h
                line_h = 0
            panel: dict[str, Any] = {
                "id": len(panels) + 1,
                "type": kind,
                "title": panel_title,
                "gridPos": {"h": h, "w": w, "x": x, "y": y},
                "datasource": DS,
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for i, (expr, legend) in enumerate(queries)
                ],
            }
            if kind == "bargauge":
                panel["options"] = {"orientation": "horizontal", "displayMode": "basic"}
            panels.append(panel)
            x += w
            line_h = max(line_h, h)
        y += line_h
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["lainaamo"],
        "editable": False,
        "schemaVersion": 39,
        "version": 2,
        "time": {"from": "now-30d" if "programme" in uid else "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "templating": {"list": [unit_variable()]},
        "annotations": {"list": []},
        "panels": panels,
    }


DASHBOARDS = {
    "fleet-operations.json": build(
        "lainaamo-fleet-operations",
        "Fleet operations",
        "For IT support: services, devices per unit (online, stale, drift), ingest, commands, "
        "the web server, remote support and webhooks.",
        FLEET_OPERATIONS,
    ),
    "loan-programme.json": build(
        "lainaamo-loan-programme",
        "Loan programme",
        "For regional administrators: utilisation by use (not only checkout), loans and the "
        "queue, usage per unit and category, remote support per unit. No device or client "
        "appears: every figure is per unit or category.",
        LOAN_PROGRAMME,
    ),
}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, dashboard in DASHBOARDS.items():
        (HERE / "dashboards" / name).write_text(render(dashboard), encoding="utf-8")


if __name__ == "__main__":
    main()
