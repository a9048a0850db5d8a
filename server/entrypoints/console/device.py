"""One device's page and enrollment (placeholder until those pages land)."""

from __future__ import annotations

from flask import Blueprint

from server.domain.model import Role
from server.entrypoints.console.core import render, roles


def register(bp: Blueprint) -> None:
    @bp.get("/devices/<device_id>")
    @roles(Role.IT_SUPPORT, Role.ADMIN)
    def device(device_id: str) -> tuple[str, int]:
        return render("placeholder.html", title=device_id)

    @bp.get("/enrollment")
    @roles(Role.IT_SUPPORT, Role.ADMIN)
    def enrollment() -> tuple[str, int]:
        return render("placeholder.html", title="Enrollment")
