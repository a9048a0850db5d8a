"""The agent installs without the server's dependencies: prove it by hiding them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SERVER_ONLY = [
    "flask",
    "sqlalchemy",
    "alembic",
    "prometheus_client",
    "psycopg",
    "argon2",
    "waitress",
]

SCRIPT = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {SERVER_ONLY!r}:
                raise ImportError(f"{{name}} is a server dependency")
            return None

    sys.meta_path.insert(0, Block())
    from lainaamo.cli import build_parser, main
    import agent.runner, agent.simulator, agent.platform.linux, agent.platform.simulated
    build_parser().parse_args(["agent", "--device-id", "tab-001"])
    try:
        main(["simulate", "--help"])
    except SystemExit as done:
        assert done.code == 0
    print("agent-only ok")
    """
)


def test_agent_and_cli_import_without_server_dependencies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "agent-only ok" in result.stdout


def test_the_blocker_really_blocks() -> None:
    probe = SCRIPT.replace("from lainaamo.cli import", "import flask\nfrom lainaamo.cli import")
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "server dependency" in result.stderr


# The server image (Dockerfile) installs only these of the project's packages: the CLI must
# work there without the others (it once failed at start on `import bench`).
IMAGE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, io, contextlib, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"agent", "bench"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
            return None

    sys.meta_path.insert(0, Block())
    from lainaamo.cli import build_parser, main
    for argv in (["db", "upgrade"], ["scheduler"], ["ingest"], ["serve"], ["org", "add", "x", "X"]):
        build_parser().parse_args(argv)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["bench"]) == 2
    assert "not part of this installation" in err.getvalue(), err.getvalue()
    print("server-image ok")
    """
)


def test_the_cli_works_with_only_the_server_images_packages() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert not {"agent", "bench", "./agent", "./bench"} & copied, "the script's premise changed"
    result = subprocess.run(
        [sys.executable, "-c", IMAGE_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "server-image ok" in result.stdout
