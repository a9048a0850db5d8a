"""`lainaamo demo`: broker, server, ingest and a simulated South Savo pilot fleet in one process.

With `--kiosk` (root, `make services`), tab-001 is not simulated but a real Linux kiosk tablet
on a virtual screen (docs/tablet.md): the real agent, client account, Chromium and overlay,
whose real screen a counsellor can open with remote support.

So that IT support has something to find, a few tablets have a problem (`choose_problems`,
the same ones on every run): some are never charged (battery low and falling), some have been
offline for hours or a day (not simulated; their last report is seeded) and one ignores its
settings (out of sync). The banner says how many of each.
"""

from __future__ import annotations

import logging
import random
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from lainaamo.config import Settings
from lainaamo.signals import wait_for
from server.adapters.db import upgrade
from server.adapters.signing import generate_key_file
from server.bootstrap import Services, bootstrap
from server.domain.commands import AddUser, CreateDevice
from server.domain.keep_device import ProposeKeep
from server.domain.loan_commands import KitLine, LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.domain.model import Principal, Role
from server.domain.policy import KioskProfile
from server.entrypoints.background import Background
from server.entrypoints.broker import demo_broker, wait_for_port
from server.entrypoints.ingest import IngestConsumer
from server.entrypoints.serve import HttpServer
from server.service_layer import accounts, demo_data, devices, keep_device, loans
from server.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

ORG = ("esavo", "Etelä-Savon hyvinvointialue (demo)")
UNITS = [
    ("aikuissosiaalityo", "Aikuissosiaalityö"),
    ("mielenterveys", "Mielenterveyspalvelut"),
    ("paihde", "Päihdepalvelut"),
]
MODELS = ["Samsung Galaxy Tab A9", "Lenovo Tab M10", "Samsung Galaxy Tab A8"]
KIOSK_DEVICE = "tab-001"  # on loan to the counsellor's unit: the real kiosk with --kiosk
KIOSK_CLIENT = "lainaamo-demo"  # its client account
KIOSK_ANSWER_S = 3.0  # the demo's stand-in client taps "Allow" this long after being asked
PROBLEMS_SEED = 19  # which tablets have a problem: the same on every run
OFFLINE_FOR = (timedelta(hours=5), timedelta(hours=26))  # since when each offline tablet is
DRAINING, IGNORING = 3, 1  # how many tablets drain their battery, ignore their settings
MIN_FLEET_WITH_PROBLEMS = 10  # smaller demos have none


@dataclass
class Login:
    username: str
    role: str
    password: str
    token: str
    units: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problems:
    """The demo's tablets with a problem for IT support to find."""

    draining: tuple[str, ...] = ()  # never charged: battery below 20 % and falling
    offline: tuple[tuple[str, timedelta], ...] = ()  # silent for this long when the demo starts
    ignoring: tuple[str, ...] = ()  # do not apply their desired state: out of sync

    @property
    def summary(self) -> str:
        """One line for the banner: how many of each, and where to look."""
        if not (self.draining or self.offline or self.ignoring):
            return "No tablet has a problem."
        drain, off, ign = len(self.draining), len(self.offline), len(self.ignoring)
        return (
            f"{drain} tablet{'s' * (drain != 1)} drain{'s' * (drain == 1)} "
            f"{'their' if drain != 1 else 'its'} battery, {off} "
            f"go{'es' * (off == 1)} offline, {ign} ignore{'s' * (ign == 1)} "
            f"{'its' if ign == 1 else 'their'} settings: find them on the Devices page"
        )


def choose_problems(device_ids: list[str], seed: int = PROBLEMS_SEED) -> Problems:
    """A handful of `device_ids` with a problem, chosen by `seed` (none in a small fleet).
    The real kiosk tablet of `--kiosk` is never one of them."""
    candidates = sorted(d for d in device_ids if d != KIOSK_DEVICE)
    if len(candidates) < MIN_FLEET_WITH_PROBLEMS:
        return Problems()
    chosen = random.Random(seed).sample(candidates, DRAINING + len(OFFLINE_FOR) + IGNORING)
    offline = chosen[DRAINING : DRAINING + len(OFFLINE_FOR)]
    return Problems(
        draining=tuple(sorted(chosen[:DRAINING])),
        offline=tuple(zip(offline, OFFLINE_FOR, strict=True)),
        ignoring=tuple(sorted(chosen[DRAINING + len(OFFLINE_FOR) :])),
    )


@dataclass
class DemoInfo:
    api_url: str
    broker: str
    mqtt_port: int
    database: str
    logins: list[Login] = field(default_factory=list)
    kiosk_display: str | None = None  # the real kiosk tablet's X display, with --kiosk
    problems: Problems = Problems()


def seed(services_uow: Callable[[], UnitOfWork], devices_count: int) -> list[Login]:
    """One region, three units, `devices_count` tablets and three users; returns their logins."""
    org_id = accounts.add_organisation(services_uow(), *ORG)
    for code, name in UNITS:
        accounts.add_unit(services_uow(), ORG[0], code, name)
    setup = Principal(
        user_id=0,
        username="demo-seed",
        organisation_id=org_id,
        role=Role.IT_SUPPORT,
        unit_ids=frozenset(),
    )
    for i in range(1, devices_count + 1):
        devices.create_device(
            services_uow(),
            setup,
            CreateDevice(
                device_id=f"tab-{i:03d}",
                asset_tag=f"ESAVO-{i:04d}",
                unit=UNITS[(i - 1) % len(UNITS)][0],
                serial=f"R9{i:07d}",
                model=MODELS[i % len(MODELS)],
            ),
        )
    logins = []
    for username, role, units in (
        ("admin@esavo.demo", "admin", ()),
        ("it@esavo.demo", "it_support", ()),
        ("ohjaaja@esavo.demo", "counsellor", (UNITS[0][0],)),
    ):
        password = secrets.token_urlsafe(9)
        accounts.add_user(services_uow(), AddUser(ORG[0], username, role, units, password))
        token, _ = accounts.create_token(services_uow(), username, "demo")
        logins.append(Login(username, role, password, token, units))
    return logins


SHORTCUTS = (
    {"label": "Chat", "url": "https://chat.esavo.example/", "category": "chat"},
    {
        "label": "Etävastaanotto",
        "url": "https://etavastaanotto.esavo.example/",
        "category": "appointment",
    },
    {"label": "Digipolut", "url": "https://digipolut.esavo.example/", "category": "digipath"},
    {"label": "Ryhmät", "url": "https://ryhmat.esavo.example/", "category": "group"},
)


def seed_loans(services: Services, now: datetime, lent: int, queued: int) -> None:
    """An agreement, kiosk profiles, `lent` tablets on loan (some overdue) and a short queue."""
    profile = KioskProfile(("fi.esavo.video",), SHORTCUTS, True)
    it, admin = demo_data.prepare_organisation(services.uow(), profile, "+358 15 000 0000", now)
    version = demo_data.publish_agreements(services.uow, admin)
    for i in range(1, lent + queued + 1):
        device = f"tab-{i:03d}"
        unit_code = UNITS[(i - 1) % len(UNITS)][0]
        # Handovers spread over the past months, so that a few loans are already overdue.
        start = now - timedelta(days=7 * i)
        request = RequestLoan(unit_code, f"ASK-{1000 + i}")
        loan = loans.request_loan(services.uow(), it, request, start)
        if i > lent:
            continue
        loans.act(services.uow(), it, LoanStep(loan, LoanAction.ASSIGN, device_id=device), start)
        loans.act(
            services.uow(),
            it,
            LoanStep(
                loan,
                LoanAction.HAND_OVER,
                agreement_version=version,
                agreement_accepted=True,
                agreement_language=demo_data.demo_agreement_language(i),
                kit=(KitLine("charger"), KitLine("case")),
            ),
            start,
        )


NURSE = "hoitaja@esavo.demo"  # a mental-health nurse: refers clients and works as a pair
PILOT_STORY_DEVICES = 25  # the story lends tab-022 and tab-025, past the 18 lent and 2 queued


def seed_pilot_story(services: Services, now: datetime) -> Login:
    """The pilots' ways of working, for the programme report and the consoles to show: a nurse
    of mental-health services refers two clients into adult social work's queue (one handed
    over, one declined with a reason), and works as the pair of adult social work's counsellor
    for a third client. Returns the nurse's login."""
    password = secrets.token_urlsafe(9)
    home, health = UNITS[0][0], UNITS[1][0]
    accounts.add_user(services.uow(), AddUser(ORG[0], NURSE, "counsellor", (health,), password))
    token, _ = accounts.create_token(services.uow(), NURSE, "demo")
    nurse = demo_data.principal_named(services.uow(), NURSE)
    worker = demo_data.principal_named(services.uow(), "ohjaaja@esavo.demo")
    handed = f"tab-{len(UNITS) * 7 + 1:03d}"  # tab-022 and tab-025: adult social work's,
    paired = f"tab-{len(UNITS) * 8 + 1:03d}"  # past the demo's 18 lent and 2 queued

    def hand_over(loan: int, device: str, when: datetime) -> None:
        # The queue's older request waits for a tablet of another model: the counsellor says so.
        skip = "Ryhmä alkaa, jonossa oleva odottaa toista mallia"
        assign = LoanStep(loan, LoanAction.ASSIGN, device_id=device, skip_reason=skip)
        loans.act(services.uow(), worker, assign, when)
        step = LoanStep(
            loan,
            LoanAction.HAND_OVER,
            agreement_version=demo_data.AGREEMENT_VERSION,
            agreement_accepted=True,
            kit=(KitLine("charger"),),
        )
        loans.act(services.uow(), worker, step, when)

    referred_at = now - timedelta(weeks=6)
    reason = "Etäryhmä alkaa, asiakkaalla ei ole laitetta"
    referral = RequestLoan(home, "ASK-2001", referral_reason=reason)
    hand_over(loans.request_loan(services.uow(), nurse, referral, referred_at), handed, referred_at)
    declined = loans.request_loan(
        services.uow(),
        nurse,
        RequestLoan(home, "ASK-2002", referral_reason="Tarvitsee laitteen etävastaanotolle"),
        now - timedelta(weeks=3),
    )
    step = LoanStep(declined, LoanAction.CANCEL, reason="Asiakkuus siirtyi toiseen palveluun")
    loans.act(services.uow(), worker, step, now - timedelta(weeks=3) + timedelta(days=1))
    pair = RequestLoan(home, "ASK-2003", ("ohjaaja@esavo.demo", NURSE))
    started = now - timedelta(weeks=5)
    hand_over(loans.request_loan(services.uow(), worker, pair, started), paired, started)
    # The evaluation: eight weeks of the counsellor's contacts (phone calls and home visits
    # giving way to remote support) and a weekly remote group with its attendance.
    demo_data.record_contacts(services.uow(), worker, now)
    demo_data.record_group(services.uow(), worker, now, "https://video.esavo.example/ryhma")
    # A client who is to keep their tablet: the counsellor proposed it; IT support decides (the
    # approval wipes the tablet and releases it from management, so the demo leaves it open).
    kept = demo_data.loan_of(services.uow(), "ASK-1016")
    reason = "Asiakkuus jatkuu etäpalveluna, oma laite puuttuu"
    keep_device.propose(services.uow(), worker, ProposeKeep(kept, reason), now - timedelta(days=2))
    return Login(NURSE, "counsellor", password, token, (health,))


def seed_usage(services: Services, now: datetime, weeks: int = 8) -> int:
    """Plausible daily usage totals of the loans on loan, up to yesterday, through the same
    ingest code as the tablets' reports (so the unit roll-up is their sum). A few loans of one
    unit have had no use for the last 16 days. Returns the number of device-days."""
    return demo_data.record_usage(services.uow(), now, weeks)


def run_demo(
    settings: Settings,
    *,
    devices_count: int = 30,
    http_port: int = 8000,
    workdir: Path = Path("var/demo"),
    status_interval_s: float = 5.0,
    prefer_mosquitto: bool = True,
    stop: threading.Event | None = None,
    on_ready: Callable[[DemoInfo], None] | None = None,
    kiosk: bool = False,
) -> None:
    """Run until `stop` is set (the CLI sets it on Ctrl-C); starts from a fresh state each time."""
    from agent.simulator import run_simulation

    stop = stop or threading.Event()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if wait_for_port(http_port, 0.2):
        raise RuntimeError(f"port {http_port} is in use; stop what runs there or pass --http-port")
    broker = demo_broker(workdir, prefer_mosquitto=prefer_mosquitto)
    broker.start()
    database = f"sqlite:///{(workdir / 'lainaamo.db').resolve()}"
    # A fresh command-signing key per demo run; its simulated tablets trust its public key.
    signer = generate_key_file(workdir / "command-signing.pem")
    settings = settings.replace(
        command_signing_key_file=str(workdir / "command-signing.pem"),
        command_public_key=signer.public_key_b64,
        database_url=database,
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        mqtt_protocol=broker.mqtt_protocol,
        mqtt_username="",
        mqtt_password="",
        mqtt_tls=False,
        ingest_shared_group="",
        http_port=http_port,
        status_interval_s=status_interval_s,
        # Today's usage totals every minute rather than every hour, so the demo shows them.
        usage_interval_s=60.0,
        agent_platform="simulated",
        device_mqtt_url=f"mqtt://127.0.0.1:{broker.device_port}",  # told to enrolling tablets
    )
    services = None
    http = ingest = None
    background: Background | None = None
    simulator = None
    close_kiosk: Callable[[], None] | None = None
    kiosk_display = None
    try:
        upgrade(database)
        services = bootstrap(settings)
        logins = seed(services.uow, devices_count)
        seed_loans(services, services.clock(), lent=min(18, devices_count), queued=2)
        if devices_count >= PILOT_STORY_DEVICES:
            logins.append(seed_pilot_story(services, services.clock()))
        seed_usage(services, services.clock())
        everyone = [f"tab-{i:03d}" for i in range(1, devices_count + 1)]
        problems = choose_problems(everyone)
        now = services.clock()
        demo_data.record_last_contact(
            services.uow(), {device: now - ago for device, ago in problems.offline}
        )
        # A demo whose ingest failed for good says so on /healthz and stops, as serve does.
        ingest = IngestConsumer(
            settings, services.session_factory, services.ingest_metrics, on_fatal=stop.set
        )
        ingest.start()
        background = Background.of(services, settings)
        background.start()
        http = HttpServer(
            services,
            "127.0.0.1",
            http_port,
            settings.http_threads,
            {"ingest": ingest.health, "scheduler": background.health},
        )
        http.start()
        # The tablets use their own listener (where client id = user name = device id).
        tablets = settings.replace(mqtt_port=broker.device_port)
        offline = {device for device, _ago in problems.offline}
        simulated = [device for device in everyone if device not in offline]
        if kiosk:
            simulated.remove(KIOSK_DEVICE)
            kiosk_display, close_kiosk = start_kiosk_tablet(tablets, workdir, stop)
        simulator = threading.Thread(
            target=run_simulation,
            args=(tablets,),
            kwargs={
                "device_ids": simulated,
                "stop_event": stop,
                "state_root": workdir / "agents",
                "draining": problems.draining,
                "ignoring": problems.ignoring,
            },
            name="simulator",
            daemon=True,
        )
        simulator.start()
        if on_ready:
            on_ready(
                DemoInfo(
                    f"http://127.0.0.1:{http_port}",
                    broker.name,
                    broker.port,
                    database,
                    logins,
                    kiosk_display,
                    problems,
                )
            )
        wait_for(stop)
    finally:
        stop.set()
        if simulator is not None:
            simulator.join(15)
        if close_kiosk is not None:
            close_kiosk()
        if http is not None:
            http.stop()
        if background is not None:
            background.stop()
        if ingest is not None:
            ingest.stop()
        if services is not None:
            services.close()
        broker.stop()


def start_kiosk_tablet(
    settings: Settings, workdir: Path, stop: threading.Event
) -> tuple[str, Callable[[], None]]:
    """Run KIOSK_DEVICE's agent on a real kiosk on a virtual screen until `stop`; its X display
    and what ends it (the kiosk's processes and its client account)."""
    from agent.platform.kiosk import virtual
    from agent.runner import run_agent
    from server.entrypoints.broker import free_port

    lacking = virtual.missing()
    if lacking:
        raise RuntimeError(f"--kiosk needs {', '.join(lacking)} (run `make services` as root)")
    config = virtual.virtual_config(workdir / "kiosk", KIOSK_CLIENT, free_port())
    platform = virtual.AnsweringKiosk(config, delay_s=KIOSK_ANSWER_S)
    agent_settings = settings.replace(
        device_id=KIOSK_DEVICE,
        agent_state_dir=str(workdir / "agents" / KIOSK_DEVICE),
        agent_platform="kiosk",
    )
    thread = threading.Thread(
        target=run_agent,
        args=(agent_settings, stop),
        kwargs={"platform": platform},
        name="kiosk-agent",
        daemon=True,
    )
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(15)
        platform.close()  # the agent closes only a platform it made itself
        subprocess.run(
            ["userdel", "--remove", "--force", KIOSK_CLIENT], capture_output=True, check=False
        )

    return config.display, close
