"""The demo's simulated pilot has problems for IT support to find: tablets that drain their
battery, that went offline hours or a day ago, and one that ignores its settings.

The demo runs in a thread for a few seconds (its own broker, SQLite database and simulated
fleet); the problems are then looked up as the console's problem tiles look them up.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from support.ports import free_port
from support.processes import wait_until

from lainaamo.config import Settings
from server.bootstrap import bootstrap
from server.domain.fleet_triage import Problem
from server.entrypoints.demo import DemoInfo, Problems, choose_problems, run_demo
from server.service_layer import accounts, fleet_console

DEVICES = [f"tab-{i:03d}" for i in range(1, 31)]


def test_problems_are_a_handful_chosen_the_same_way_every_time() -> None:
    problems = choose_problems(DEVICES)
    assert problems == choose_problems(list(reversed(DEVICES)))
    assert (len(problems.draining), len(problems.offline), len(problems.ignoring)) == (3, 2, 1)
    offline = [device for device, _ago in problems.offline]
    chosen = [*problems.draining, *offline, *problems.ignoring]
    assert len(set(chosen)) == 6 and "tab-001" not in chosen  # never the --kiosk tablet
    assert {ago for _d, ago in problems.offline} == {timedelta(hours=5), timedelta(hours=26)}
    assert problems.summary == (
        "3 tablets drain their battery, 2 go offline, 1 ignores its settings: "
        "find them on the Devices page"
    )
    assert choose_problems(DEVICES[:5]) == Problems()


def test_the_demo_fleet_shows_each_problem_on_the_devices_page(tmp_path: Path) -> None:
    stop = threading.Event()
    ready: list[DemoInfo] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            run_demo(
                Settings(),
                http_port=free_port(),
                workdir=tmp_path / "demo",
                status_interval_s=1.0,
                stop=stop,
                on_ready=ready.append,
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failed.append(exc)
            stop.set()

    thread = threading.Thread(target=run, name="demo", daemon=True)
    thread.start()
    try:
        wait_until(lambda: bool(ready or failed), 60, "the demo to start")
        assert not failed, failed
        info = ready[0]
        problems = info.problems
        assert problems == choose_problems(DEVICES)
        services = bootstrap(Settings().replace(database_url=info.database), fleet_metrics=False)
        try:
            it = next(login for login in info.logins if login.role == "it_support")
            principal = accounts.authenticate_token(services.uow(), it.token)
            assert principal is not None

            def tile(problem: Problem) -> set[str]:
                triage = fleet_console.Triage.of(services.clock(), services.settings)
                flt = fleet_console.FleetFilter(problem=problem, triage=triage)
                found = fleet_console.overview(
                    services.uow(),
                    principal,
                    flt,
                    cursor=None,
                    now=services.clock(),
                    settings=services.settings,
                )
                return {d.id for d in found.devices}

            offline = {device for device, _ago in problems.offline}

            def shown() -> bool:
                return (
                    set(problems.draining) <= tile(Problem.LOW_BATTERY)
                    and offline <= tile(Problem.OFFLINE)
                    and set(problems.ignoring) <= tile(Problem.OUT_OF_SYNC)
                )

            wait_until(shown, 30, "each problem on its tile")
            # The rest of the fleet is online and in line with its settings: the problems are
            # the few the banner names, not noise (the simulator's outages are 10-60 s long).
            assert tile(Problem.OFFLINE) == offline
            # Out of sync: the ignoring tablet, and perhaps an offline one whose settings
            # changed since it went silent (an overdue loan's reminder cannot reach it).
            wait_until(
                lambda: tile(Problem.OUT_OF_SYNC) <= {*problems.ignoring, *offline},
                30,
                "no tablet but the ignoring (or an offline) one out of sync",
            )
            facts = {
                d.id: d.facts
                for d in fleet_console.overview(
                    services.uow(),
                    principal,
                    fleet_console.FleetFilter(),
                    cursor=None,
                    now=services.clock(),
                    settings=services.settings,
                ).devices
            }
            for device in problems.draining:
                assert facts[device].battery_pct is not None and facts[device].battery_pct < 20
            for device, ago in problems.offline:
                seen = facts[device].last_seen_at
                assert seen is not None
                assert services.clock() - seen == pytest.approx(ago, abs=timedelta(minutes=5))
        finally:
            services.close()
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and not failed
