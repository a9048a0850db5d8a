"""The `lainaamo` command. Subcommands import what they need, so `lainaamo agent` works on a
tablet that has only the agent's dependencies installed."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from lainaamo import __version__
from lainaamo.config import Settings, markdown
from lainaamo.errors import LainaamoError
from lainaamo.signals import stop_on_signals

Handler = Callable[[argparse.Namespace, Settings], int]

DESCRIPTION = """\
Lainaamo: fleet server and agent for loan tablets in public social services.

Quick start:  lainaamo demo            (broker, server and 30 simulated tablets)
Production:   lainaamo db upgrade                     (once per upgrade)
              gunicorn --config deploy/gunicorn.conf.py  (console, API, /metrics)
              lainaamo ingest                         (MQTT ingest, one or more processes)
              lainaamo scheduler                      (scheduled work; a spare stands by)
Pilot:        lainaamo serve --with-ingest            (all of it in one process)
Tablet:       lainaamo agent install --server URL --token TOKEN   (as root, once)
              lainaamo agent                          (what its service runs)

Settings come from LAINAAMO_* environment variables or a TOML file (--config);
`lainaamo config --markdown` lists them all.
"""


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from server.entrypoints.serve import run_server

    return run_server(settings, with_ingest=args.with_ingest)


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from server.entrypoints.serve import run_ingest

    return run_ingest(settings)


def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from server.entrypoints.serve import run_scheduler

    run_scheduler(settings)
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench.cli import run

    return run(args)


def _bench_missing(args: argparse.Namespace, settings: Settings) -> int:
    print(
        "lainaamo bench: the benchmarks are not part of this installation (the server image "
        "leaves them out); run them from a checkout: pip install '.[dev]' (docs/benchmarks.md)",
        file=sys.stderr,
    )
    return 2


def _agent(args: argparse.Namespace, settings: Settings) -> int:
    from agent.enroll import with_enrollment
    from agent.runner import run_agent

    settings = with_enrollment(settings)  # enrollment.json fills what is not set explicitly
    if args.device_id:
        settings = settings.replace(device_id=args.device_id)
    if args.platform:
        settings = settings.replace(agent_platform=args.platform)
    if not settings.device_id:
        raise LainaamoError("the agent needs a device id: --device-id or LAINAAMO_DEVICE_ID")
    run_agent(settings)
    return 0


def _agent_enroll(args: argparse.Namespace, settings: Settings) -> int:
    from agent.enroll import enroll

    config, path = enroll(
        settings, args.server, args.token, args.device_id, serial=args.serial, model=args.model
    )
    verb = "re-enrolled" if config.get("rebound") else "enrolled"
    print(f"{verb} as device {config['device_id']} (unit: {config.get('unit') or 'none'})")
    print(f"configuration written to {path} (readable by its owner only)")
    print("start the agent with: lainaamo agent")
    return 0


def _root_options(args: argparse.Namespace) -> tuple[Path, bool, bool]:
    """--root and --with-account: the root, whether systemctl and sysctl run, and whether the
    client account is managed."""
    if args.with_account and not args.root:
        raise LainaamoError("--with-account goes with --root (without it the account is managed)")
    if not args.root:
        return Path("/"), True, True
    return Path(args.root).resolve(), False, bool(args.with_account)


def _agent_install(args: argparse.Namespace, settings: Settings) -> int:
    from agent.install import Host, InstallOptions, install, running_executable

    root, manage_system, manage_account = _root_options(args)
    options = InstallOptions(
        command=(running_executable(), "agent"),
        server=args.server,
        token=args.token,
        device_id=args.device_id,
        language=args.language,
        client_user=args.client_user,
        root=root,
        manage_system=manage_system,
        manage_account=manage_account,
        image=args.image,
    )
    steps = install(options, Host(), report=lambda step: print(step, flush=True))
    changed = [s for s in steps if s.status not in ("unchanged", "skipped")]
    if changed:
        print(f"installed: {len(changed)} step(s) changed; undo with `lainaamo agent uninstall`")
    else:
        print("already installed: nothing changed")
    return 0


def _agent_uninstall(args: argparse.Namespace, settings: Settings) -> int:
    from agent.install import MANIFEST_FILE, Host, UninstallOptions, uninstall

    root, manage_system, manage_account = _root_options(args)
    options = UninstallOptions(
        policy_dir=settings.kiosk_policy_dir,
        keep_account=args.keep_account,
        root=root,
        manage_system=manage_system,
        manage_account=manage_account,
    )
    host = Host()
    steps = uninstall(options, host, report=lambda step: print(step, flush=True))
    if steps:
        print("uninstalled")
    else:
        where = options.root / MANIFEST_FILE.lstrip("/")
        print(f"nothing to do: the agent is not installed here (no {where})")
    if args.reboot:
        if not manage_system or not host.systemd_running():
            print("reboot: skipped: " + ("--root" if not manage_system else "no systemd"))
        else:
            print("rebooting", flush=True)
            ok, said = host.systemctl("reboot")
            if not ok:
                print(f"reboot failed: {said}", file=sys.stderr)
                return 1
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from agent.simulator import run_simulation

    if args.interval:
        settings = settings.replace(status_interval_s=args.interval)
    run_simulation(
        settings,
        args.devices,
        id_prefix=args.prefix,
        seed=args.seed,
        state_root=Path(args.state_dir),
        outages=not args.no_outages,
    )
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from server.entrypoints.demo import DemoInfo, run_demo

    def banner(info: DemoInfo) -> None:
        print(
            f"\nLainaamo demo is running — {args.devices} simulated tablets, broker: {info.broker} "
            f"on 127.0.0.1:{info.mqtt_port}"
        )
        print(
            f"  Console  {info.api_url}/  (sign in with a login below; fi/sv/en)\n"
            f"  API      {info.api_url}/api/v1/devices\n"
            f"  OpenAPI  {info.api_url}/api/v1/openapi.json"
        )
        print(f"  Metrics  {info.api_url}/metrics")
        print(f"  Database {info.database}\n")
        print(f"  Problems {info.problems.summary}\n")
        if info.kiosk_display:
            print(
                f"  Kiosk    tab-001 is a real kiosk tablet on X display {info.kiosk_display}: "
                "open remote support for it\n"
                "           as the counsellor; a stand-in client taps Allow on its screen after "
                "3 s\n"
            )
        print("  Logins (new on every start):")
        for login in info.logins:
            units = f" units: {', '.join(login.units)}" if login.units else ""
            print(f"    {login.role:<11} {login.username:<20} password {login.password}{units}")
            print(f"                token {login.token}")
        token = info.logins[1].token
        print(
            f"\n  Try:  curl -H 'Authorization: Bearer {token}' \\\n"
            f"          '{info.api_url}/api/v1/devices?online=true'"
        )
        print("  Stop: Ctrl-C\n", flush=True)

    if settings.log_level != "DEBUG":
        # The banner says what matters; per-tablet connection chatter would bury it.
        for noisy in ("alembic", "agent"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    with stop_on_signals(None) as stop:
        run_demo(
            settings,
            devices_count=args.devices,
            http_port=args.http_port,
            workdir=Path(args.workdir),
            status_interval_s=args.interval,
            prefer_mosquitto=not args.embedded_broker,
            stop=stop,
            on_ready=banner,
            kiosk=args.kiosk,
        )
    print("Demo stopped.")
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from server.adapters.db import current_revision, upgrade

    upgrade(settings.database_url, args.revision)
    print(f"database at revision {current_revision(settings.database_url)}")
    return 0


def _db_current(args: argparse.Namespace, settings: Settings) -> int:
    from server.adapters.db import current_revision

    print(current_revision(settings.database_url) or "empty (run `lainaamo db upgrade`)")
    return 0


def _uow(settings: Settings):  # type: ignore[no-untyped-def]
    from server.bootstrap import bootstrap

    return bootstrap(settings, fleet_metrics=False).uow()


def _org_add(args: argparse.Namespace, settings: Settings) -> int:
    from server.service_layer.accounts import add_organisation

    add_organisation(_uow(settings), args.code, args.name)
    print(f"organisation {args.code} created")
    return 0


def _unit_add(args: argparse.Namespace, settings: Settings) -> int:
    from server.service_layer.accounts import add_unit

    add_unit(_uow(settings), args.org, args.code, args.name)
    print(f"unit {args.code} created in {args.org}")
    return 0


def _user_add(args: argparse.Namespace, settings: Settings) -> int:
    from server.domain.commands import AddUser
    from server.service_layer.accounts import add_user, create_token

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password:
        password = getpass.getpass(f"password for {args.username}: ")
    add_user(
        _uow(settings), AddUser(args.org, args.username, args.role, tuple(args.unit), password)
    )
    print(f"user {args.username} ({args.role}) created")
    if args.token:
        token, _ = create_token(_uow(settings), args.username, "cli")
        print(f"API token (shown once): {token}")
    return 0


def _user_break_glass(args: argparse.Namespace, settings: Settings) -> int:
    from server.service_layer.accounts import set_break_glass

    set_break_glass(_uow(settings), args.username, not args.off)
    state = "no longer" if args.off else "now"
    print(f"{args.username} is {state} the break-glass account (password sign-in always allowed)")
    return 0


def _sso_check(args: argparse.Namespace, settings: Settings) -> int:
    from server.bootstrap import bootstrap
    from server.service_layer.sso import check_setup

    if not settings.sso_file:
        print("no SSO file: set sso_file (LAINAAMO_SSO_FILE); see docs/security.md")
        return 1
    services = bootstrap(settings, fleet_metrics=False)
    try:
        public = settings.public_url or f"http://{settings.http_host}:{settings.http_port}"
        checks = check_setup(services.uow(), services.sso, public)
    finally:
        services.close()
    if not checks:
        print(f"{settings.sso_file} names no provider")
        return 1
    for check in checks:
        print(f"provider {check.provider}: {'OK' if not check.problems else 'PROBLEMS'}")
        print(f"  register at the provider: redirect URI {check.redirect_uri}")
        print(
            f"                            post-logout redirect URI {check.post_logout_redirect_uri}"
        )
        for fact in check.facts:
            print(f"  {fact}")
        for problem in check.problems:
            print(f"  PROBLEM: {problem}")
    return 1 if any(check.problems for check in checks) else 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from server.service_layer.accounts import create_token

    valid = timedelta(days=args.days) if args.days else None
    token, expires = create_token(_uow(settings), args.username, args.name, valid)
    print(f"API token (shown once): {token}")
    print(f"expires: {expires.isoformat() if expires else 'never'}")
    return 0


def _keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    from server.adapters.signing import generate_key_file

    path = args.out or settings.command_signing_key_file
    if not path:
        raise LainaamoError("where to? --out FILE or LAINAAMO_COMMAND_SIGNING_KEY_FILE")
    signer = generate_key_file(path)
    print(f"private key written to {path} (readable by its owner only)")
    print(f"key id: {signer.kid}")
    print(f"public key (command_public_key of the agents): {signer.public_key_b64}")
    return 0


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from lainaamo.progress import ProgressBar
    from server.bootstrap import bootstrap
    from server.service_layer.audit import check_chain

    services = bootstrap(settings, fleet_metrics=False)
    bar = ProgressBar("verifying")
    report = check_chain(services.uow(), bar)
    bar.finish()
    services.close()
    print(f"{report.events} audit events, chain head seq {report.head_seq} hash {report.head_hash}")
    if report.intact:
        print("the audit chain is intact")
        return 0
    print(f"THE AUDIT CHAIN IS BROKEN: {report.problem}")
    return 1


def _config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    for name, value in vars(settings).items():
        hidden = ("password" in name or "secret" in name) and value
        shown = "********" if hidden else value
        print(f"{name} = {shown!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lainaamo",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lainaamo {__version__}")
    parser.add_argument("--config", help="TOML settings file (default: $LAINAAMO_CONFIG)")
    parser.add_argument("--log-level", help="override log_level (DEBUG, INFO, WARNING, ERROR)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    p = add("serve", _serve, "Serve the REST API (/api/v1) and /metrics over HTTP.")
    p.add_argument(
        "--with-ingest",
        action="store_true",
        help="also run the MQTT ingest and the scheduler in this process (small installations)",
    )
    add(
        "ingest",
        _ingest,
        "Consume device messages from the broker into the database (/metrics and /healthz on "
        "ingest_metrics_port).",
    )
    add(
        "scheduler",
        _scheduler,
        "Run the scheduled work: publish desired states, commands and support signals, post "
        "webhooks, expire and escalate, write the broker's auth files. Start two for a standby "
        "(/metrics and /healthz on scheduler_metrics_port).",
    )
    p = add(
        "agent", _agent, "Run the tablet agent (reports status, applies policies and commands)."
    )
    p.add_argument("--device-id", help="this device's id (default: $LAINAAMO_DEVICE_ID)")
    p.add_argument("--platform", choices=["kiosk", "linux", "simulated"], help="platform adapter")
    agent_sub = p.add_subparsers(dest="agent_command", metavar="ACTION")
    e = agent_sub.add_parser(
        "enroll",
        help="Enroll this tablet with a token from the console's Enrollment page.",
        description="Enroll this tablet with a token from the console's Enrollment page; "
        "writes <agent_state_dir>/enrollment.json, which `lainaamo agent` then uses.",
    )
    e.add_argument("--server", required=True, help="the server's address, e.g. https://…")
    e.add_argument("--token", required=True, help="the enrollment token (lnm_enr_…)")
    e.add_argument("--device-id", help="this device's id (default: the host name)")
    e.add_argument("--serial", help="serial number to record")
    e.add_argument("--model", help="model to record")
    e.set_defaults(handler=_agent_enroll)
    root_help = (
        "put every file under DIR instead of / (for tests, or to prepare an image); the "
        "account, systemctl and sysctl steps are then skipped"
    )
    i = agent_sub.add_parser(
        "install",
        help="Make this Debian/Ubuntu machine a managed kiosk tablet (as root; idempotent).",
        description="Make this Debian/Ubuntu machine a managed kiosk tablet, as root: enroll it, "
        "make the client account, write /etc/lainaamo/agent.env, the systemd unit "
        "lainaamo-agent.service, the Xorg and sysctl configuration that turn off virtual "
        "consoles, Ctrl+Alt+Backspace and SysRq, disable the display managers (gdm, lightdm, "
        "sddm) and start the agent. Prints one line per step (created, changed, unchanged or "
        "skipped: why); running it again changes nothing. What it did is recorded in "
        "/var/lib/lainaamo-agent/install.json for `lainaamo agent uninstall`.",
    )
    i.add_argument(
        "--server",
        metavar="URL",
        help="the server's address, e.g. https://lainaamo.example.fi (needed until enrolled)",
    )
    i.add_argument(
        "--token",
        help="an enrollment token from the console's Enrollment page (lnm_enr_…); needed "
        "until enrolled, not used once the tablet is",
    )
    i.add_argument(
        "--device-id",
        help="this device's id at enrollment (default: the host name; give one to every "
        "tablet cloned from an image, whose host names are all alike)",
    )
    i.add_argument(
        "--image",
        action="store_true",
        help="prepare a machine to be cloned: everything but the enrollment (no --server or "
        "--token); its service is enabled but starts only once the tablet is enrolled, by "
        "running the install again on each clone with --server, --token and --device-id",
    )
    i.add_argument(
        "--language",
        choices=["fi", "sv", "en"],
        help="language of the kiosk's screens (default: as installed before, else fi)",
    )
    i.add_argument(
        "--client-user",
        metavar="NAME",
        help="the client's unprivileged account, made from /etc/skel with no login shell "
        "(default: as installed before, else lainaamo-client); an account that exists must "
        "already be a kiosk account",
    )
    i.add_argument("--root", metavar="DIR", help=root_help)
    i.add_argument(
        "--with-account",
        action="store_true",
        help="with --root: still make the client account on this machine",
    )
    i.set_defaults(handler=_agent_install)
    u = agent_sub.add_parser(
        "uninstall",
        help="Undo `lainaamo agent install` (as root; harmless when run again).",
        description="Undo what `lainaamo agent install` recorded in "
        "/var/lib/lainaamo-agent/install.json: stop and disable the agent's service, remove "
        "the files it created (and put back any it replaced), enable again the display "
        "managers it disabled, remove the kiosk's Chromium policy, the enrollment and the "
        "client account with its home. The server keeps the device: retire it in the console.",
    )
    u.add_argument(
        "--keep-account",
        action="store_true",
        help="keep the client account and its files, handed over as an ordinary one "
        "(login shell /bin/bash, the usual desktop groups, a password to choose at the first "
        "login; no administrator rights)",
    )
    u.add_argument(
        "--reboot",
        action="store_true",
        help="restart the machine afterwards, so that it comes up with its ordinary login "
        "(what a kiosk tablet does after the server's `release` command)",
    )
    u.add_argument(
        "--root",
        metavar="DIR",
        help="the DIR the install was given: its files are under DIR; the account, systemctl "
        "and sysctl steps are then skipped",
    )
    u.add_argument(
        "--with-account",
        action="store_true",
        help="with --root: still remove (or hand over) the client account on this machine",
    )
    u.set_defaults(handler=_agent_uninstall)
    p = add("simulate", _simulate, "Run N simulated tablets, each with its own MQTT connection.")
    p.add_argument("--devices", type=int, default=30, help="how many tablets (default 30)")
    p.add_argument("--prefix", default="tab", help="device ids are PREFIX-001, PREFIX-002, …")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated behaviour")
    p.add_argument("--interval", type=float, help="status interval in seconds")
    p.add_argument("--state-dir", default="var/simulator", help="where the agents keep their state")
    p.add_argument(
        "--no-outages",
        action="store_true",
        help="no simulated network outages (by default a few tablets drop off now and then)",
    )
    p = add(
        "demo", _demo, "Run broker, server and a simulated 30-tablet pilot fleet; Ctrl-C stops."
    )
    p.add_argument("--devices", type=int, default=30, help="simulated tablets (default 30)")
    p.add_argument("--http-port", type=int, default=8000, help="API port (default 8000)")
    p.add_argument("--interval", type=float, default=5.0, help="status interval (default 5 s)")
    p.add_argument("--workdir", default="var/demo", help="where the demo keeps its files")
    p.add_argument(
        "--embedded-broker",
        action="store_true",
        help="use the embedded Python broker even if Mosquitto is installed",
    )
    p.add_argument(
        "--kiosk",
        action="store_true",
        help="make tab-001 a real Linux kiosk tablet on a virtual screen (root; Xvfb and "
        "Chromium from `make services`) whose real screen remote support shows",
    )

    db = sub.add_parser("db", help="Database schema.", description="Database schema.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_sub.add_parser("upgrade", help="Apply migrations up to a revision (default: newest).")
    p.add_argument("--revision", default="head")
    p.set_defaults(handler=_db_upgrade)
    db_sub.add_parser("current", help="Show the schema revision.").set_defaults(handler=_db_current)

    org = sub.add_parser("org", help="Organisations (wellbeing regions).")
    org_sub = org.add_subparsers(dest="org_command", required=True, metavar="ACTION")
    p = org_sub.add_parser("add", help="Create an organisation.")
    p.add_argument("code")
    p.add_argument("name")
    p.set_defaults(handler=_org_add)

    unit = sub.add_parser("unit", help="Lending units of an organisation.")
    unit_sub = unit.add_subparsers(dest="unit_command", required=True, metavar="ACTION")
    p = unit_sub.add_parser("add", help="Create a unit.")
    p.add_argument("--org", required=True, help="organisation code")
    p.add_argument("code")
    p.add_argument("name")
    p.set_defaults(handler=_unit_add)

    user = sub.add_parser("user", help="Users (professionals, never clients).")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    p = user_sub.add_parser("add", help="Create a user; prints an API token unless --no-token.")
    p.add_argument("username")
    p.add_argument("--org", required=True, help="organisation code")
    p.add_argument("--role", required=True, choices=["admin", "it_support", "counsellor"])
    p.add_argument(
        "--unit", action="append", default=[], help="unit code (repeat; counsellors need one)"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--password", action="store_true", help="ask for a password")
    group.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--no-token", dest="token", action="store_false", help="do not create an API token"
    )
    p.set_defaults(handler=_user_add)
    p = user_sub.add_parser(
        "break-glass",
        help="Mark a local administrator as the break-glass account: it may sign in with its "
        "password where the organisation uses single sign-on only (--off: no longer).",
    )
    p.add_argument("username")
    p.add_argument("--off", action="store_true", help="no longer the break-glass account")
    p.set_defaults(handler=_user_break_glass)

    sso = sub.add_parser("sso", help="Staff single sign-on (OpenID Connect; docs/security.md).")
    sso_sub = sso.add_subparsers(dest="sso_command", required=True, metavar="ACTION")
    p = sso_sub.add_parser(
        "check",
        help="Check the SSO file: each provider's discovery and keys, its organisation and "
        "mapped units; print the addresses to register at the provider.",
    )
    p.set_defaults(handler=_sso_check)

    token = sub.add_parser("token", help="API tokens.")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = token_sub.add_parser("create", help="Create an API token for a user.")
    p.add_argument("username")
    p.add_argument("--name", default="cli", help="what the token is for")
    p.add_argument("--days", type=int, help="valid for this many days (default: until revoked)")
    p.set_defaults(handler=_token_create)

    keys = sub.add_parser("keys", help="The server's command-signing key.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser(
        "generate",
        help="Create the Ed25519 key that signs commands; prints its public key.",
    )
    p.add_argument("--out", help="private key file (default: command_signing_key_file)")
    p.set_defaults(handler=_keys_generate)

    audit = sub.add_parser("audit", help="The append-only audit log.")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_sub.add_parser(
        "verify",
        help="Recompute the audit hash chain and report any altered or removed event "
        "(exit 1). Keep the printed head hash somewhere else to detect a rewritten chain.",
    ).set_defaults(handler=_audit_verify)

    p = add(
        "bench",
        _bench,
        "Benchmarks: each prints its figures beside a baseline measured in the same run "
        "(docs/benchmarks.md). Needs a development install (Mosquitto, PostgreSQL).",
    )
    try:
        from bench.cli import add_parsers  # light: benchmarks import the server only when run
    except ModuleNotFoundError as error:
        # An installation without the benchmarks (the server image has only what serves):
        # every other command works; this one says so.
        if error.name != "bench":
            raise
        p.set_defaults(handler=_bench_missing)
    else:
        bench_sub = p.add_subparsers(dest="bench_name", metavar="BENCHMARK", required=True)
        add_parsers(bench_sub)
    p = add("config", _config, "Print the settings in effect.")
    p.add_argument("--markdown", action="store_true", help="print the settings reference instead")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(config_file=args.config)
        if args.log_level:
            settings = settings.replace(log_level=args.log_level.upper())
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        code: int = args.handler(args, settings)
        return code
    except LainaamoError as exc:
        print(f"lainaamo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
