"""Counsellors' clients, loans and wizards (placeholder until those pages land)."""

from __future__ import annotations

from flask import Blueprint

from server.entrypoints.console.core import render


def register(bp: Blueprint) -> None:
    @bp.get("/loans")
    def loans() -> tuple[str, int]:
        return render("placeholder.html", title="Clients and loans")

    @bp.get("/worklist")
    def worklist() -> tuple[str, int]:
        return render("placeholder.html", title="Overdue")
