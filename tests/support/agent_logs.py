"""What real agent processes did, read from their logs: the status reports each made (the
agent logs every one at DEBUG, `<device>: status boot=<b> seq=<s>`), so that a test can check
that every report made was stored."""

from __future__ import annotations

import re
from pathlib import Path

Report = tuple[str, int, int]  # (device, boot, seq)
STATUS_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{2,63}): status boot=(\d+) seq=(\d+)")


def made_reports(logs: list[Path]) -> set[Report]:
    """Every status report the agents logging to `logs` made (a missing log: none)."""
    found: set[Report] = set()
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else ""
        found.update((m[1], int(m[2]), int(m[3])) for m in STATUS_LINE.finditer(text))
    return found
