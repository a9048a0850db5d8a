"""API and metrics at size: 100,000 devices and a year of loans in PostgreSQL.

Builds a throw-away database: an organisation, units and users through the service layer
(as the demo's `seed` does), then the fleet with set-based SQL — devices with their status
and desired state, a year of loans (most returned, ~60 % of the devices on loan now, some
overdue, paused or lost, a queue), support sessions, usage device-days of the last two weeks
and the units' daily usage roll-up of the year. Then serves the real app over real HTTP
(waitress, as `lainaamo serve`) and measures, one request after another:

* `GET /api/v1/devices` with typical filters, paging on with the cursor, as IT support
  (the whole region) and as a counsellor (one unit): p50 and p99;
* `GET /metrics` with the fleet collector's 5-second cache off (every scrape queries);
* the programme report of the last year: the console page `GET /reports` and its CSV as
  the regional administrator, and the service-layer function alone;

against the same server's `GET /healthz` (one `SELECT 1`): the cost of any request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from bench.report import Report
from lainaamo import heap

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from server.bootstrap import Services

DESCRIPTION = "device list p99 < 50 ms, /metrics < 250 ms, report < 1 s at 100,000 devices"

LIST_P99_MS = 50.0
METRICS_MS = 250.0
REPORT_MS = 1000.0
EXTRA_UNITS = 17  # with the demo's three: 20 units in the region


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=100_000, help="fleet size (%(default)s)")
    p.add_argument(
        "--requests", type=int, default=300, help="device-list requests per role (%(default)s)"
    )
    p.add_argument("--scrapes", type=int, default=60, help="uncached /metrics scrapes")
    p.add_argument("--reports", type=int, default=20, help="report requests per kind")


def run(args: argparse.Namespace, report: Report) -> None:
    devices = 2_000 if args.smoke else args.devices
    n_list = 20 if args.smoke else args.requests
    n_scrapes = 5 if args.smoke else args.scrapes
    n_reports = 3 if args.smoke else args.reports
    report.param("devices", devices)
    report.param("units", 3 + EXTRA_UNITS)
    from bench.env import throwaway_database  # SQLAlchemy: not when the CLI builds its parser

    with throwaway_database(args.database) as url, tempfile.TemporaryDirectory() as tmp:
        report.param("database", url.split("://")[0])
        services = _services(url, Path(tmp))
        try:
            _measure(services, devices, n_list, n_scrapes, n_reports, report)
        finally:
            services.close()


# --- building the data ------------------------------------------------------------------------


@dataclass
class Logins:
    admin: tuple[str, str, str]  # username, password, token
    it: tuple[str, str, str]
    counsellor: tuple[str, str, str]
    counsellor_unit: str


def _services(url: str, tmp: Path) -> Services:
    from lainaamo.config import Settings
    from server.adapters.db import upgrade
    from server.adapters.signing import generate_key_file
    from server.bootstrap import bootstrap

    upgrade(url)
    key = tmp / "command-signing.pem"
    signer = generate_key_file(key)
    settings = Settings.load({}).replace(
        database_url=url,
        command_signing_key_file=str(key),
        command_public_key=signer.public_key_b64,
    )
    return bootstrap(settings)


def _seed(services: Services, now: datetime) -> Logins:
    """Organisation, units, users and a few devices and loans through the service layer."""
    from server.entrypoints.demo import ORG, seed, seed_loans
    from server.service_layer import accounts

    logins = {login.role: login for login in seed(services.uow, 6)}
    for number in range(1, EXTRA_UNITS + 1):
        accounts.add_unit(services.uow(), ORG[0], f"yksikko{number:02d}", f"Yksikkö {number}")
    seed_loans(services, now - timedelta(days=2), lent=3, queued=0)
    a, i, c = logins["admin"], logins["it_support"], logins["counsellor"]
    return Logins(
        (a.username, a.password, a.token),
        (i.username, i.password, i.token),
        (c.username, c.password, c.token),
        c.units[0],
    )


# Every statement takes :n (devices), :now, :org, :units (unit ids), :user, :agreement.
# Device b-000042 belongs to units[42 % len(units)] (every 50th to the shared pool) and its
# fate now follows 42 % 100: <55 on loan, 55-56 paused, 57 lost, 58-59 reserved (ready),
# 60-89 in stock, 90-93 awaiting wipe, 94-96 in repair, 97 retired, 98-99 released.
_UNIT = "(:units)[1 + g % cardinality(:units)]"
_DEVICE_ID = "'b-' || lpad(g::text, 6, '0')"
BUILD: tuple[str, ...] = (
    f"""
    INSERT INTO devices (id, organisation_id, unit_id, asset_tag, serial, model,
                         lifecycle_state, created_at, updated_at)
    SELECT {_DEVICE_ID}, :org, CASE WHEN g % 50 = 0 THEN NULL ELSE {_UNIT} END,
           'BENCH-' || g, 'R' || (900000000 + g), (ARRAY['Galaxy Tab A9', 'Tab M10'])[1 + g % 2],
           CASE WHEN g % 100 = 57 THEN 'lost' WHEN g % 100 < 57 THEN 'on_loan'
                WHEN g % 100 < 90 THEN 'in_stock' WHEN g % 100 < 94 THEN 'awaiting_wipe'
                WHEN g % 100 < 97 THEN 'in_repair' WHEN g % 100 = 97 THEN 'retired'
                ELSE 'released' END,
           :now - interval '400 days' + (g % 30) * interval '1 day',
           :now - (g % 90) * interval '1 day'
    FROM generate_series(1, :n) g
    """,
    f"""
    INSERT INTO device_status (device_id, online, presence_boot, presence_seq,
        presence_changed_at, last_seen_at, status_interval_s, status_boot, status_seq,
        reported_at, battery_pct, charging, storage_free_mb, storage_total_mb, os_version,
        agent_version, network, signal_pct, uptime_s, locked, kiosk, desired_version,
        enforcement, all_enforced)
    SELECT {_DEVICE_ID}, g % 10 < CASE WHEN g % 100 < 58 THEN 7 ELSE 4 END, 1, g,
           :now - (g % 5000) * interval '1 minute', :now - (g % 3600) * interval '1 second',
           900, 1, g, :now - (g % 3600) * interval '1 second', (g * 37) % 101, g % 7 = 0,
           (g * 13) % 30000, 32768, '14', '0.9.0', (ARRAY['wifi', 'cellular'])[1 + g % 2],
           (g * 17) % 101, g % 900000, g % 100 >= 58, g % 100 < 58,
           CASE WHEN g % 33 = 0 THEN 2 ELSE 3 END,
           CAST(CASE WHEN g % 47 = 0 THEN '{{"unsupported": ["kiosk"], "failed": {{}}}}'
                ELSE '{{"unsupported": [], "failed": {{}}}}' END AS json),
           g % 47 <> 0
    FROM generate_series(1, :n) g
    """,
    f"""
    INSERT INTO device_desired (device_id, version, policy, changed_at, published_version,
                                published_at)
    SELECT {_DEVICE_ID}, 3,
           (SELECT policy FROM device_desired
            WHERE device_id = CASE WHEN g % 100 < 57 THEN 'tab-001' ELSE 'tab-006' END),
           :now - (g % 700) * interval '1 hour', 3, :now - (g % 700) * interval '1 hour'
    FROM generate_series(1, :n) g
    """,
    # The loans, staged with the number of their client, in one table first.
    """
    CREATE TEMP TABLE stage (client_no bigint, unit_id int, device_id varchar(64),
        state varchar(24), requested_at timestamptz, assigned_at timestamptz,
        handed_over_at timestamptz, due_at timestamptz, paused_at timestamptz,
        ended_at timestamptz, renewals int) ON COMMIT DROP
    """,
    # Loans of now: on loan (every 13th overdue), paused, lost, ready, released this year.
    f"""
    INSERT INTO stage
    SELECT g, {_UNIT}, {_DEVICE_ID},
           CASE WHEN g % 100 < 55 THEN 'on_loan' WHEN g % 100 < 57 THEN 'paused'
                WHEN g % 100 = 57 THEN 'lost' WHEN g % 100 < 60 THEN 'ready'
                ELSE 'released_to_client' END,
           h - interval '4 days', h - interval '1 day',
           CASE WHEN g % 100 < 58 OR g % 100 >= 98 THEN h END,
           CASE WHEN g % 13 = 0 THEN :now - (1 + g % 40) * interval '1 day'
                ELSE h + interval '90 days' END,
           CASE WHEN g % 100 BETWEEN 55 AND 56 THEN :now - interval '5 days' END,
           CASE WHEN g % 100 >= 98 THEN h + interval '60 days' END,
           g % 3
    FROM (SELECT g, :now - (1 + (g * 7) % 80) * interval '1 day'
                 - CASE WHEN g % 100 >= 98 THEN interval '100 days' ELSE interval '0 days' END
                 - CASE WHEN g % 13 = 0 THEN interval '60 days' ELSE interval '0 days' END AS h
          FROM generate_series(1, :n) g
          WHERE g % 100 < 60 OR g % 100 >= 98) s
    """,
    # A year (and a bit) of returned loans: two per device.
    """
    INSERT INTO stage
    SELECT :n + h, (:units)[1 + d % cardinality(:units)], 'b-' || lpad(d::text, 6, '0'),
           'returned', ho - (1 + h % 10) * interval '1 day', ho - interval '1 day', ho,
           ho + interval '60 days', NULL,
           LEAST(ho + (7 + h % 75) * interval '1 day', :now - interval '1 day'), h % 2
    FROM (SELECT h, 1 + (h * 7919) % :n AS d,
                 :now - (20 + h % 400) * interval '1 day' - (h % 24) * interval '1 hour' AS ho
          FROM generate_series(1, 2 * :n) h) s
    """,
    # Requests cancelled in the year, and the queue now.
    f"""
    INSERT INTO stage
    SELECT 3 * :n + g, {_UNIT}, NULL, CASE WHEN g % 3 = 0 THEN 'cancelled' ELSE 'requested' END,
           :now - (g % 200) * interval '1 hour', NULL, NULL, NULL, NULL,
           CASE WHEN g % 3 = 0 THEN :now - (g % 100) * interval '1 hour' END, 0
    FROM generate_series(1, GREATEST(:n / 25, 10)) g
    """,
    """
    INSERT INTO clients (id, unit_id, ref, created_at)
    SELECT 1000000 + client_no, unit_id, 'BENCH-' || client_no, requested_at FROM stage
    """,
    "SELECT setval(pg_get_serial_sequence('clients', 'id'), (SELECT max(id) FROM clients))",
    """
    INSERT INTO loans (organisation_id, unit_id, client_id, device_id, state, requested_at,
        requested_by, assigned_at, handed_over_at, handed_over_by, agreement_id,
        agreement_accepted_at, due_at, renewals, paused_at, hold, ended_at, updated_at)
    SELECT :org, unit_id, 1000000 + client_no, device_id, state, requested_at, :user,
           assigned_at, handed_over_at, CASE WHEN handed_over_at IS NOT NULL THEN :user END,
           CASE WHEN handed_over_at IS NOT NULL THEN :agreement END, handed_over_at, due_at,
           renewals, paused_at, client_no % 97 = 0, ended_at,
           COALESCE(ended_at, handed_over_at, requested_at)
    FROM stage
    """,
    # Remote-support sessions of the year: one for every fifth device on loan.
    """
    INSERT INTO support_sessions (id, organisation_id, device_id, loan_id, unit_id,
        started_by, started_by_name, mode, control_granted, purpose, state, end_reason,
        created_at, consent_deadline, consent_at, consent_result, connected_at,
        connection_type, ended_at, max_duration_s)
    SELECT 'bench-' || l.id, :org, l.device_id, l.id, l.unit_id, :user, 'Ohjaaja', 'view',
           false, '', CASE WHEN l.id % 9 = 0 THEN 'declined' ELSE 'ended' END,
           CASE WHEN l.id % 9 <> 0 THEN 'hangup_counsellor' END,
           t, t + interval '60 seconds', t + interval '8 seconds',
           CASE WHEN l.id % 9 = 0 THEN 'declined' ELSE 'accepted' END,
           CASE WHEN l.id % 9 <> 0 THEN t + interval '10 seconds' END, 'host',
           t + (60 + l.id % 1500) * interval '1 second', 3600
    FROM (SELECT id, device_id, unit_id,
                 handed_over_at + (id % 20) * interval '1 day' AS t
          FROM loans WHERE state = 'on_loan' AND id % 5 = 0) l
    """,
    # Usage: device-days of the last 14 days of the loans on loan (most days used) …
    """
    INSERT INTO usage_device_days (device_id, day, loan_id, unit_id, active_s, launches_chat,
        launches_appointment, launches_digipath, launches_group, launches_other, support_s,
        final, boot, seq, updated_at)
    SELECT l.device_id, d.day, l.id, l.unit_id,
           CASE WHEN (l.id + d.k) % 10 < 7 THEN 600 + (l.id * d.k) % 9000 ELSE 0 END,
           (l.id + d.k) % 4, (l.id + d.k) % 3, (l.id * d.k) % 3,
           CASE WHEN d.k % 7 = 2 THEN 1 ELSE 0 END, l.id % 3,
           0, true, 1, d.k, :now
    FROM loans l
    CROSS JOIN LATERAL (
        SELECT k, (:now AT TIME ZONE 'Europe/Helsinki')::date - k AS day
        FROM generate_series(1, 14) k) d
    WHERE l.state = 'on_loan' AND l.id % 6 <> 0
    """,
    # … and the units' roll-up of every day of the year (what the report and metrics read).
    """
    INSERT INTO usage_unit_days (unit_id, day, device_days, active_s, launches_chat,
        launches_appointment, launches_digipath, launches_group, launches_other, support_s)
    SELECT u, (:now AT TIME ZONE 'Europe/Helsinki')::date - k,
           :n / 40, (:n / 40) * 2500, :n / 30, :n / 60, :n / 50, :n / 200, :n / 40, :n
    FROM unnest(CAST(:units AS int[])) u CROSS JOIN generate_series(1, 380) k
    ON CONFLICT (unit_id, day) DO NOTHING
    """,
)


def _build(services: Services, devices: int, now: datetime) -> dict[str, int]:
    """The fleet of `devices` tablets and a year of loans; returns row counts."""
    from sqlalchemy import select, text

    from server.adapters import orm

    with services.session_factory() as session:
        org = session.scalar(select(orm.Organisation.id))
        units = list(session.scalars(select(orm.Unit.id).order_by(orm.Unit.id)))
        user = session.scalar(select(orm.User.id).where(orm.User.role == "it_support"))
        agreement = session.scalar(select(orm.Agreement.id))
    values = {
        "n": devices,
        "now": now,
        "org": org,
        "units": units,
        "user": user,
        "agreement": agreement,
    }
    with services.engine.begin() as conn:
        for statement in BUILD:
            used = {k: v for k, v in values.items() if f":{k}" in statement}
            conn.execute(text(statement), used)
    with services.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        return _counts(conn)


def _counts(conn: Connection) -> dict[str, int]:
    from sqlalchemy import text

    tables = ("devices", "loans", "clients", "support_sessions", "usage_device_days")
    return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}


# --- measuring --------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection, with a bearer token or a console session cookie."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, bytes, float]:
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, data, elapsed

    def get(self, path: str) -> tuple[bytes, float]:
        status, data, elapsed = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {data[:300]!r}")
        return data, elapsed

    def sign_in(self, username: str, password: str) -> None:
        import re

        _, page, _ = self.request("GET", "/login")
        found = re.search(rb'name="csrf_token" value="([^"]*)"', page)
        if found is None:
            raise RuntimeError("the sign-in page has no CSRF token")
        form = {"username": username, "password": password, "csrf_token": found.group(1).decode()}
        status, data, _ = self.request("POST", "/login", form)
        if status != 302:
            raise RuntimeError(f"sign-in failed: {status} {data[:300]!r}")

    def close(self) -> None:
        self.conn.close()


def _list_walk(
    client: Client,
    queries: list[dict[str, str]],
    pages: int,
    n: int,
    by_query: dict[str, list[float]] | None = None,
) -> list[float]:
    """`n` device-list requests: each query's first page and then up to `pages` more by cursor."""
    times: list[float] = []
    while True:
        for query in queries:
            cursor: str | None = None
            for _ in range(pages + 1):
                params = {**query, **({"cursor": cursor} if cursor else {})}
                data, elapsed = client.get("/api/v1/devices?" + urlencode(params))
                times.append(elapsed)
                if by_query is not None:
                    by_query.setdefault(urlencode(query), []).append(elapsed)
                if len(times) >= n:
                    return times
                cursor = json.loads(data)["next_cursor"]
                if cursor is None:
                    break


def _repeat(n: int, call: Callable[[], float]) -> list[float]:
    return [call() for _ in range(n)]


def _ms(times: list[float]) -> Iterator[float]:
    return (t * 1000 for t in times)


def pct(times: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `times`, in milliseconds."""
    ordered = sorted(_ms(times))
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def _timed(work: Callable[[], object]) -> float:
    """Seconds `work` takes."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _measure(
    services: Services, devices: int, n_list: int, n_scrapes: int, n_reports: int, report: Report
) -> None:
    from server.adapters.metrics import FleetCollector
    from server.adapters.usage_metrics import UsageCollector
    from server.entrypoints.serve import HttpServer
    from server.service_layer import reports
    from server.service_layer.accounts import principal_of

    now = datetime.now(UTC)
    started = time.perf_counter()
    logins = _seed(services, now)
    counts = _build(services, devices, now)
    report.param("build_s", round(time.perf_counter() - started, 1))
    for table, n in counts.items():
        report.param(table, n)
    settings = services.settings
    http = HttpServer(services, "127.0.0.1", 0, settings.http_threads)
    http.start()
    heap.settle()  # as `lainaamo serve` does once started (the build's garbage goes first)
    it, counsellor = Client(http.port, logins.it[2]), Client(http.port, logins.counsellor[2])
    admin = Client(http.port)
    try:
        admin.sign_in(logins.admin[0], logins.admin[1])
        for client in (it, counsellor):  # warm the pool and the caches
            _list_walk(client, [{"limit": "100"}], 2, 5)
        health = _repeat(max(n_list, 50), lambda: it.get("/healthz")[1])
        report.baseline("GET /healthz p50", pct(health, 50), "ms")
        report.baseline("GET /healthz p99", pct(health, 99), "ms")

        it_queries = [
            {"limit": "100"},
            {"state": "on_loan", "online": "false", "limit": "50"},
            {"low_battery": "true", "limit": "100"},
            {"unit": logins.counsellor_unit, "state": "in_stock,awaiting_wipe", "limit": "50"},
            {"online": "true", "limit": "200"},
        ]
        own = [
            {"limit": "100"},
            {"state": "on_loan", "limit": "50"},
            {"online": "false", "limit": "50"},
            {"low_battery": "true", "limit": "20"},
        ]
        for role, client, queries in (
            ("IT support", it, it_queries),
            ("counsellor", counsellor, own),
        ):
            by_query: dict[str, list[float]] = {}
            times = _list_walk(client, queries, 4, n_list, by_query)
            report.figure(f"device list as {role} p50", pct(times, 50), "ms")
            report.target(f"device list as {role} p99", pct(times, 99), "ms", below=LIST_P99_MS)
            report.note(
                f"{role}, p50/p99 by filter (ms): "
                + "; ".join(
                    f"{query} {pct(found, 50):.0f}/{pct(found, 99):.0f}"
                    for query, found in by_query.items()
                )
            )

        # What it costs the database to compute the figures (once per 5 s per web process) …
        rounds = max(3, n_scrapes // 6)
        for label, kind in (("fleet", FleetCollector), ("usage", UsageCollector)):
            collector = next(c for c in services.scrape_collectors if isinstance(c, kind))
            compute = collector._cache._compute  # noqa: SLF001 - the cache's own work
            took = [_timed(compute) for _ in range(rounds)]
            report.figure(f"{label} figures computed from the database, p50", pct(took, 50), "ms")

        # … and what a scrape costs, with that computation refreshing in the background as it
        # does in production (every 5 s): scrapes every 0.25 s across several refreshes.
        def scrape() -> float:
            took = it.get("/metrics")[1]
            time.sleep(0.25)
            return took

        scrapes = _repeat(n_scrapes, scrape)
        report.figure("GET /metrics p50", pct(scrapes, 50), "ms")
        report.target("GET /metrics p99", pct(scrapes, 99), "ms", below=METRICS_MS)
        report.note(
            "the database figures refresh in the background at most every 5 s (ScrapeCache): "
            "a scrape never waits for them, except the very first"
        )

        today = now.astimezone(ZoneInfo("Europe/Helsinki")).date()
        period = urlencode(
            {
                "start": (today - timedelta(days=365)).isoformat(),
                "end": (today + timedelta(days=1)).isoformat(),
            }
        )
        page = _repeat(n_reports, lambda: admin.get(f"/reports?{period}")[1])
        report.figure("GET /reports (a year) p50", pct(page, 50), "ms")
        report.target("GET /reports (a year) max", max(_ms(page)), "ms", below=REPORT_MS)
        csv = _repeat(n_reports, lambda: admin.get(f"/reports.csv?{period}")[1])
        report.target("GET /reports.csv (a year) max", max(_ms(csv)), "ms", below=REPORT_MS)

        from sqlalchemy import select

        from server.adapters import orm

        with services.session_factory() as session:
            user = session.scalar(select(orm.User).where(orm.User.role == "admin"))
            assert user is not None
            me = principal_of(user)

        def in_process() -> float:
            begun = time.perf_counter()
            with services.session_factory() as session:
                reports.programme_report(session, me, now - timedelta(days=365), now, now)
            return time.perf_counter() - begun

        direct = _repeat(n_reports, in_process)
        report.figure("programme_report() (a year, 20 units) p50", pct(direct, 50), "ms")
        report.note(
            f"{len(health)} health checks, {n_list} list requests per role (filters "
            f"{len(it_queries)}/{len(own)}, 5 pages deep by cursor), {n_scrapes} scrapes, "
            f"{n_reports} reports each; one request at a time over one keep-alive connection"
        )
        report.note(f"median /healthz {statistics.median(_ms(health)):.1f} ms is the floor")
    finally:
        for client in (it, counsellor, admin):
            client.close()
        http.stop()
