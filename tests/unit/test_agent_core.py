"""The agent core without a broker: sequence numbers, presence, status timing, desired, commands."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from support.clock import START, FakeClock

from agent import commands
from agent.core import AgentCore, Outgoing
from agent.enforcer import ENFORCING_FAILED, report_of
from agent.platform.base import UNSUPPORTED, CommandResult, DeviceFacts, Enforcement
from agent.policy import LockScreen, Policy
from agent.state import AgentState
from lainaamo.protocol import (
    CommandAck,
    EnforcementReport,
    Kind,
    Presence,
    StatusReport,
    Topics,
    encode,
    format_ts,
    parse,
)
from server.adapters.signing import CommandSigner

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")


@dataclass
class FakePlatform:
    facts_now: DeviceFacts = field(
        default_factory=lambda: DeviceFacts(
            battery_pct=72,
            charging=False,
            storage_free_mb=1000,
            storage_total_mb=32000,
            os_version="FakeOS 1",
            network="wifi",
            signal_pct=80,
            uptime_s=100,
        )
    )
    locked: bool = False
    kiosk: bool = False
    policies: list[Policy] = field(default_factory=list)
    screens: list[LockScreen] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    fail_policy: bool = False
    failing: dict[str, str] = field(default_factory=dict)  # keys it fails to enforce, and why
    explode_on: str | None = None
    name: str = "fake"

    def facts(self) -> DeviceFacts:
        return self.facts_now

    def apply_policy(self, policy: Policy) -> Enforcement:
        if self.fail_policy:
            raise RuntimeError("policy engine crashed")
        self.policies.append(policy)
        self.kiosk = policy.kiosk_enforced
        self.locked = policy.lock_screen is not None
        # (Keys not in the policy too: the agent reports only those of the policy.)
        return Enforcement(("kiosk",) if "kiosk" in policy.keys else (), dict(self.failing))

    def lock(self, screen: LockScreen) -> bool:
        self.screens.append(screen)
        self.locked = True
        return True

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        self.executed.append(name)
        if name == "lock":
            self.locked = True
            return CommandResult(ok=True)
        if name == self.explode_on:
            raise RuntimeError("boom")
        return UNSUPPORTED

    def network_up(self) -> bool:
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


def make_core(
    tmp_path: Path,
    clock: FakeClock,
    platform: FakePlatform,
    interval: float = 60.0,
    command_public_key: str = "",
) -> AgentCore:
    state = AgentState(tmp_path / "state")
    return AgentCore(
        device_id=DEVICE,
        topics=TOPICS,
        platform=platform,
        state=state,
        boot=state.next_boot(),
        status_interval_s=interval,
        clock=clock,
        command_public_key=command_public_key,
    )


@pytest.fixture
def core(tmp_path: Path, clock: FakeClock, platform: FakePlatform) -> AgentCore:
    return make_core(tmp_path, clock, platform)


def check(out: Outgoing) -> Any:
    """The outgoing message must be valid under the contract's schema and round-trip."""
    device_id, kind = TOPICS.parse(out.topic)
    assert device_id == DEVICE
    parsed = parse(kind, device_id, out.payload)
    assert parsed == out.message
    return parsed


def cmd_payload(cmd_id: str, name: str, expires_in_s: float = 600, **extra: Any) -> bytes:
    data = {
        "v": 1,
        "device_id": DEVICE,
        "ts": format_ts(START),
        "boot": 1,
        "seq": 0,
        "cmd_id": cmd_id,
        "name": name,
        "args": {},
        "expires_at": format_ts(START + timedelta(seconds=expires_in_s)),
    }
    data.update(extra)
    return json.dumps(data).encode()


def desired_payload(version: int, policy: dict[str, Any]) -> bytes:
    data = {
        "v": 1,
        "device_id": DEVICE,
        "ts": format_ts(START),
        "boot": 1,
        "seq": 0,
        "version": version,
        "policy": policy,
    }
    return json.dumps(data).encode()


CMD_TOPIC = TOPICS.topic(DEVICE, Kind.CMD)
DESIRED_TOPIC = TOPICS.topic(DEVICE, Kind.DESIRED)


def acks(outs: list[Outgoing]) -> list[tuple[str, str, str | None]]:
    return [
        (o.message.cmd_id, o.message.status, o.message.detail)
        for o in outs
        if isinstance(o.message, CommandAck)
    ]


def statuses(outs: list[Outgoing]) -> list[StatusReport]:
    return [o.message for o in outs if isinstance(o.message, StatusReport)]


# --- sequence numbers and presence


def test_seq_starts_at_zero_and_is_monotonic_across_all_kinds(
    core: AgentCore, clock: FakeClock
) -> None:
    will = core.will()
    outs = [core.birth(), will, *core.status("birth")]
    outs += core.handle(CMD_TOPIC, cmd_payload("cmd-aaaaaaaa", "sync"))
    clock.advance(60)
    outs += core.tick()
    outs.append(core.shutdown())
    seqs = [check(o).seq for o in outs]
    assert seqs[0] == 0
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert {check(o).boot for o in outs} == {1}


def test_boot_of_messages_follows_the_persisted_counter(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    make_core(tmp_path, clock, platform)
    second = make_core(tmp_path, clock, platform)
    assert check(second.will()).boot == 2
    assert check(second.birth()).position == (2, 0)


def test_will_sorts_after_its_birth_and_before_the_next_birth(core: AgentCore) -> None:
    will = core.will()
    assert core.will() is will  # an attempt that never reached the broker: reused, no gaps
    birth = core.birth()
    w, b = check(will), check(birth)
    assert isinstance(w, Presence) and isinstance(b, Presence)
    assert (w.state, w.reason, will.retain, will.durable) == ("offline", "will", True, False)
    assert (b.state, b.reason, birth.retain, birth.durable) == ("online", "birth", True, False)
    assert b.agent_version and b.status_interval_s == 60
    # Reserved together before connecting: the birth just below its will.
    assert (b.seq, w.seq) == (0, 1)
    # Reports of the connection come after both.
    (report,) = core.status("birth")
    assert check(report).seq == 2
    # The next connection's presences sort after this will.
    next_will = check(core.will())
    next_birth = check(core.birth())
    assert b.position < w.position < next_birth.position < next_will.position


def test_abandoned_attempt_reserves_new_seqs(core: AgentCore) -> None:
    first = check(core.will())
    core.abandon_will()  # CONNECT may have reached the broker, which may fire that will
    second = check(core.will())
    birth = check(core.birth())
    assert first.position < birth.position < second.position


def test_birth_reports_a_whole_number_interval_of_at_least_one(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    core = make_core(tmp_path, clock, platform, interval=0.2)
    assert check(core.birth()).status_interval_s == 1


def test_shutdown_presence(core: AgentCore) -> None:
    out = core.shutdown()
    presence = check(out)
    assert (presence.state, presence.reason, out.retain) == ("offline", "shutdown", True)


def test_subscriptions_are_own_desired_cmd_session_and_receipt(core: AgentCore) -> None:
    assert core.subscriptions() == [
        "fleet/v1/tab-001/desired",
        "fleet/v1/tab-001/cmd",
        "fleet/v1/tab-001/session",
        "fleet/v1/tab-001/receipt",
    ]


# --- status timing


def test_status_carries_the_platform_facts(core: AgentCore, platform: FakePlatform) -> None:
    (out,) = core.status("birth")
    report = check(out)
    assert out.durable and not out.retain
    assert report.reason == "birth"
    assert report.battery_pct == 72
    assert report.storage_total_mb == 32000
    assert report.network == "wifi"
    assert report.desired_version == 0
    assert report.locked is False


def test_interval_status_every_interval(core: AgentCore, clock: FakeClock) -> None:
    clock.advance(59)
    assert core.tick() == []
    assert core.next_deadline() <= clock.mono + 1
    clock.advance(1)
    assert [s.reason for s in statuses(core.tick())] == ["interval"]
    clock.advance(30)
    assert core.tick() == []
    clock.advance(30)
    assert [s.reason for s in statuses(core.tick())] == ["interval"]


@pytest.mark.parametrize(
    "change",
    [
        {"charging": True},
        {"network": "cellular"},
        {"battery_pct": 69},  # crosses 70
    ],
)
def test_significant_change_is_reported_at_once(
    core: AgentCore, clock: FakeClock, platform: FakePlatform, change: dict[str, Any]
) -> None:
    core.status("birth")
    clock.advance(1)
    assert core.tick() == []
    platform.facts_now = replace(platform.facts_now, **change)
    clock.advance(1)
    assert [s.reason for s in statuses(core.tick())] == ["change"]


def test_insignificant_change_waits_for_the_interval(
    core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    core.status("birth")
    platform.facts_now = replace(platform.facts_now, battery_pct=71, storage_free_mb=900)
    for _ in range(59):
        clock.advance(1)
        assert core.tick() == []
    clock.advance(1)
    assert [s.reason for s in statuses(core.tick())] == ["interval"]


def test_change_reports_are_rate_limited(
    core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    core.status("birth")
    clock.advance(1)
    platform.facts_now = replace(platform.facts_now, charging=True)
    assert len(core.tick()) == 1
    clock.advance(1)
    platform.facts_now = replace(platform.facts_now, charging=False)
    assert core.tick() == []  # 1 s after the last change report
    assert core.next_deadline() == pytest.approx(clock.mono + 1)
    clock.advance(1)
    (report,) = statuses(core.tick())
    assert (report.reason, report.charging) == ("change", False)


# --- desired state


def test_desired_applied_only_when_newer(core: AgentCore, platform: FakePlatform) -> None:
    outs = core.handle(DESIRED_TOPIC, desired_payload(3, {"mode": "kiosk", "wallpaper": "x"}))
    (report,) = statuses(outs)
    assert (report.reason, report.desired_version, report.kiosk) == ("change", 3, True)
    ((applied),) = platform.policies
    assert (applied.mode, applied.keys, applied.ignored) == (
        "kiosk",
        ("mode", "wallpaper"),
        ("wallpaper",),
    )
    assert core.handle(DESIRED_TOPIC, desired_payload(3, {"mode": "locked"})) == []
    assert core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "locked"})) == []
    assert len(platform.policies) == 1
    outs = core.handle(DESIRED_TOPIC, desired_payload(4, {"mode": "locked"}))
    assert [p.mode for p in platform.policies] == ["kiosk", "locked"]
    (report,) = statuses(outs)
    assert (report.desired_version, report.kiosk, report.locked) == (4, False, True)
    assert check(core.status("interval")[0]).desired_version == 4


def test_applied_desired_version_survives_a_restart(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    first = make_core(tmp_path, clock, platform)
    first.handle(DESIRED_TOPIC, desired_payload(5, {"mode": "kiosk"}))
    fresh = FakePlatform()
    second = make_core(tmp_path, clock, fresh)
    second.restore()  # the platform enforces the policy again after a restart
    assert [p.mode for p in fresh.policies] == ["kiosk"] and fresh.kiosk
    assert second.handle(DESIRED_TOPIC, desired_payload(5, {"mode": "kiosk"})) == []
    assert check(second.status("birth")[0]).desired_version == 5


def test_policy_recorded_by_an_older_agent_is_forgotten(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    AgentState(tmp_path / "state").save_desired(5, {"kiosk": True})  # before `mode` existed
    core = make_core(tmp_path, clock, platform)
    core.restore()
    assert platform.policies == [] and core.state.desired.version == 0
    # The retained desired state, though not newer, is applied and recorded.
    (report,) = statuses(core.handle(DESIRED_TOPIC, desired_payload(5, {"mode": "kiosk"})))
    assert (report.desired_version, report.kiosk) == (5, True)


@pytest.mark.allow_error_logs
def test_failed_policy_is_not_recorded_as_applied(core: AgentCore, platform: FakePlatform) -> None:
    platform.fail_policy = True
    assert core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "kiosk"})) == []
    assert core.state.desired.version == 0
    platform.fail_policy = False
    assert statuses(core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "kiosk"})))


def test_desired_is_applied_again_after_each_connect(
    core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    core.on_connected()
    core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "kiosk"}))
    core.status("birth")
    clock.advance(5)
    # A lock command holds until the policy is enforced again ...
    assert statuses(core.handle(CMD_TOPIC, cmd_payload("cmd-lock0001", "lock")))[0].locked
    assert core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "kiosk"})) == []
    assert platform.locked
    # ... which the first desired state after a reconnect does, without a new version.
    core.on_disconnected()
    clock.advance(5)
    core.on_connected()
    outs = core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "kiosk"}))
    assert [p.mode for p in platform.policies] == ["kiosk", "kiosk"]
    (report,) = statuses(outs)
    assert (report.reason, report.locked, report.desired_version) == ("change", False, 2)
    # Only the first: the retained copy that follows is not newer.
    assert core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "kiosk"})) == []
    assert len(platform.policies) == 2
    # Also when the server's version went back (a restored database): ours stays.
    core.on_connected()
    assert core.handle(DESIRED_TOPIC, desired_payload(1, {"mode": "locked"})) == []
    assert [p.mode for p in platform.policies] == ["kiosk"] * 3
    assert core.state.desired.version == 2


# --- what is enforced of the policy (docs/protocol.md §6.2, §9)


def test_status_says_which_keys_of_the_applied_policy_are_not_enforced(
    core: AgentCore, platform: FakePlatform
) -> None:
    (before,) = core.status("birth")
    assert check(before).enforcement is None  # no policy yet: nothing to say
    assert b"enforcement" not in before.payload
    platform.failing = {"message": "no screen for it", "support_phone": "x" * 300, "ring": "?"}
    policy = {"mode": "kiosk", "kiosk": {}, "message": "M", "support_phone": "1", "wallpaper": 2}
    (report,) = statuses(core.handle(DESIRED_TOPIC, desired_payload(3, policy)))
    # The platform's unsupported keys and the ones this agent does not know (wallpaper);
    # failed keys of the policy with their reasons, cut to the contract's 120 characters.
    assert report.enforcement == EnforcementReport(
        ("kiosk", "wallpaper"),
        {"message": "no screen for it", "support_phone": "x" * 120},
    )
    assert check(core.status("interval")[0]).enforcement == report.enforcement
    platform.failing = {}
    (report,) = statuses(core.handle(DESIRED_TOPIC, desired_payload(4, {"mode": "locked"})))
    assert report.enforcement == EnforcementReport() and report.enforcement.complete


def test_a_changed_enforcement_after_a_reapply_is_a_significant_change(
    core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    core.on_connected()
    core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "locked", "message": "M"}))
    core.status("birth")
    clock.advance(5)
    # The platform now fails to show the message: the re-apply after a reconnect says so.
    platform.failing = {"message": "lock screen unavailable"}
    core.on_disconnected()
    core.on_connected()
    (report,) = statuses(core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "locked"})))
    assert (report.reason, report.desired_version) == ("change", 2)
    assert report.enforcement == EnforcementReport((), {"message": "lock screen unavailable"})
    assert core.state.desired.enforcement == {
        "unsupported": [],
        "failed": {"message": "lock screen unavailable"},
    }


@pytest.mark.allow_error_logs
def test_a_reapply_that_raises_claims_nothing_of_the_policy(
    core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    core.on_connected()
    core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "locked", "message": "M"}))
    core.status("birth")
    clock.advance(5)
    platform.fail_policy = True
    core.on_disconnected()
    core.on_connected()
    assert core.handle(DESIRED_TOPIC, desired_payload(2, {"mode": "locked"})) == []
    (report,) = statuses(core.tick())  # noticed by the next check, reported as a change
    assert (report.reason, report.desired_version) == ("change", 2)
    assert report.enforcement == EnforcementReport(
        (), dict.fromkeys(["message", "mode"], ENFORCING_FAILED)
    )


def test_what_is_enforced_is_kept_across_a_restart_and_found_anew_by_restore(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    first = make_core(tmp_path, clock, platform)
    first.handle(DESIRED_TOPIC, desired_payload(5, {"mode": "kiosk", "kiosk": {}}))
    fresh = FakePlatform(failing={"mode": "no kiosk shell"})
    second = make_core(tmp_path, clock, fresh)
    # As recorded, until the policy is enforced again ...
    assert check(second.status("birth")[0]).enforcement == EnforcementReport(("kiosk",))
    second.restore()
    # ... which finds out what holds now.
    report = check(second.status("interval")[0])
    assert report.enforcement == EnforcementReport(("kiosk",), {"mode": "no kiosk shell"})


def test_an_unrecorded_enforcement_is_not_claimed(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    # Recorded by an agent before 2026-12: the version and policy only.
    AgentState(tmp_path / "state").save_desired(5, {"mode": "kiosk"})
    core = make_core(tmp_path, clock, platform)
    assert check(core.status("birth")[0]).enforcement is None
    core.restore()
    assert check(core.status("interval")[0]).enforcement == EnforcementReport()


def test_the_report_stays_within_the_contract() -> None:
    enforcement = Enforcement(
        unsupported=tuple(f"key_{i:02d}" for i in range(40)) + ("Not-A-Key",),
        failed={"a": "  many\n  words  ", "b": "hetu 131052-308T"},
    )
    report = report_of(enforcement)
    assert report.unsupported == tuple(f"key_{i:02d}" for i in range(32))
    assert report.failed == {"a": "many words", "b": "failed"}


# --- commands


def test_command_is_acked_received_then_done(core: AgentCore, platform: FakePlatform) -> None:
    core.status("birth")
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-lock0001", "lock"))
    for out in outs:
        check(out)
    assert acks(outs) == [("cmd-lock0001", "received", None), ("cmd-lock0001", "done", None)]
    assert all(o.durable for o in outs)
    # Locking is a significant change: reported right away.
    (report,) = statuses(outs)
    assert (report.reason, report.locked) == ("change", True)
    assert platform.executed == ["lock"]


def test_duplicate_command_is_acked_again_but_not_rerun(
    tmp_path: Path, core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    core.handle(CMD_TOPIC, cmd_payload("cmd-lock0001", "lock"))
    again = core.handle(CMD_TOPIC, cmd_payload("cmd-lock0001", "lock"))
    assert acks(again) == [("cmd-lock0001", "done", None)]
    # Also after a restart of the agent.
    restarted = make_core(tmp_path, clock, platform)
    assert acks(restarted.handle(CMD_TOPIC, cmd_payload("cmd-lock0001", "lock"))) == [
        ("cmd-lock0001", "done", None)
    ]
    assert platform.executed == ["lock"]


def test_command_interrupted_by_a_restart_is_reported_failed(
    core: AgentCore, platform: FakePlatform
) -> None:
    core.state.record_command("cmd-wipe0001", "received")
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-wipe0001", "wipe"))
    assert acks(outs) == [("cmd-wipe0001", "failed", "interrupted")]
    assert platform.executed == []


def test_expired_command_is_acked_expired_and_not_run(
    core: AgentCore, clock: FakeClock, platform: FakePlatform
) -> None:
    clock.advance(601)
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-lock0002", "lock", expires_in_s=600))
    assert acks(outs) == [("cmd-lock0002", "expired", None)]
    assert platform.executed == []
    assert acks(core.handle(CMD_TOPIC, cmd_payload("cmd-lock0002", "lock"))) == [
        ("cmd-lock0002", "expired", None)
    ]


def test_a_release_runs_only_on_a_device_the_desired_state_releases(
    tmp_path: Path, clock: FakeClock, platform: FakePlatform
) -> None:
    """Protocol §10: leaving management for good takes the signed command and `unmanaged`."""
    signer = CommandSigner(Ed25519PrivateKey.generate())
    core = make_core(tmp_path, clock, platform, command_public_key=signer.public_key_b64)

    def release(cmd_id: str) -> bytes:
        data = json.loads(cmd_payload(cmd_id, "release"))
        expires = START + timedelta(seconds=600)  # as cmd_payload sets it
        data["kid"], data["sig"] = signer.sign(DEVICE, cmd_id, "release", {}, expires)
        return json.dumps(data).encode()

    for version, mode in enumerate(("kiosk", "locked", "lost", "restricted"), start=1):
        policy: dict[str, Any] = {"mode": mode}
        if mode in ("locked", "lost"):
            policy["message"] = "Tämä laite on lukittu."
        core.handle(DESIRED_TOPIC, desired_payload(version, policy))
        cmd_id = f"cmd-rels000{version}"
        assert acks(core.handle(CMD_TOPIC, release(cmd_id))) == [
            (cmd_id, "received", None),
            (cmd_id, "failed", commands.NOT_RELEASED),
        ]
    assert platform.executed == []
    core.handle(DESIRED_TOPIC, desired_payload(9, {"mode": "unmanaged"}))
    unsigned = cmd_payload("cmd-rels0008", "release")
    assert acks(core.handle(CMD_TOPIC, unsigned)) == [
        ("cmd-rels0008", "rejected", "unsigned release: refused")
    ]
    assert platform.executed == []
    core.handle(CMD_TOPIC, release("cmd-rels0009"))
    assert platform.executed == ["release"]


def test_a_policy_that_locks_is_what_holds_against_lock_and_unlock_commands(
    core: AgentCore, platform: FakePlatform
) -> None:
    """Protocol §9.3: an unlock never lifts the lock of a locked (or lost) policy, and a lock
    leaves that policy's screen (neutral text, support phone) as it is."""
    locked = {"mode": "locked", "message": "Tämä laite on lukittu.", "support_phone": "+358 9"}
    core.handle(DESIRED_TOPIC, desired_payload(3, locked))
    assert platform.locked
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-unlk0001", "unlock"))
    assert acks(outs) == [
        ("cmd-unlk0001", "received", None),
        ("cmd-unlk0001", "failed", commands.POLICY_LOCKED),
    ]
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-lock0003", "lock"))
    assert acks(outs)[-1] == ("cmd-lock0003", "done", "locked by the policy")
    assert platform.executed == [] and platform.locked and platform.screens == []
    # A redelivery gets the same outcome again; a lost policy holds likewise.
    again = core.handle(CMD_TOPIC, cmd_payload("cmd-unlk0001", "unlock"))
    assert acks(again) == [("cmd-unlk0001", "failed", commands.POLICY_LOCKED)]
    core.handle(DESIRED_TOPIC, desired_payload(4, {"mode": "lost", "message": "Soita:"}))
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-unlk0002", "unlock"))
    assert acks(outs)[-1] == ("cmd-unlk0002", "failed", commands.POLICY_LOCKED)
    # Under a kiosk policy both act on top of it, as before, until it is enforced again.
    core.handle(DESIRED_TOPIC, desired_payload(5, {"mode": "kiosk"}))
    core.handle(CMD_TOPIC, cmd_payload("cmd-lock0004", "lock"))
    core.handle(CMD_TOPIC, cmd_payload("cmd-unlk0003", "unlock"))
    assert platform.executed == ["lock", "unlock"]


def test_sync_publishes_a_status_now(core: AgentCore, platform: FakePlatform) -> None:
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-sync0001", "sync"))
    assert [type(o.message).__name__ for o in outs] == ["CommandAck", "StatusReport", "CommandAck"]
    assert statuses(outs)[0].reason == "sync"
    assert acks(outs)[-1] == ("cmd-sync0001", "done", None)
    assert platform.executed == []


def test_unsupported_command_fails_with_unsupported(core: AgentCore) -> None:
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-ring0001", "ring"))
    assert acks(outs)[-1] == ("cmd-ring0001", "failed", "unsupported")


@pytest.mark.allow_error_logs
def test_command_that_raises_fails_with_detail(core: AgentCore, platform: FakePlatform) -> None:
    platform.explode_on = "reboot"
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-boom0001", "reboot"))
    assert acks(outs) == [
        ("cmd-boom0001", "received", None),
        ("cmd-boom0001", "failed", "error: boom"),
    ]


def test_invalid_command_with_usable_id_is_rejected(
    core: AgentCore, platform: FakePlatform
) -> None:
    outs = core.handle(CMD_TOPIC, cmd_payload("cmd-bad00001", "selfdestruct"))
    ((cmd_id, status, detail),) = acks(outs)
    assert (cmd_id, status) == ("cmd-bad00001", "rejected")
    assert detail and detail.startswith("invalid")
    for out in outs:
        check(out)
    assert platform.executed == []


# --- nothing a broker delivers can crash the agent


NASTY_PAYLOADS = [
    b"",
    b"null",
    b"[]",
    b'"cmd"',
    b"\xff\xfe\x00",
    b"[" * 100_000,
    b"{" + b" " * 20_000 + b"}",
    json.dumps({"cmd_id": 5}).encode(),
    json.dumps({"cmd_id": "x" * 1000}).encode(),
    cmd_payload("cmd-other001", "lock", device_id="tab-999"),
    cmd_payload("cmd-badts001", "lock", expires_at="yesterday"),
    cmd_payload("cmd-badts002", "lock", expires_at="2026-01-05T09:00:00"),
    desired_payload(0, {}),
    desired_payload(2, {"k": 1}).replace(b'"policy"', b'"polizy"'),
]


@pytest.mark.parametrize("payload", NASTY_PAYLOADS)
@pytest.mark.parametrize("topic", [CMD_TOPIC, DESIRED_TOPIC])
def test_bad_payloads_never_raise(
    core: AgentCore, platform: FakePlatform, topic: str, payload: bytes
) -> None:
    outs = core.handle(topic, payload)
    for out in outs:
        assert check(out).status == "rejected"
    assert platform.executed == [] and platform.policies == []


@pytest.mark.parametrize(
    "topic",
    [
        "fleet/v1/tab-002/cmd",
        "fleet/v1/tab-001/status",
        "fleet/v1/tab-001/cmd/ack",
        "elsewhere/tab-001/cmd",
        "fleet/v1/tab-001",
        "",
    ],
)
def test_messages_on_foreign_topics_are_ignored(
    core: AgentCore, platform: FakePlatform, topic: str
) -> None:
    assert core.handle(topic, cmd_payload("cmd-lock0003", "lock")) == []
    assert platform.executed == []


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of `children` (a named function: hypothesis reads an `extend`
    lambda's source to check that it recurses, which is fragile for multi-line lambdas)."""
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=10), children, max_size=4
    )


@settings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            containers,
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    kind=st.sampled_from([Kind.CMD, Kind.DESIRED]),
)
def test_fuzzed_payloads_never_raise(tmp_path_factory: Any, payload: bytes, kind: Kind) -> None:
    platform = FakePlatform()
    core = make_core(tmp_path_factory.mktemp("fuzz"), FakeClock(), platform)
    outs = core.handle(TOPICS.topic(DEVICE, kind), payload)
    assert isinstance(outs, list)
    assert platform.executed == []


def test_ack_round_trips_through_encode(core: AgentCore) -> None:
    out = commands.ack(core, "cmd-abcdefgh", "failed", "x" * 2000)
    ack = check(out)
    assert len(ack.detail) == 500
    assert encode(ack) == out.payload
