"""The stack test's phase timings, printed after the run (docker-compose.yml for real)."""

from __future__ import annotations

import pytest
from support import compose


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in compose.REPORTS:
        terminalreporter.write_sep("-", "docker compose stack")
        terminalreporter.write_line(report)
