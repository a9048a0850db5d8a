"""Rejected messages are logged once per source and reason per interval."""

from __future__ import annotations

from server.entrypoints.ingest import RejectionLog


def test_logs_once_per_source_and_reason_per_interval() -> None:
    now = [0.0]
    log = RejectionLog(300, clock=lambda: now[0])
    assert log.should_log("tab-001", "invalid")
    assert not log.should_log("tab-001", "invalid")
    assert log.should_log("tab-001", "mismatched")
    assert log.should_log("tab-002", "invalid")
    now[0] = 299.0
    assert not log.should_log("tab-001", "invalid")
    now[0] = 300.0
    assert log.should_log("tab-001", "invalid")
