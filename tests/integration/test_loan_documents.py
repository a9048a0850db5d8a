"""The agreement in the client's language and the printable loan documents: publishing each
language of a version, choosing one at the handover, the handover document and the return
receipt written in that language (whatever the staff user's own), the witnessed signature on
paper, and every opening of a document audited."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from babel.dates import format_date
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser, csrf_of, sign_in
from support.fleet import Fleet

from lainaamo.protocol import CommandAck
from server.adapters import orm
from server.entrypoints.app import create_app
from server.entrypoints.console.core import LANGUAGE_COOKIE
from server.entrypoints.console.i18n import TIMEZONE
from server.service_layer.device_commands import apply_ack

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
UNIT = "aikuissosiaalityo"  # the counsellor's unit: tab-001, tab-004, tab-007
TEXTS = {
    "fi": "FI-EHDOT: Tabletti lainataan palvelua varten.\nPalauta se laina-ajan päättyessä.",
    "sv": "SV-VILLKOR: Surfplattan lånas ut för tjänsten.\nLämna tillbaka den när lånet går ut.",
    "en": "EN-TERMS: The tablet is lent for the service.\nReturn it when the loan ends.",
}
MARKERS = {"fi": "FI-EHDOT", "sv": "SV-VILLKOR", "en": "EN-TERMS"}
# What each document says in its language (the staff user's console is in English).
WORDS = {
    "fi": {
        "title": "Tabletin lainasopimus",
        "receipt": "Lainatabletin palautuskuitti",
        "charger": "Laturi",
        "damaged": "vaurioitunut",
        "ok": "Kunnossa",
        "pending": "Tyhjennys odottaa",
        "wiped": "Tabletti tyhjennettiin",
        "client": "Asiakkaan allekirjoitus",
        "name_words": ("Nimi", "nimi:"),
    },
    "sv": {
        "title": "Låneavtal för en surfplatta",
        "receipt": "Returkvitto för en lånad surfplatta",
        "charger": "Laddare",
        "damaged": "skadad",
        "ok": "I gott skick",
        "pending": "Radering väntar",
        "wiped": "Surfplattan raderades",
        "client": "Klientens underskrift",
        "name_words": ("Namn:", "namn:"),
    },
    "en": {
        "title": "Loan agreement for a tablet",
        "receipt": "Return receipt for a loan tablet",
        "charger": "Charger",
        "damaged": "damaged",
        "ok": "OK",
        "pending": "Wipe pending",
        "wiped": "The tablet was wiped on",
        "client": "Client's signature",
        "name_words": ("Name:", "name:"),
    },
}


class LoansBrowser(Browser):
    """A Browser whose CSRF token comes from the loans list (a page every role sees)."""

    def __init__(self, client: FlaskClient, username: str, password: str) -> None:
        self.client = client
        assert sign_in(client, username, password).status_code == 302
        self.csrf = csrf_of(client.get("/loans"))


def signed_in(fleet: Fleet, role: str) -> Browser:
    """A fresh browser (its own cookies) of `role`, whose console is in English."""
    client = create_app(fleet.services).test_client()
    client.set_cookie(LANGUAGE_COOKIE, "en")
    login = fleet.logins[role]
    return LoansBrowser(client, login.username, login.password)


def publish(fleet: Fleet, languages: tuple[str, ...]) -> None:
    fleet.services.clock = lambda: T0
    admin = signed_in(fleet, "admin")
    for language in languages:
        form = {"version": "2026-1", "language": language, "text": TEXTS[language]}
        response = admin.post("/admin/units", form)
        assert response.status_code == 302, response.get_data(as_text=True)
    with fleet.services.session_factory() as session:
        org = session.scalar(select(orm.Organisation))
        assert org is not None
        org.support_phone = "+358 40 111 2222"
        session.commit()


def request_and_reserve(b: Browser, ref: str, device: str) -> int:
    response = b.post("/loans/new", {"unit": UNIT, "client_ref": ref})
    assert response.status_code == 303, response.get_data(as_text=True)
    found = re.fullmatch(r"/loans/(\d+)", response.headers["Location"])
    assert found
    loan_id = int(found.group(1))
    chosen = {"device_id": device, "lend_anyway": device}  # the seeded tablets never connected
    assert b.post(f"/loans/{loan_id}/handover/device", chosen).status_code == 303
    return loan_id


def loan_row(fleet: Fleet, loan_id: int) -> orm.Loan:
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        loan.kit  # noqa: B018 - load before the session closes
        return loan


def agreement_language(fleet: Fleet, loan_id: int) -> str | None:
    with fleet.services.session_factory() as session:
        return session.scalar(
            select(orm.Agreement.language)
            .join(orm.Loan, orm.Loan.agreement_id == orm.Agreement.id)
            .where(orm.Loan.id == loan_id)
        )


def document_views(fleet: Fleet, loan_id: int) -> list[str]:
    """The documents opened of the loan, from the audit log."""
    with fleet.services.session_factory() as session:
        rows = session.scalars(
            select(orm.AuditEvent).where(
                orm.AuditEvent.action == "console:loan:view",
                orm.AuditEvent.subject_id == str(loan_id),
            )
        )
        return [
            str(row.after["page"])
            for row in rows
            if row.after and str(row.after.get("page", "")).startswith("document:")
        ]


def article(page: str) -> str:
    """The printed document alone (the page around it is the staff user's language)."""
    found = re.search(r"<article class=\"document\".*?</article>", page, re.S)
    assert found, page
    return found.group(0)


def offered(page: str) -> list[str]:
    """The languages the agreement step's chooser offers (none: no chooser)."""
    found = re.search(r'<select id="f-agreement-language".*?</select>', page, re.S)
    return re.findall(r'<option value="([a-z-]+)"', found.group(0)) if found else []


def acknowledge_wipe(fleet: Fleet, device: str, at: datetime) -> None:
    """The tablet acknowledges the wipe the return queued (as the ingest records it)."""
    with fleet.services.session_factory() as session:
        wipe = session.scalar(
            select(orm.CommandRow).where(
                orm.CommandRow.device_id == device, orm.CommandRow.name == "wipe"
            )
        )
        assert wipe is not None and wipe.state in ("queued", "sent")
        wipe.state = "sent"
        ack = CommandAck(device_id=device, ts=at, boot=1, seq=1, cmd_id=wipe.id, status="done")
        assert apply_ack(session, ack, at) is not None
        session.commit()


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_documents_in_the_agreement_language(fleet: Fleet, language: str) -> None:
    publish(fleet, ("fi", "sv", "en"))
    b = signed_in(fleet, "counsellor")
    loan_id = request_and_reserve(b, "ASK-2001", "tab-001")

    # The agreement step offers the version's languages (Finnish first) and shows the chosen.
    first = b.text(f"/loans/{loan_id}/handover")
    assert MARKERS["fi"] in first and MARKERS["sv"] not in first
    assert re.search(r'<option value="fi" selected>Finnish</option>', first)
    assert offered(first) == ["fi", "sv", "en"]
    chosen = b.text(f"/loans/{loan_id}/handover?agreement_language={language}")
    others = [m for lang, m in MARKERS.items() if lang != language]
    assert MARKERS[language] in chosen and not any(m in chosen for m in others)
    assert f'name="agreement_language" value="{language}"' in chosen

    # The kit and confirm stages carry the choice; the handover records that very text.
    accepted = {
        "agreement_version": "2026-1",
        "agreement_accepted": "1",
        "agreement_language": language,
    }
    kit_stage = b.post(f"/loans/{loan_id}/handover/agreement", accepted).get_data(as_text=True)
    assert f'name="agreement_language" value="{language}"' in kit_stage
    confirm = {**accepted, "kit": ["charger", "case"], "label_charger": "CH-77"}
    assert b.post(f"/loans/{loan_id}/handover/confirm", confirm).status_code == 303
    assert agreement_language(fleet, loan_id) == language
    loan = loan_row(fleet, loan_id)
    assert loan.witnessed_by is None and loan.due_at is not None

    # The loan page links to the document until the signature is recorded.
    page = b.text(f"/loans/{loan_id}")
    assert "Print the handover document and record the signature" in page
    assert "Signed on paper on" not in page

    # The handover document: the agreement of that language, the kit, the due date (Babel,
    # in the document's language), unit, support phone, the reference and signature lines.
    shown = b.text(f"/loans/{loan_id}/documents/handover")
    doc = article(shown)
    words = WORDS[language]
    locale = language
    assert f'lang="{language}"' in doc
    assert words["title"] in doc and words["client"] in doc
    assert MARKERS[language] in doc and not any(m in doc for m in others)
    assert words["charger"] in doc and "CH-77" in doc
    due = format_date(loan.due_at.astimezone(TIMEZONE).date(), "long", locale=locale)
    assert due in doc
    assert "ASK-2001" in doc and "+358 40 111 2222" in doc and "Aikuissosiaalityö" in doc
    assert not any(w in doc for w in words["name_words"])
    assert fleet.logins["counsellor"].username not in doc  # no witness yet, no staff name
    # The page around it stays in the staff user's language, with the form to record.
    assert "Back to the loan" in shown and "Signed on paper, witnessed by me" in shown
    assert document_views(fleet, loan_id) == ["document:handover"]

    # Staff record "signed on paper, witnessed by me": the loan names them, audited.
    witnessed = b.post(f"/loans/{loan_id}/documents/handover/witness")
    assert witnessed.status_code == 303
    with fleet.services.session_factory() as session:
        me = session.scalar(
            select(orm.User.id).where(orm.User.username == fleet.logins["counsellor"].username)
        )
        actions = set(session.scalars(select(orm.AuditEvent.action)))
    assert loan_row(fleet, loan_id).witnessed_by == me
    assert "console:loan:witness" in actions
    page = b.text(f"/loans/{loan_id}")
    name = fleet.logins["counsellor"].username
    assert re.search(rf"Signed on paper on [^<]+, witnessed by {name}\.", page)
    assert "Print the handover document again" in page
    again = b.post(f"/loans/{loan_id}/documents/handover/witness", follow_redirects=True)
    assert "already been recorded" in again.get_data(as_text=True)
    doc = article(b.text(f"/loans/{loan_id}/documents/handover"))
    assert name in doc  # the printed copy now says who witnessed it

    # No receipt before the return.
    assert b.get(f"/loans/{loan_id}/documents/return").status_code == 409

    # The return: each item's condition; the receipt says the wipe is pending …
    loan = loan_row(fleet, loan_id)
    charger = next(i.id for i in loan.kit if i.kind == "charger")
    case = next(i.id for i in loan.kit if i.kind == "case")
    returned = {"tablet": "ok", f"kit-{charger}": "damaged", f"kit-{case}": "ok"}
    fleet.services.clock = lambda: T0 + timedelta(minutes=5)
    assert b.post(f"/loans/{loan_id}/return", returned).status_code == 303
    assert "Print the return receipt" in b.text(f"/loans/{loan_id}")
    receipt = article(b.text(f"/loans/{loan_id}/documents/return"))
    assert words["receipt"] in receipt and "ASK-2001" in receipt
    assert words["damaged"] in receipt and words["ok"] in receipt and words["charger"] in receipt
    returned_on = format_date(
        (T0 + timedelta(minutes=5)).astimezone(TIMEZONE).date(), "long", locale=locale
    )
    assert returned_on in receipt
    assert words["pending"] in receipt and words["wiped"] not in receipt
    assert not any(w in receipt for w in words["name_words"])

    # … until the tablet acknowledges the wipe.
    wiped_at = T0 + timedelta(minutes=10)
    acknowledge_wipe(fleet, "tab-001", wiped_at)
    receipt = article(b.text(f"/loans/{loan_id}/documents/return"))
    wiped_on = format_date(wiped_at.astimezone(TIMEZONE).date(), "long", locale=locale)
    assert f"{words['wiped']} {wiped_on}" in receipt and words["pending"] not in receipt
    assert document_views(fleet, loan_id) == [
        "document:handover",
        "document:handover",
        "document:return",
        "document:return",
    ]


def test_only_the_versions_languages_are_offered(fleet: Fleet) -> None:
    publish(fleet, ("fi", "sv"))
    b = signed_in(fleet, "counsellor")
    loan_id = request_and_reserve(b, "ASK-2002", "tab-004")
    page = b.text(f"/loans/{loan_id}/handover?agreement_language=en")
    assert offered(page) == ["fi", "sv"]
    assert MARKERS["fi"] in page  # a language the version lacks falls back to Finnish
    # A language the version lacks is refused at the confirmation, on the agreement stage.
    confirm = {
        "agreement_version": "2026-1",
        "agreement_accepted": "1",
        "agreement_language": "en",
    }
    refused = b.post(f"/loans/{loan_id}/handover/confirm", confirm)
    assert refused.status_code == 422
    assert "Step 2: the loan agreement" in refused.get_data(as_text=True)
    assert loan_row(fleet, loan_id).state == "ready"


def test_a_version_in_one_language_has_no_choice(fleet: Fleet) -> None:
    publish(fleet, ("fi",))
    b = signed_in(fleet, "counsellor")
    loan_id = request_and_reserve(b, "ASK-2003", "tab-007")
    page = b.text(f"/loans/{loan_id}/handover")
    assert MARKERS["fi"] in page and 'name="agreement_language" value="fi"' in page
    assert offered(page) == []


def test_administrators_publish_each_language_once(fleet: Fleet) -> None:
    publish(fleet, ("fi", "sv"))
    admin = signed_in(fleet, "admin")
    page = admin.text("/admin/units")
    assert "Finnish" in page and "Swedish" in page and 'lang="sv"' in page
    again = admin.post("/admin/units", {"version": "2026-1", "language": "sv", "text": "Ny."})
    assert again.status_code == 409
    unknown = admin.post("/admin/units", {"version": "2026-1", "language": "de", "text": "Neu."})
    assert unknown.status_code == 422
    with fleet.services.session_factory() as session:
        rows = session.execute(select(orm.Agreement.version, orm.Agreement.language)).all()
        audited = session.scalars(
            select(orm.AuditEvent.after).where(orm.AuditEvent.action == "console:agreement:create")
        ).all()
    assert sorted(rows) == [("2026-1", "fi"), ("2026-1", "sv")]
    assert {"version": "2026-1", "language": "sv"} in audited


def test_the_api_takes_the_agreement_language(fleet: Fleet, client: FlaskClient) -> None:
    admin = fleet.headers("admin")
    for language in ("fi", "sv"):
        body = {"version": "2026-1", "language": language, "text": TEXTS[language]}
        assert client.post("/api/v1/agreements", json=body, headers=admin).status_code == 201
    dup = {"version": "2026-1", "language": "sv", "text": "x"}
    assert client.post("/api/v1/agreements", json=dup, headers=admin).status_code == 409
    bad = {"version": "2026-2", "language": "de", "text": "x"}
    assert client.post("/api/v1/agreements", json=bad, headers=admin).status_code == 422

    counsellor = fleet.headers("counsellor")
    it = fleet.headers("it_support")

    def ready_loan(ref: str, device: str) -> int:
        made = client.post(
            "/api/v1/loans", json={"unit": UNIT, "client_ref": ref}, headers=counsellor
        )
        assert made.status_code == 201, made.get_json()
        loan_id = int(made.get_json()["loan_id"])
        assigned = client.post(
            f"/api/v1/loans/{loan_id}/assign", json={"device_id": device}, headers=it
        )
        assert assigned.status_code == 200, assigned.get_json()
        return loan_id

    def handover(loan_id: int, **extra: str) -> tuple[int, dict[str, object]]:
        body = {"agreement_version": "2026-1", "agreement_accepted": True, **extra}
        answer = client.post(f"/api/v1/loans/{loan_id}/handover", json=body, headers=counsellor)
        return answer.status_code, answer.get_json()

    first = ready_loan("ASK-3001", "tab-001")
    status, body = handover(first, agreement_language="de")
    assert status == 422 and "agreement_language" in str(body)
    status, body = handover(first, agreement_language="en")  # the version has no English
    assert status == 422 and "agreement_language" in str(body)
    assert handover(first, agreement_language="sv")[0] == 200
    assert agreement_language(fleet, first) == "sv"
    shown = client.get(f"/api/v1/loans/{first}", headers=counsellor).get_json()
    assert shown["agreement"]["language"] == "sv" and shown["agreement"]["version"] == "2026-1"
    second = ready_loan("ASK-3002", "tab-004")
    assert handover(second)[0] == 200
    assert agreement_language(fleet, second) == "fi"  # the default
