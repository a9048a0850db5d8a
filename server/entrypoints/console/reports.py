"""Programme reports for regional administrators (placeholder until the reports land)."""

from __future__ import annotations

from flask import Blueprint

from server.domain.model import Role
from server.entrypoints.console.core import render, roles


def register(bp: Blueprint) -> None:
    @bp.get("/reports")
    @roles(Role.ADMIN)
    def reports() -> tuple[str, int]:
        return render("placeholder.html", title="Reports")
