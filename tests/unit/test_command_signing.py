"""Command signatures: canonical form, sign/verify, and what the agent refuses."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.core import AgentCore
from agent.state import AgentState
from lainaamo.config import Settings
from lainaamo.errors import ConfigError
from lainaamo.protocol import Command, Kind, Topics, encode, parse
from lainaamo.signing import (
    DESTRUCTIVE,
    Rejected,
    Verifier,
    b64url,
    canonical,
    canonical_of,
    key_id,
    public_key_b64,
)
from server.adapters.signing import CommandSigner, generate_key_file, load_signer

DEVICE = "tab-001"
EXPIRES = datetime(2026, 11, 22, 18, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> CommandSigner:
    return CommandSigner(Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def verifier(signer: CommandSigner) -> Verifier:
    return Verifier.from_setting(signer.public_key_b64)


def command(signer: CommandSigner | None, **changes: object) -> Command:
    cmd = Command(
        device_id=DEVICE,
        ts=EXPIRES - timedelta(minutes=10),
        boot=1,
        seq=1,
        cmd_id="cmd-00000001",
        name="wipe",
        args={},
        expires_at=EXPIRES,
    )
    if signer is not None:
        kid, sig = signer.sign(cmd.device_id, cmd.cmd_id, cmd.name, cmd.args, cmd.expires_at)
        cmd = dataclasses.replace(cmd, kid=kid, sig=sig)
    return dataclasses.replace(cmd, **changes)  # type: ignore[arg-type]


def test_canonical_form_is_sorted_compact_utf8() -> None:
    data = canonical(DEVICE, "cmd-00000001", "message", {"text": "Hei ä", "a": 1}, EXPIRES)
    assert (
        data
        == (
            '{"args":{"a":1,"text":"Hei ä"},"cmd_id":"cmd-00000001",'
            '"device_id":"tab-001","expires_at":"2026-11-22T18:00:00.123Z",'
            '"name":"message","purpose":"lainaamo-cmd-v1"}'
        ).encode()
    )
    # The same instant in another zone is the same command.
    helsinki = EXPIRES.astimezone(datetime.now().astimezone().tzinfo)
    assert canonical(DEVICE, "cmd-00000001", "message", {"a": 1, "text": "Hei ä"}, helsinki) == data


def test_round_trip_over_the_wire(signer: CommandSigner, verifier: Verifier) -> None:
    sent = command(signer)
    received = parse(Kind.CMD, DEVICE, encode(sent))
    assert isinstance(received, Command)
    assert received.sig == sent.sig and received.kid == signer.kid
    assert canonical_of(received) == canonical_of(sent)
    verifier.check(received)  # does not raise


@pytest.mark.parametrize(
    "tamper",
    [
        {"device_id": "tab-002"},
        {"cmd_id": "cmd-00000002"},
        {"name": "lock"},
        {"args": {"text": "x"}},
        {"expires_at": EXPIRES + timedelta(days=1)},
        {"expires_at": EXPIRES + timedelta(milliseconds=1)},
    ],
)
def test_tampered_commands_are_rejected(
    signer: CommandSigner, verifier: Verifier, tamper: dict[str, object]
) -> None:
    with pytest.raises(Rejected, match="bad signature"):
        verifier.check(command(signer, **tamper))


def test_wrong_key_and_unknown_kid_rejected(signer: CommandSigner, verifier: Verifier) -> None:
    other = CommandSigner(Ed25519PrivateKey.generate())
    forged = command(other)
    with pytest.raises(Rejected, match="unknown key"):
        verifier.check(forged)
    # Claiming the right kid does not help a wrong key.
    with pytest.raises(Rejected, match="bad signature"):
        verifier.check(dataclasses.replace(forged, kid=signer.kid))
    with pytest.raises(Rejected, match="bad signature"):
        verifier.check(dataclasses.replace(command(signer), sig="A" * 86))


def test_unsigned_destructive_refused_others_allowed(verifier: Verifier) -> None:
    assert DESTRUCTIVE == {"wipe", "release"}  # what cannot be undone: data, management
    for name in sorted(DESTRUCTIVE):
        with pytest.raises(Rejected, match=f"unsigned {name}"):
            verifier.check(command(None, name=name))
        with pytest.raises(Rejected, match=f"unsigned {name}"):
            Verifier.from_setting("").check(command(None, name=name))
    verifier.check(command(None, name="ring"))


def test_agent_without_key_refuses_wipes(signer: CommandSigner) -> None:
    nobody = Verifier.from_setting("")
    with pytest.raises(Rejected, match="no server public key"):
        nobody.check(command(signer))
    with pytest.raises(Rejected, match="unsigned"):
        nobody.check(command(None))
    nobody.check(command(signer, name="ring"))  # cannot verify, but a ring needs no signature


def test_several_keys_during_rotation(signer: CommandSigner) -> None:
    new = CommandSigner(Ed25519PrivateKey.generate())
    both = Verifier.from_setting(f"{signer.public_key_b64}, {new.public_key_b64}")
    both.check(command(signer))
    both.check(command(new))


def test_bad_public_key_setting() -> None:
    with pytest.raises(ConfigError):
        Verifier.from_setting("not base64!")
    with pytest.raises(ConfigError):
        Verifier.from_setting("AAAA")  # 3 bytes: not a key


def test_key_file(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    made = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="exists"):
        generate_key_file(path)
    loaded = load_signer(Settings().replace(command_signing_key_file=str(path)))
    assert loaded is not None and loaded.public_key_b64 == made.public_key_b64
    assert load_signer(Settings()) is None
    (tmp_path / "bad.pem").write_text("nonsense")
    with pytest.raises(ConfigError, match="cannot read"):
        load_signer(Settings().replace(command_signing_key_file=str(tmp_path / "bad.pem")))
    with pytest.raises(ConfigError, match="cannot read"):
        load_signer(Settings().replace(command_signing_key_file=str(tmp_path / "none.pem")))


def test_readable_key_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "k.pem"
    generate_key_file(path)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING):
        load_signer(Settings().replace(command_signing_key_file=str(path)))
    assert "readable by others" in caplog.text


class _Clock:
    def now(self) -> datetime:
        return EXPIRES - timedelta(minutes=5)

    def monotonic(self) -> float:
        return 0.0


class _Platform:
    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute(self, name: str, args: dict[str, object]) -> object:
        self.executed.append(name)
        return type("Result", (), {"ok": True, "detail": None})()

    def facts(self) -> None:
        return None


def _core(tmp_path: Path, public_key: str) -> tuple[AgentCore, _Platform]:
    platform = _Platform()
    state = AgentState(tmp_path / "state")
    core = AgentCore(
        device_id=DEVICE,
        topics=Topics("fleet/v1"),
        platform=platform,  # type: ignore[arg-type]
        state=state,
        boot=state.next_boot(),
        status_interval_s=60,
        clock=_Clock(),  # type: ignore[arg-type]
        command_public_key=public_key,
    )
    return core, platform


def _acks(outs: list[object]) -> list[tuple[str, str | None]]:
    found = []
    for out in outs:
        data = json.loads(out.payload)  # type: ignore[attr-defined]
        if "status" in data and "cmd_id" in data:
            found.append((data["status"], data.get("detail")))
    return found


def test_agent_rejects_forged_wipe_and_runs_genuine(
    tmp_path: Path, signer: CommandSigner, caplog: pytest.LogCaptureFixture
) -> None:
    core, platform = _core(tmp_path, signer.public_key_b64)
    topic = Topics("fleet/v1").topic(DEVICE, Kind.CMD)
    forged = command(CommandSigner(Ed25519PrivateKey.generate()))
    with caplog.at_level(logging.WARNING):
        outs = core.handle(topic, encode(forged))
    assert _acks(outs) == [("rejected", f"signed by an unknown key {forged.kid!r}")]
    assert platform.executed == []
    assert any(r.levelno == logging.WARNING and "rejected" in r.message for r in caplog.records)
    outs = core.handle(topic, encode(command(None)))
    assert _acks(outs) == [("rejected", "unsigned wipe: refused")]
    assert platform.executed == []
    # The forgeries were not remembered: the genuine command with the same id still runs.
    outs = core.handle(topic, encode(command(signer)))
    assert [s for s, _ in _acks(outs)] == ["received", "done"]
    assert platform.executed == ["wipe"]


def test_keys_generate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lainaamo.cli import main

    path = tmp_path / "server" / "signing.pem"
    assert main(["keys", "generate", "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    public = printed.rsplit(": ", 1)[1].strip()
    loaded = load_signer(Settings().replace(command_signing_key_file=str(path)))
    assert loaded is not None and loaded.public_key_b64 == public
    assert Verifier.from_setting(public).keys.keys() == {loaded.kid}
    assert path.stat().st_mode & 0o777 == 0o600
    assert main(["keys", "generate", "--out", str(path)]) != 0  # never overwrites


def test_public_key_for_the_enrollment(tmp_path: Path) -> None:
    from server.adapters.signing import public_key_of

    made = generate_key_file(tmp_path / "k.pem")
    settings = Settings().replace(command_signing_key_file=str(tmp_path / "k.pem"))
    assert public_key_of(settings) == made.public_key_b64
    assert public_key_of(Settings()) is None


def test_the_test_vector_in_the_protocol_document_holds() -> None:
    """docs/protocol.md §10.1 gives the exact bytes signed and the signature for a fixed key,
    so that a native agent can check its own implementation: they must be what this code
    signs and verifies."""
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("- **Test vector**") :]
    section = section[: section.index("\n- **The server**")]
    signed = re.search(r"```text\n\s*(\{.*\})\n", section)
    public = re.search(r"public\s+key `([^`]+)`", section)
    kid = re.search(r"key\s+id `([^`]+)`", section)
    sig = re.search(r"`sig` is\s+`([^`]+)`", section)
    assert signed and public and kid and sig, section
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expected = canonical(
        "tab-001", "01JDQ3M7Z9K4T2", "wipe", {}, datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    )
    assert signed.group(1).encode() == expected
    assert public.group(1) == public_key_b64(raw)
    assert kid.group(1) == key_id(raw)
    assert sig.group(1) == b64url(key.sign(expected))  # Ed25519 signatures are deterministic
    Verifier.from_setting(public.group(1))  # and the key reads as a setting
