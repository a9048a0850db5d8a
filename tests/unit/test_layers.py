"""The server's layers import downwards only: the domain has no I/O and imports no other
layer; adapters (ORM, metrics, MQTT, database) never reach up into the service layer or the
entrypoints; the service layer never imports an entrypoint."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
FORBIDDEN = {
    "domain": ("server.adapters", "server.service_layer", "server.entrypoints", "sqlalchemy"),
    "adapters": ("server.service_layer", "server.entrypoints"),
    "service_layer": ("server.entrypoints",),
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    files = sorted((SERVER / layer).rglob("*.py"))
    assert files, f"no modules found in server/{layer}"
    wrong = [
        f"{path.relative_to(SERVER)} imports {name}"
        for path in files
        for name in sorted(imports(path))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert wrong == []
