"""IT support's fleet overview (placeholder until the fleet pages land)."""

from __future__ import annotations

from flask import Blueprint

from server.domain.model import Role
from server.entrypoints.console.core import render, roles


def register(bp: Blueprint) -> None:
    @bp.get("/devices")
    @roles(Role.IT_SUPPORT, Role.ADMIN)
    def devices() -> tuple[str, int]:
        return render("placeholder.html", title="Devices")
