"""Which Mosquitto the private brokers (demo, tests, benchmarks) run: $LAINAAMO_MOSQUITTO first."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.entrypoints.broker import MOSQUITTO_ENV, find_mosquitto


def test_the_environment_chooses_the_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "mosquitto-2.0.21"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv(MOSQUITTO_ENV, str(binary))
    assert find_mosquitto() == str(binary)


def test_a_chosen_binary_that_is_missing_is_not_replaced_by_the_system_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MOSQUITTO_ENV, str(tmp_path / "nowhere"))
    assert find_mosquitto() is None
