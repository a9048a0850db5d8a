"""Reads docs/metrics.md: the documented metrics, their types and labels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CATALOGUE = Path(__file__).parents[2] / "docs" / "metrics.md"
# Bounded labels only; `le` is the histogram bucket bound.
ALLOWED_LABELS = frozenset(
    {
        "state",
        "kind",
        "reason",
        "name",
        "outcome",
        "version",
        "unit",
        "category",
        "route",
        "method",
        "code",
        "le",
    }
)
FORBIDDEN_LABELS = frozenset({"device", "device_id", "client", "client_ref", "user", "username"})
TYPES = frozenset({"counter", "gauge", "histogram", "info"})
_ROW = re.compile(r"^\|\s*`(lainaamo_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|")


@dataclass(frozen=True)
class Documented:
    name: str  # as scraped: `…_total` for counters, `…_info` for info
    type: str
    labels: frozenset[str]

    @property
    def family(self) -> str:
        """The name prometheus_client gives the metric family (without `_total`/`_info`)."""
        suffix = {"counter": "_total", "info": "_info"}.get(self.type)
        if suffix and self.name.endswith(suffix):
            return self.name.removesuffix(suffix)
        return self.name

    @property
    def samples(self) -> frozenset[str]:
        """Every sample name the metric can be scraped under."""
        base = self.family
        if self.type == "counter":
            return frozenset({f"{base}_total", f"{base}_created"})
        if self.type == "histogram":
            return frozenset({f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"})
        if self.type == "info":
            return frozenset({f"{base}_info"})
        return frozenset({base})


def documented(text: str | None = None) -> dict[str, Documented]:
    """The metrics in the catalogue's tables, by family name."""
    text = CATALOGUE.read_text(encoding="utf-8") if text is None else text
    found: dict[str, Documented] = {}
    for line in text.splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        name, kind, labels = match.groups()
        assert kind in TYPES, f"docs/metrics.md: {name} has unknown type {kind!r}"
        entry = Documented(name, kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
        assert entry.family not in found, f"docs/metrics.md lists {name} twice"
        found[entry.family] = entry
    return found


def sample_names() -> frozenset[str]:
    """Every documented sample name (what PromQL may refer to)."""
    return frozenset(s for entry in documented().values() for s in entry.samples)
