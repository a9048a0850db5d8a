"""The loan's printable documents: the handover document the client signs on paper (and
recording who witnessed the signature) and the return receipt.

A document is written in the language of the agreement the client chose, whatever the staff
user's own language: its body is rendered with that locale (gettext and Babel's dates), the
page around it (navigation, the witness form) in the user's. `static/print.css` prints the
document alone on A4. The reads and the witness are `service_layer/documents.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import flash, g, redirect, render_template, url_for
from markupsafe import Markup

from lainaamo.errors import Conflict
from server.domain.agreements import LANGUAGES as AGREEMENT_LANGUAGES
from server.domain.agreements import document_locale
from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _, lazy_gettext
from server.entrypoints.web.context import services
from server.service_layer import documents

__all__ = ["AGREEMENT_LANGUAGES", "agreement_language_name"]

LANGUAGE_NAMES = {
    "fi": lazy_gettext("Finnish"),
    "sv": lazy_gettext("Swedish"),
    "en": lazy_gettext("English"),
    "fi-plain": lazy_gettext("Finnish, plain language"),
    "sv-plain": lazy_gettext("Swedish, plain language"),
}
assert set(LANGUAGE_NAMES) == set(AGREEMENT_LANGUAGES)


@bp.app_template_global()
def agreement_language_name(code: str) -> str:
    """An agreement language's name in the language being rendered (never the code)."""
    name = LANGUAGE_NAMES.get(code)
    return str(name) if name is not None else code


@contextmanager
def written_in(language: str) -> Iterator[None]:
    """Render gettext and Babel's dates in the document's locale for the block's duration."""
    before = g.get("language")
    g.language = document_locale(language)
    try:
        yield
    finally:
        g.language = before


def _page(kind: str, document: documents.LoanDocument, **ctx: Any) -> tuple[str, int]:
    """The document's body in its own language inside the console page in the user's."""
    with written_in(document.language):
        body = render_template(f"loans/documents/{kind}.html", doc=document)
    return core.render(
        "loans/documents/page.html",
        kind=kind,
        doc=document,
        body=Markup(body),  # rendered just above by an autoescaping template
        locale=document_locale(document.language),
        **ctx,
    )


@bp.get("/loans/<int:loan_id>/documents/handover")
def handover_document(loan_id: int) -> Any:
    """The printable handover document, with the form to record the witnessed signature."""
    found = documents.handover_document(services().uow(), core.principal(), loan_id)
    return _page("handover", found)


@bp.post("/loans/<int:loan_id>/documents/handover/witness")
def handover_witness(loan_id: int) -> Any:
    """Record that the client signed the printed document in the current user's presence."""
    svc = services()
    try:
        documents.record_witness(svc.uow(), core.principal(), loan_id, svc.clock())
    except Conflict:
        flash(_("The signature on paper has already been recorded."), "error")
        return redirect(url_for("console.loan", loan_id=loan_id), 303)
    flash(_("The signature on paper was recorded, witnessed by you."), "info")
    return redirect(url_for("console.loan", loan_id=loan_id), 303)


@bp.get("/loans/<int:loan_id>/documents/return")
def return_receipt(loan_id: int) -> Any:
    """The printable return receipt of a returned loan."""
    found = documents.return_receipt(services().uow(), core.principal(), loan_id)
    return _page("return", found)
