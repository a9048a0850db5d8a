"""Entrypoints translate; service-layer handlers own the transaction (docs/architecture.md).

An entrypoint — an API or console view, the ingest, a scheduler job, the CLI — hands a handler
an unopened unit of work (`services().uow()`) and renders what comes back. It never opens a
session, enters a unit of work, commits or rolls back: this test reads their source and fails
on any of these.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINTS = sorted(
    [*ROOT.joinpath("server", "entrypoints").rglob("*.py"), ROOT / "lainaamo" / "cli.py"]
)
# Attributes whose use means owning a transaction.
OWNING = {"session_factory", "commit", "rollback", "begin", "begin_nested", "session"}
# Files still being converted (issue 18), with how many places each has left: the number must
# match exactly, so a converted place is taken off here and no new one can appear.
NOT_YET: dict[str, int] = {
    "lainaamo/cli.py": 1,
    "server/entrypoints/api/commands.py": 3,
    "server/entrypoints/api/devices.py": 4,
    "server/entrypoints/api/enrollment.py": 2,
    "server/entrypoints/api/events.py": 1,
    "server/entrypoints/api/loans.py": 6,
    "server/entrypoints/api/people.py": 2,
    "server/entrypoints/background.py": 15,
    "server/entrypoints/console/account.py": 1,
    "server/entrypoints/console/admin.py": 6,
    "server/entrypoints/console/device.py": 2,
    "server/entrypoints/console/enrollment_page.py": 1,
    "server/entrypoints/console/fleet.py": 3,
    "server/entrypoints/console/fleet_live.py": 2,
    "server/entrypoints/console/loan_confirm.py": 3,
    "server/entrypoints/console/loan_wizards.py": 8,
    "server/entrypoints/console/loans.py": 8,
    "server/entrypoints/console/reports.py": 1,
    "server/entrypoints/demo.py": 5,
    "server/entrypoints/ingest.py": 1,
    "server/entrypoints/serve.py": 2,
}


def owning_places(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in OWNING:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "uow"
                ):
                    found.append(f"{path.name}:{node.lineno} with ….uow()")
    return found


@pytest.mark.parametrize("path", ENTRYPOINTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_entrypoints_own_no_transaction(path: Path) -> None:
    places = owning_places(path)
    assert len(places) == NOT_YET.get(str(path.relative_to(ROOT)), 0), places


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "view.py"
    sample.write_text(
        "def view():\n"
        "    with services().uow() as uow:\n"
        "        uow.commit()\n"
        "    with svc.session_factory() as s:\n"
        "        s.rollback()\n"
        "    handler(services().uow(), principal)\n"
    )
    assert [p.split(" ", 1)[1] for p in owning_places(sample)] == [
        "with ….uow()",
        ".commit",
        ".session_factory",
        ".rollback",
    ]
