"""The backup and restore of docs/deploy.md, run as written against a real PostgreSQL.

The commands are read from the guide's code blocks (`docker compose exec -T postgres …`);
only the connection is changed, from the compose service to the test server. A database with
a fleet, users, loans' audit trail and desired states is dumped, dropped, recreated and
restored; the restored database holds the same rows, its audit chain verifies, the audit log
is still append-only, and the guide's SQL for the broker's store and for an older dump runs
against the real schema.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import create_engine, exc, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool
from support.fleet import make_fleet
from support.postgres import create_database, drop_database

from lainaamo.cli import main

GUIDE = Path(__file__).parents[2] / "docs" / "deploy.md"
EXEC = "docker compose exec -T postgres "


def guide_commands(program: str) -> list[list[str]]:
    """Every `docker compose exec -T postgres PROGRAM …` line of the guide, as argv."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            line = line.strip()  # blocks inside a list are indented
            if line.startswith(EXEC + program + " "):
                command = line.removeprefix(EXEC)
                command = re.split(r" [<>] ", command)[0]  # the redirection is the shell's
                found.append(shlex.split(command))
    assert found, f"docs/deploy.md has no `{EXEC}{program}` line"
    return found


def local(argv: list[str], url: URL) -> list[str]:
    """The guide's command aimed at `url`'s server and database instead of the container's."""
    out = [argv[0], "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    args = iter(argv[1:])
    for arg in args:
        if arg == "-U":
            assert next(args) == "lainaamo"
            out += ["-U", url.username or "postgres"]
        elif arg == "-d":
            assert next(args) == "lainaamo"
            out += ["-d", str(url.database)]
        elif arg == "lainaamo":  # dropdb/createdb take the name as their argument
            out.append(str(url.database))
        else:
            out.append(arg)
    return out


def run(
    argv: list[str], url: URL, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None
) -> None:
    """Run one command; fail with its error output if it fails."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    if url.password:
        env["PGPASSWORD"] = url.password
    done = subprocess.run(
        argv,
        env=env,
        stdin=stdin,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stderr.decode(errors='replace')}"


def row_counts(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            return {
                t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables
            }
    finally:
        engine.dispose()


def test_the_guides_backup_restores_into_an_empty_database(
    pg_base_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source_url = create_database(pg_base_url)
    target_url = create_database(pg_base_url)
    source, target = make_url(source_url), make_url(target_url)
    try:
        fleet = make_fleet(source_url, devices=4)
        fleet.services.close()
        before = row_counts(source_url)
        assert before["audit_events"] > 0 and before["device_desired"] > 0

        dumps = guide_commands("pg_dump")
        assert len({tuple(argv) for argv in dumps}) == 1, "the guide's backups differ"
        dump = tmp_path / "lainaamo.dump"
        with dump.open("wb") as out:
            run(local(dumps[0], source), source, stdout=out)

        # The guide restores into an emptied database: drop it, create it, restore.
        (dropdb,), (createdb,) = guide_commands("dropdb"), guide_commands("createdb")
        run(local(dropdb, target), target)
        run(local(createdb, target), target)
        (restore,) = guide_commands("pg_restore")
        with dump.open("rb") as dump_file:
            run(local(restore, target), target, stdin=dump_file)

        assert row_counts(target_url) == before
        monkeypatch.setenv("LAINAAMO_DATABASE_URL", target_url)
        assert main(["audit", "verify"]) == 0
        assert "the audit chain is intact" in capsys.readouterr().out
        engine = create_engine(target_url, poolclass=NullPool)
        try:
            with pytest.raises(exc.DatabaseError), engine.begin() as conn:
                conn.execute(text("UPDATE audit_events SET seq = seq"))
        finally:
            engine.dispose()

        # The guide's SQL after restoring an older dump.
        statements = [argv[argv.index("-c") + 1] for argv in guide_commands("psql")]
        assert len(statements) == 1
        for statement in statements:
            run(local(guide_commands("psql")[0][:-2], target) + ["-c", statement], target)
        engine = create_engine(target_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                unpublished = conn.execute(
                    text("SELECT count(*) FROM device_desired WHERE published_version < version")
                ).scalar_one()
                lowest = conn.execute(text("SELECT min(version) FROM device_desired")).scalar_one()
        finally:
            engine.dispose()
        assert unpublished == before["device_desired"]  # all to be published again
        assert lowest > 1_000_000
    finally:
        drop_database(source_url)
        drop_database(target_url)
