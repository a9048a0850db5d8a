"""The demo's seed data written through handlers that own their transactions.

`lainaamo demo` (entrypoints/demo.py) decides what the simulated pilot looks like; these
functions write what no other handler writes for it: the organisation's kiosk profiles and
support phone, its loan agreement in Finnish, Swedish and English, plausible daily usage
of the loans on loan, fed through the same ingest code as the tablets' own usage reports (so
the unit roll-up is their sum), and the last status reports of the tablets that have been
offline since (`record_last_contact`).
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo import __version__
from lainaamo.protocol import EnforcementReport, StatusReport, UsageReport
from server.adapters import orm
from server.domain import groups
from server.domain.model import Principal
from server.domain.policy import KioskProfile
from server.domain.usage import LOCAL_TZ, local_day
from server.service_layer import agreements, desired, ingest, usage
from server.service_layer.accounts import principal_of
from server.service_layer.unit_of_work import UnitOfWork


def prepare_organisation(
    uow: UnitOfWork, profile: KioskProfile, support_phone: str, now: datetime
) -> tuple[Principal, Principal]:
    """Every unit gets `profile`, the organisation its support phone; returns the first IT
    support and admin users, acting from the command line."""
    with uow:
        session = uow.session
        it_user = session.scalar(select(orm.User).where(orm.User.role == "it_support"))
        admin_user = session.scalar(select(orm.User).where(orm.User.role == "admin"))
        org = session.scalar(select(orm.Organisation))
        if it_user is None or admin_user is None or org is None:
            raise RuntimeError("the demo organisation and its users come first")
        org.support_phone = support_phone
        for unit_id in session.scalars(select(orm.Unit.id).order_by(orm.Unit.id)):
            desired.set_kiosk_profile(session, unit_id, profile, now)
        uow.commit()
        return principal_of(it_user, "cli"), principal_of(admin_user, "cli")


def principal_named(uow: UnitOfWork, username: str, via: str = "cli") -> Principal:
    """A demo user by name, as the domain knows them (the demo acts as them, from the CLI)."""
    with uow:
        user = uow.session.scalar(select(orm.User).where(orm.User.username == username))
        if user is None:
            raise RuntimeError(f"the demo has no user {username}")
        return principal_of(user, via)


# The demo's loan agreement, one version written in Finnish, Swedish and English.
AGREEMENT_VERSION = "2026-1"
AGREEMENTS = {
    "fi": (
        "Lainaat tabletin palvelua varten. Laite on hyvinvointialueen omaisuutta ja palautetaan "
        "laina-ajan päättyessä.\n"
        "Laitteelta kerätään tekniset tilatiedot (akku, tallennustila, verkko) ja päivittäiset "
        "käyttömäärät: kuinka kauan näyttö oli päällä, kuinka monta kertaa kunkin ryhmän "
        "pikakuvakkeita (chat, vastaanotto, digipolut, ryhmät, muut sovellukset) avattiin ja "
        "kuinka monta minuuttia etätukea annettiin. Laitteelta ei kerätä sisältöä, tietoa siitä, "
        "mitä sovellusta käytettiin tai milloin, eikä käyttöhistoriaa. Käyttömäärät poistetaan, "
        "kun lainan tiedot anonymisoidaan; vain yksiköittäiset summat säilyvät."
    ),
    "sv": (
        "Du lånar surfplattan för att använda tjänsten. Enheten tillhör välfärdsområdet och "
        "lämnas tillbaka när låneperioden går ut.\n"
        "Från enheten samlas tekniska statusuppgifter (batteri, lagringsutrymme, nätverk) och "
        "dagliga användningsmängder in: hur länge skärmen var på, hur många gånger genvägarna i "
        "varje grupp (chatt, mottagning, digitala vårdvägar, grupper, övriga appar) öppnades och "
        "hur många minuter distansstöd som gavs. Från enheten samlas inte innehåll, uppgifter om "
        "vilken app som användes eller när, eller någon användningshistorik in. "
        "Användningsmängderna raderas när lånets uppgifter anonymiseras; endast summor per enhet "
        "sparas."
    ),
    "en": (
        "You borrow the tablet to use the service. The device belongs to the wellbeing services "
        "county and is returned when the loan period ends.\n"
        "The device reports technical status (battery, storage, network) and daily usage "
        "totals: how long the screen was on, how many times the shortcuts of each group (chat, "
        "appointments, digital care paths, groups, other apps) were opened and how many minutes "
        "of remote support were given. No content is collected from the device, nor which app "
        "was used or when, nor any usage history. The usage totals are deleted when the loan's "
        "data is anonymised; only totals per unit are kept."
    ),
}


def publish_agreements(new_uow: Callable[[], UnitOfWork], admin: Principal) -> str:
    """Publish the demo's agreement in each of its languages; returns its version."""
    for language, text in AGREEMENTS.items():
        agreements.publish(new_uow(), admin, AGREEMENT_VERSION, language, text)
    return AGREEMENT_VERSION


def demo_agreement_language(n: int) -> str:
    """The language the demo's n-th client chose: mostly Finnish, some Swedish, a few English."""
    return "sv" if n % 4 == 0 else "en" if n % 9 == 0 else "fi"


def record_usage(uow: UnitOfWork, now: datetime, weeks: int = 8, seed: int = 7) -> int:
    """Plausible daily usage totals of the loans on loan, up to yesterday. A few loans of one
    unit have had no use for the last 16 days. Returns the number of device-days."""
    rng = random.Random(seed)
    today = local_day(now)
    with uow:
        session = uow.session
        lent = session.execute(
            select(orm.Loan.device_id, orm.Loan.handed_over_at)
            .where(orm.Loan.state == "on_loan")
            .order_by(orm.Loan.id)
        ).all()
        reports: list[tuple[UsageReport, datetime]] = []
        for number, (device_id, handed_over_at) in enumerate(lent, 1):
            if device_id is None or handed_over_at is None:
                continue
            idle_from = today - timedelta(days=16) if number % 3 == 2 and number > 4 else today
            day = max(local_day(handed_over_at), today - timedelta(weeks=weeks))
            while day < today:
                end_of_day = datetime.combine(day + timedelta(days=1), time(0), LOCAL_TZ)
                report = _usage_day(rng, device_id, day, used_before=idle_from, ts=end_of_day)
                reports.append((report, end_of_day + timedelta(minutes=5)))
                day += timedelta(days=1)
        ingested: Counter[str] = Counter()
        usage.ingest_reports(session, reports, ingested, Counter())
        uow.commit()
    return ingested["usage"]


def _usage_day(
    rng: random.Random, device_id: str, day: date, *, used_before: date, ts: datetime
) -> UsageReport:
    weekday = day.weekday() < 5
    used = day < used_before and rng.random() < (0.8 if weekday else 0.5)
    launches = {
        "chat": rng.randint(0, 4),
        "appointment": rng.randint(0, 2) if weekday else 0,
        "digipath": rng.randint(0, 3),
        "group": 1 if day.weekday() == 2 and rng.random() < 0.7 else 0,
        "other": rng.randint(0, 3),
    }
    return UsageReport(
        device_id=device_id,
        ts=ts,
        boot=1,
        seq=day.toordinal(),
        day=day.isoformat(),
        active_s=rng.randint(600, 3 * 3600) if used else 0,
        launches=launches if used else {},
        support_s=rng.choice((600, 900, 1500)) if used and rng.random() < 0.06 else 0,
        final=True,
    )


def record_last_contact(uow: UnitOfWork, last_seen: Mapping[str, datetime]) -> None:
    """Tablets not heard of since `last_seen[device_id]`: their last status report, made then
    and in line with their desired state, through the ingest code (so they show as offline,
    last seen then, and not out of sync)."""
    with uow:
        session = uow.session
        desired_rows = {
            row.device_id: row
            for row in session.scalars(
                select(orm.DesiredStateRow).where(orm.DesiredStateRow.device_id.in_(last_seen))
            )
        }
        items = []
        for number, (device_id, at) in enumerate(sorted(last_seen.items()), 1):
            row = desired_rows.get(device_id)
            mode = row.policy.get("mode") if row is not None else None
            report = StatusReport(
                device_id=device_id,
                ts=at,
                boot=1,
                seq=1,
                battery_pct=40 + 9 * number % 50,
                charging=False,
                storage_free_mb=20000,
                storage_total_mb=65536,
                os_version="Android 13",
                agent_version=__version__,
                network="wifi",
                signal_pct=70,
                uptime_s=86400,
                locked=mode in ("locked", "lost"),
                kiosk=mode in ("kiosk", "restricted"),
                desired_version=row.version if row is not None else 0,
                enforcement=EnforcementReport(),
            )
            items.append(ingest.Received(report, at))
        ingest.ingest_batch(session, items)
        uow.commit()


# --- the pilots' evaluation: contacts, remote support and a weekly group (issue 20) ---------

CONTACT_NOTES = ("Soitto, sovittiin etätapaamisesta", "Kotikäynti, laite toimii", "")


def record_contacts(
    uow: UnitOfWork, counsellor: Principal, now: datetime, weeks: int = 8, seed: int = 11
) -> int:
    """Support contacts with every client on loan over `weeks`, as the pilot evaluated them:
    phone calls and home visits at first, remote support taking over (the contacts are loan
    notes with a channel, by the loan's first responsible professional, else `counsellor`; the
    remote-support sessions are recorded as sessions that connected and ended, like the real
    ones). Returns the number of contacts."""
    rng = random.Random(seed)
    made = 0
    with uow:
        session = uow.session
        lent = session.scalars(
            select(orm.Loan)
            .where(
                orm.Loan.state == "on_loan",
                orm.Loan.organisation_id == counsellor.organisation_id,
            )
            .order_by(orm.Loan.id)
        ).all()
        for loan in lent:
            if loan.handed_over_at is None or loan.device_id is None:
                continue
            first = loan.professionals[0] if loan.professionals else None
            author = first.id if first else counsellor.user_id
            name = (first.username if first else counsellor.username).split("@")[0]
            for week in range(weeks):
                for _ in range(rng.randint(1, 3)):
                    at = now - timedelta(weeks=weeks - week, hours=rng.randint(-60, 60))
                    if at < loan.handed_over_at or at >= now:
                        continue
                    if rng.random() < (week + 1) / (weeks + 2):  # later, likelier remote
                        _past_session(session, (author, name), loan, at, rng.randint(5, 25))
                    else:
                        _contact(session, rng, loan.id, author, at)
                    made += 1
        uow.commit()
    return made


def _contact(session: Session, rng: random.Random, loan_id: int, author: int, at: datetime) -> None:
    channel = rng.choice(("phone", "phone", "phone", "home_visit", "chat"))
    session.add(
        orm.LoanNote(
            loan_id=loan_id,
            author_id=author,
            at=at,
            kind="visit" if channel == "home_visit" else "talked",
            text=rng.choice(CONTACT_NOTES),
            channel=channel,
            minutes=60 if channel == "home_visit" else rng.choice((5, 10, 15)),
        )
    )


def _past_session(
    session: Session, caller: tuple[int, str], loan: orm.Loan, at: datetime, minutes: int
) -> None:
    assert loan.device_id is not None
    session.add(
        orm.SupportSession(
            id=secrets.token_urlsafe(24),
            organisation_id=loan.organisation_id,
            device_id=loan.device_id,
            loan_id=loan.id,
            unit_id=loan.unit_id,
            started_by=caller[0],
            started_by_name=caller[1],
            mode="view",
            purpose="Etätuki",
            state="ended",
            end_reason="hangup_counsellor",
            created_at=at,
            consent_deadline=at + timedelta(seconds=60),
            consent_at=at + timedelta(seconds=10),
            consent_result="accepted",
            connected_at=at + timedelta(seconds=15),
            connection_type="host",
            ended_at=at + timedelta(minutes=minutes),
            max_duration_s=3600,
        )
    )


def record_group(
    uow: UnitOfWork, counsellor: Principal, now: datetime, join_url: str, weeks: int = 6
) -> int:
    """A weekly remote group of the counsellor's first unit that began `weeks` ago on a
    Tuesday at 14:00 (Helsinki), with its clients on loan (at most eight) as participants and
    most of them attending most weeks (the tablets' usage would say so); its next meetings reach
    the participants' tablets. Returns the group's id."""
    rng = random.Random(5)
    unit_id = min(counsellor.unit_ids)
    today = local_day(now)
    tuesday = today - timedelta(days=(today.weekday() - 1) % 7, weeks=weeks)
    first = datetime.combine(tuesday, time(14, 0), LOCAL_TZ)
    with uow:
        session = uow.session
        unit = session.get(orm.Unit, unit_id)
        assert unit is not None
        unit.group_join_url = join_url
        participants = session.scalars(
            select(orm.Loan)
            .where(orm.Loan.state == "on_loan", orm.Loan.unit_id == unit_id)
            .order_by(orm.Loan.id)
            .limit(8)
        ).all()
        group = orm.GroupSession(
            organisation_id=counsellor.organisation_id,
            unit_id=unit_id,
            title="Tiistain etäryhmä",
            starts_at=first,
            minutes=60,
            weekly=True,
            created_by=counsellor.user_id,
            created_at=first - timedelta(days=7),
        )
        group.participants = list(participants)
        session.add(group)
        session.flush()
        plan = groups.plan_of(group)
        for meeting in groups.occurrences(group.id, plan, join_url, first, now):
            if meeting.end > now:
                continue
            for loan in participants:
                if loan.device_id is None or rng.random() > 0.8:
                    continue
                session.add(
                    orm.GroupAttendance(
                        group_id=group.id,
                        occurrence_id=meeting.id,
                        occurrence_start=meeting.start,
                        loan_id=loan.id,
                        unit_id=unit_id,
                        device_id=loan.device_id,
                        day=local_day(meeting.start),
                        seconds=rng.randint(35, 60) * 60,
                        updated_at=meeting.end,
                    )
                )
        devices = [loan.device_id for loan in participants if loan.device_id]
        desired.refresh_desired(session, devices, now)
        uow.commit()
        return group.id


def loan_of(uow: UnitOfWork, client_ref: str) -> int:
    """The id of the demo's open loan of a client reference."""
    with uow:
        found = uow.session.scalar(
            select(orm.Loan.id)
            .join(orm.Client, orm.Client.id == orm.Loan.client_id)
            .where(orm.Client.ref == client_ref, orm.Loan.ended_at.is_(None))
        )
        if found is None:
            raise RuntimeError(f"the demo has no open loan of {client_ref}")
        return found
