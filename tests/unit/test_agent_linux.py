"""The Linux platform: telemetry of this machine, no enforcement."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.clock import START, FakeClock

from agent.core import AgentCore
from agent.platform.base import ENFORCED, Enforcement
from agent.platform.linux import LinuxPlatform, network_type, wifi_signal_pct
from agent.policy import LockScreen, Policy
from agent.state import AgentState
from lainaamo.protocol import (
    DesiredState,
    EnforcementReport,
    Kind,
    StatusReport,
    Topics,
    encode,
    parse,
)


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        ([], "none"),
        (["lo"], "none"),
        (["lo", "wlan0"], "wifi"),
        (["wlp2s0"], "wifi"),
        (["wwan0"], "cellular"),
        (["eth0"], "ethernet"),
        (["enp3s0", "wlan0"], "ethernet"),
        (["wlan0", "wwan0"], "wifi"),
        (["docker0", "tun0"], "unknown"),
    ],
)
def test_network_type_from_interface_names(interfaces: list[str], expected: str) -> None:
    assert network_type(interfaces) == expected


def test_wifi_signal_from_proc_net_wireless() -> None:
    text = (
        "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
        " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
        "wlan0: 0000   56.  -54.  -256        0      0      0      0     12        0\n"
    )
    assert wifi_signal_pct(text) == 80
    assert wifi_signal_pct(text.splitlines(keepends=True)[0]) is None


def test_facts_of_this_machine_are_valid() -> None:
    platform = LinuxPlatform()
    facts = platform.facts()
    assert 0 <= facts.battery_pct <= 100
    assert facts.storage_total_mb and 0 <= facts.storage_free_mb <= facts.storage_total_mb
    assert facts.os_version and len(facts.os_version) <= 64
    assert facts.network in {"wifi", "cellular", "ethernet", "none", "unknown"}
    assert facts.uptime_s > 0


def test_nothing_can_be_enforced() -> None:
    platform = LinuxPlatform()
    policy = Policy.from_dict(
        {"mode": "kiosk", "kiosk": {"apps": []}, "message": "M", "offline_lock_at": None}
    )
    unsupported = ("kiosk", "message", "mode", "offline_lock_at")
    assert platform.apply_policy(policy) == Enforcement(unsupported)
    locked = Policy.from_dict({"mode": "lost", "message": "Soita:", "support_phone": "123"})
    assert platform.apply_policy(locked) == Enforcement(("message", "mode", "support_phone"))
    assert not platform.kiosk and not platform.locked
    assert not platform.lock(LockScreen("M")) and not platform.locked
    # Released from management: there is nothing to release.
    assert platform.apply_policy(Policy.from_dict({"mode": "unmanaged"})) == ENFORCED
    for name in ("lock", "unlock", "ring", "message", "reboot", "wipe"):
        result = platform.execute(name, {})
        assert (result.ok, result.detail) == (False, "unsupported")
    assert platform.network_up()


def test_the_status_it_builds_reports_its_keys_unsupported(tmp_path: Path) -> None:
    """The server believes only what the device reports: a plain PC reports its kiosk policy
    as not enforced, so it is never shown as converged (docs/protocol.md §9.6)."""
    state = AgentState(tmp_path / "state")
    core = AgentCore(
        device_id="pc-001",
        topics=Topics(),
        platform=LinuxPlatform(),
        state=state,
        boot=state.next_boot(),
        status_interval_s=60,
        clock=FakeClock(),
    )
    core.restore()
    desired = DesiredState(
        device_id="pc-001",
        ts=START,
        boot=1,
        seq=1,
        version=3,
        policy={"mode": "kiosk", "kiosk": {"apps": []}, "usage": True, "message": None},
    )
    outs = core.handle(Topics().topic("pc-001", Kind.DESIRED), encode(desired))
    (out,) = [o for o in outs if o.message.kind is Kind.STATUS]
    report = parse(Kind.STATUS, "pc-001", out.payload)
    assert isinstance(report, StatusReport)
    assert (report.reason, report.desired_version, report.kiosk) == ("change", 3, False)
    assert report.enforcement == EnforcementReport(("kiosk", "message", "mode"))
    assert not report.enforcement.complete
    # Released: nothing to enforce, all of it done.
    unmanaged = DesiredState(**{**desired.__dict__, "version": 4, "policy": {"mode": "unmanaged"}})
    outs = core.handle(Topics().topic("pc-001", Kind.DESIRED), encode(unmanaged))
    (out,) = [o for o in outs if o.message.kind is Kind.STATUS]
    report = parse(Kind.STATUS, "pc-001", out.payload)
    assert isinstance(report, StatusReport) and report.enforcement == EnforcementReport()
