"""`lainaamo bench NAME …`: argument parsing and the shared options of every benchmark."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from bench import BENCHMARKS
from bench.env import mosquitto_version
from bench.report import Report

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def add_parsers(sub: Any) -> None:
    """One subparser per benchmark under `lainaamo bench`."""
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        summary = module.DESCRIPTION.replace("%", "%%")  # argparse %-formats help texts
        p = sub.add_parser(name, help=summary, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        p.add_argument("--smoke", action="store_true", help="tiny sizes; keeps it working")
        p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
        p.add_argument(
            "--database",
            default=DEFAULT_DATABASE,
            help="PostgreSQL server for a throw-away database (default: %(default)s)",
        )
        module.add_arguments(p)
        p.set_defaults(bench_module=module_name, bench_name=name)


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark; exit status 1 when a target was missed (never in smoke)."""
    module = importlib.import_module(args.bench_module)
    report = Report(args.bench_name, smoke=args.smoke)
    # Broker timings (wills, keepalive checks) differ between Mosquitto releases.
    report.param("mosquitto", mosquitto_version())
    module.run(args, report)
    report.print(sys.stdout)
    if args.json:
        report.write_json(args.json)
    return 1 if report.failed else 0
