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
# Attributes whose use means owning a transaction: a unit of work's or session's, or calling
# the session factory (handing it on to a consumer as wiring, e.g. to the ingest, is not).
OWNING = {"commit", "rollback", "begin", "begin_nested", "session"}
OPENING = "session_factory"


def owning_places(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.endswith(OPENING)
        ):
            found.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
        elif isinstance(node, ast.Attribute) and node.attr in OWNING:
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
    assert owning_places(path) == []


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "view.py"
    sample.write_text(
        "def view():\n"
        "    with services().uow() as uow:\n"
        "        uow.commit()\n"
        "    with svc.session_factory() as s:\n"
        "        s.rollback()\n"
        "    handler(services().uow(), principal)\n"
        "    Consumer(settings, services.session_factory)\n"
    )
    assert sorted(p.split(" ", 1)[1] for p in owning_places(sample)) == [
        ".commit",
        ".rollback",
        ".session_factory()",
        "with ….uow()",
    ]
