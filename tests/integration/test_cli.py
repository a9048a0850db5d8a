"""The `lainaamo` command explains itself and does what it says, from a shell."""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lainaamo.cli import build_parser


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and subcommand the CLI has, walked from its parser (none forgotten)."""
    found: list[list[str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append([*prefix, name])
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())


def lainaamo(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lainaamo.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_explains_itself(command: list[str]) -> None:
    result = lainaamo(*command, "--help")
    assert result.returncode == 0 and "usage: lainaamo" in result.stdout
    assert len(result.stdout.splitlines()) >= 3


def test_setting_up_an_organisation_from_the_shell_and_verifying_the_audit_log(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cli.db"
    env = {"LAINAAMO_DATABASE_URL": f"sqlite:///{db}"}
    assert "revision" in lainaamo("db", "upgrade", env=env).stdout
    assert lainaamo("org", "add", "esavo", "Etelä-Savo", env=env).returncode == 0
    assert (
        lainaamo("unit", "add", "--org", "esavo", "paihde", "Päihdepalvelut", env=env).returncode
        == 0
    )
    made = lainaamo(
        "user",
        "add",
        "it@esavo.fi",
        "--org",
        "esavo",
        "--role",
        "it_support",
        "--password-stdin",
        env=env,
        stdin="a-long-password\n",
    )
    assert made.returncode == 0 and "lnm_" in made.stdout
    refused = lainaamo(
        "user", "add", "c@esavo.fi", "--org", "esavo", "--role", "counsellor", env=env
    )
    assert refused.returncode == 2 and "counsellor needs at least one unit" in refused.stderr
    verified = lainaamo("audit", "verify", env=env)
    assert verified.returncode == 0 and "intact" in verified.stdout
    with sqlite3.connect(db) as connection:  # someone edits history behind the server's back
        connection.execute("UPDATE audit_events SET actor = 'nobody' WHERE seq = 2")
    connection.close()
    broken = lainaamo("audit", "verify", env=env)
    assert broken.returncode == 1 and "seq 2" in broken.stdout


def test_config_shows_settings_but_never_secrets() -> None:
    secrets = {
        "LAINAAMO_MQTT_PASSWORD": "mqtt-pw-0xA1",
        "LAINAAMO_TURN_SECRET": "turn-secret-0xB2",
        "LAINAAMO_SECRET_KEY": "flash-key-0xC3",
    }
    done = lainaamo("config", env={**secrets, "LAINAAMO_HTTP_PORT": "8123"})
    assert done.returncode == 0, done.stderr
    assert "http_port = 8123" in done.stdout
    for name, value in secrets.items():
        assert value not in done.stdout
        assert f"{name.removeprefix('LAINAAMO_').lower()} = '********'" in done.stdout
