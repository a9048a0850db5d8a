"""The agent's persistent state: boot counter, applied desired state, seen command ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.state import AgentState, Contact, write_atomically
from lainaamo.errors import ConfigError


def test_boot_starts_at_one_and_increments_across_restarts(tmp_path: Path) -> None:
    assert AgentState(tmp_path).next_boot() == 1
    assert AgentState(tmp_path).next_boot() == 2
    state = AgentState(tmp_path)
    assert state.next_boot() == 3
    assert (tmp_path / "boot").read_text().strip() == "3"


def test_corrupt_boot_counter_is_refused_rather_than_reset(tmp_path: Path) -> None:
    (tmp_path / "boot").write_text("seven\n")
    with pytest.raises(ConfigError, match="corrupt"):
        AgentState(tmp_path).next_boot()


def test_state_directory_is_created(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    AgentState(directory).next_boot()
    assert (directory / "boot").exists()


def test_desired_state_survives_a_restart(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.desired.version == 0
    assert state.desired.policy == {}
    state.save_desired(4, {"kiosk": True, "screen_timeout_s": 60})
    again = AgentState(tmp_path)
    assert again.desired.version == 4
    assert again.desired.policy == {"kiosk": True, "screen_timeout_s": 60}


def test_unreadable_desired_state_means_none_applied(tmp_path: Path) -> None:
    (tmp_path / "desired.json").write_text('{"version": ')
    assert AgentState(tmp_path).desired.version == 0


def test_forgotten_desired_state_stays_forgotten(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    state.save_desired(4, {"mode": "kiosk"})
    state.forget_desired()
    assert state.desired.version == 0
    assert AgentState(tmp_path).desired.version == 0


def test_contact_and_self_lock_survive_a_restart(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.contact == Contact(None, self_locked=False)
    moment = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    state.save_contact(Contact(moment, self_locked=True))
    again = AgentState(tmp_path).contact
    assert again == Contact(moment, self_locked=True)
    assert again.last_at is not None and again.last_at.tzinfo is not None


@pytest.mark.parametrize(
    "text", ['{"last_at": ', '{"last_at": "2026-01-05T09:30:00", "self_locked": true}', "[]"]
)
def test_unreadable_contact_means_none_known(tmp_path: Path, text: str) -> None:
    (tmp_path / "contact.json").write_text(text)
    assert AgentState(tmp_path).contact == Contact()


def test_seen_commands_survive_a_restart(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.seen("cmd-00000001") is None
    state.record_command("cmd-00000001", "received")
    assert state.seen("cmd-00000001") is not None
    assert not state.seen("cmd-00000001").finished  # type: ignore[union-attr]
    state.record_command("cmd-00000001", "failed", "unsupported")
    seen = AgentState(tmp_path).seen("cmd-00000001")
    assert seen is not None
    assert (seen.status, seen.detail, seen.finished) == ("failed", "unsupported", True)


def test_seen_commands_keep_only_the_most_recent(tmp_path: Path) -> None:
    state = AgentState(tmp_path, seen_max=3)
    for i in range(5):
        state.record_command(f"cmd-0000000{i}", "done")
    # Updating an old id makes it recent again.
    state.record_command("cmd-00000002", "done")
    state.record_command("cmd-00000005", "done")
    again = AgentState(tmp_path, seen_max=3)
    remembered = [f"cmd-0000000{i}" for i in range(6) if again.seen(f"cmd-0000000{i}")]
    assert remembered == ["cmd-00000002", "cmd-00000004", "cmd-00000005"]


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "file"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
