"""What a benchmark found: figures, the baseline measured in the same run, ratios and targets.

Printed as a small table; `--json` writes the same as JSON. A target is judged only in a full
run: smoke runs are too small to mean anything and say so.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO


@dataclass
class Line:
    kind: str  # figure | baseline | ratio | target | note
    name: str
    value: float | None = None
    unit: str = ""
    limit: float | None = None
    better: str = ""  # "higher" or "lower" (targets and ratios)
    met: bool | None = None
    text: str = ""


@dataclass
class Report:
    """Collects one benchmark's results; `print()` shows them, `write_json()` keeps them."""

    benchmark: str
    smoke: bool = False
    lines: list[Line] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str, value: Any) -> None:
        """A size or setting of this run (devices, messages, database …)."""
        self.params[name] = value

    def baseline(self, name: str, value: float, unit: str) -> None:
        """What the comparison is made against, measured in this run."""
        self.lines.append(Line("baseline", name, value, unit))

    def figure(self, name: str, value: float, unit: str) -> None:
        self.lines.append(Line("figure", name, value, unit))

    def note(self, text: str) -> None:
        self.lines.append(Line("note", "", text=text))

    def ratio(self, name: str, measured: float, baseline: float, at_least: float) -> bool | None:
        """measured / baseline against a lower bound (e.g. ingest ≥ 0.7 of bare paho)."""
        value = measured / baseline if baseline else 0.0
        met = None if self.smoke else value >= at_least
        self.lines.append(Line("ratio", name, value, "", at_least, "higher", met))
        return met

    def target(
        self, name: str, value: float, unit: str, *, below: float | None = None,
        at_least: float | None = None,
    ) -> bool | None:  # fmt: skip
        """A figure against an absolute target (p99 < 100 ms, ≥ 0 lost …)."""
        if (below is None) == (at_least is None):
            raise ValueError("give exactly one of below= and at_least=")
        limit = below if below is not None else at_least
        assert limit is not None
        ok = value < limit if below is not None else value >= limit
        met = None if self.smoke else ok
        better = "lower" if below is not None else "higher"
        self.lines.append(Line("target", name, value, unit, limit, better, met))
        return met

    @property
    def failed(self) -> list[Line]:
        return [line for line in self.lines if line.met is False]

    def print(self, out: TextIO = sys.stdout) -> None:
        title = f"== {self.benchmark}" + (
            " (smoke: sizes too small to judge targets)" if self.smoke else ""
        )
        print(title, file=out)
        if self.params:
            print("   " + ", ".join(f"{k}={v}" for k, v in self.params.items()), file=out)
        for line in self.lines:
            print("   " + _format(line), file=out)
        if not self.smoke:
            verdict = (
                "all targets met" if not self.failed else f"{len(self.failed)} target(s) missed"
            )
            print(f"   -> {verdict}", file=out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "smoke": self.smoke,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "python": platform.python_version(),
                "cpus": _cpus(),
                "host": platform.node(),
            },
            "params": self.params,
            "lines": [asdict(line) for line in self.lines],
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def _format(line: Line) -> str:
    if line.kind == "note":
        return f"note      {line.text}"
    mark = {True: "met", False: "MISSED", None: ""}[line.met]
    if line.kind in ("ratio", "target"):
        sign = "≥" if line.better == "higher" else "<"
        return (
            f"{line.kind:<9} {line.name:<52} {_number(line.value, line.unit):>16}"
            f"   target {sign} {_number(line.limit, line.unit)}  {mark}"
        ).rstrip()
    return f"{line.kind:<9} {line.name:<52} {_number(line.value, line.unit):>16}"
