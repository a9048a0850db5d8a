"""Every benchmark runs in its smoke version (tiny sizes) and reports figures and a baseline.

Benchmarks are not tests: their targets are judged only in full runs (docs/benchmarks.md).
This keeps each one working, from the shell, as `lainaamo bench NAME --smoke` runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import BENCHMARKS
from bench.report import Report


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_the_smoke_version_runs_and_reports(name: str, pg_base_url: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-m", "lainaamo.cli", "bench", name, "--smoke", "--json", str(out),
         "--database", pg_base_url],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "LAINAAMO_LOG_LEVEL": "WARNING"},
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f"== {name} (smoke" in done.stdout
    found = json.loads(out.read_text())
    kinds = {line["kind"] for line in found["lines"]}
    assert found["smoke"] is True and "figure" in kinds | {"ratio", "target"}
    assert "baseline" in kinds or "target" in kinds, "a figure means little without its yardstick"
    assert all(line["met"] is None for line in found["lines"]), "smoke runs judge no target"


def test_the_benchmarks_of_the_issues_are_there() -> None:
    # issue 8's five, and issue 15's kiosk tablet
    assert set(BENCHMARKS) == {"ingest", "fleet", "commands", "api", "support", "tablet"}


def test_a_report_judges_targets_only_in_full_runs() -> None:
    full, smoke = Report("x"), Report("x", smoke=True)
    for report in (full, smoke):
        report.ratio("ingest vs bare paho", 7.0, 10.0, at_least=0.7)
        report.target("p99", 120.0, "ms", below=100.0)
    assert [line.met for line in full.lines] == [True, False]
    assert [line.met for line in smoke.lines] == [None, None]
    assert len(full.failed) == 1 and not smoke.failed
