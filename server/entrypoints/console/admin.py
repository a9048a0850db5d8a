"""Administrators' users, units and policies (placeholder until those pages land)."""

from __future__ import annotations

from flask import Blueprint

from server.domain.model import Role
from server.entrypoints.console.core import render, roles


def register(bp: Blueprint) -> None:
    @bp.get("/admin/users")
    @roles(Role.ADMIN)
    def users() -> tuple[str, int]:
        return render("placeholder.html", title="Users")

    @bp.get("/admin/units")
    @roles(Role.ADMIN)
    def unit_settings() -> tuple[str, int]:
        return render("placeholder.html", title="Units and policies")
