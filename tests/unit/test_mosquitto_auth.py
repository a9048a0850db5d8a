"""Mosquitto's password and ACL files as the server renders them, checked against the tools."""

from __future__ import annotations

import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from server.adapters import mosquitto_auth as ma


def test_hash_has_mosquitto_passwd_format_and_verifies() -> None:
    encoded = ma.hash_password("s3cret", salt=b"\x00" * 12)
    kind, iterations, salt, digest = encoded.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "AAAAAAAAAAAAAAAA")
    assert len(digest) == 88  # base64 of 64 bytes (SHA-512)
    assert ma.verify_password("s3cret", encoded)
    assert not ma.verify_password("s3cret!", encoded)
    assert ma.hash_password("s3cret") != ma.hash_password("s3cret")  # random salt
    for broken in ("", "$6$x$y", "$7$abc$AA==$AA==", "$7$101$!!$AA=="):
        assert not ma.verify_password("s3cret", broken)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto_passwd")
def test_hashes_of_the_real_mosquitto_passwd_verify(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "tab-001", "pa:ss wörd"], check=True)
    user, encoded = path.read_text().strip().split(":", 1)
    assert user == "tab-001" and encoded.startswith("$7$101$")
    assert ma.verify_password("pa:ss wörd", encoded)
    assert not ma.verify_password("pass word", encoded)


def test_password_file_is_sorted_and_refuses_unsafe_names() -> None:
    text = ma.render_password_file([("tab-2", "$7$b"), ("tab-1", "$7$a")])
    assert text == "tab-1:$7$a\ntab-2:$7$b\n"
    assert ma.render_password_file([]) == ""
    for name in ("a:b", "a\nb", "", " a"):
        with pytest.raises(ValueError):
            ma.render_password_file([(name, "$7$x")])
    with pytest.raises(ValueError, match="twice"):
        ma.render_password_file([("tab-1", "$7$a"), ("tab-1", "$7$b")])


def test_acl_gives_devices_only_their_own_topics() -> None:
    acl = ma.render_acl("fleet/v1/", "lainaamo-server")
    lines = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "user lainaamo-server",
        "topic readwrite fleet/v1/#",
        "topic read $SYS/broker/publish/messages/dropped",
        "topic read $SYS/broker/store/messages/count",
        "pattern write fleet/v1/%u/presence",
        "pattern write fleet/v1/%u/status",
        "pattern write fleet/v1/%u/cmd/ack",
        "pattern write fleet/v1/%u/session/evt",
        "pattern write fleet/v1/%u/usage",
        "pattern read fleet/v1/%u/desired",
        "pattern read fleet/v1/%u/cmd",
        "pattern read fleet/v1/%u/session",
        "pattern read fleet/v1/%u/receipt",
    ]
    assert "\nuser " not in ma.render_acl("fleet/v1", "")  # no server identity: patterns only


def test_write_atomic_replaces_with_owner_group_mode(tmp_path: Path) -> None:
    target = tmp_path / "auth" / "passwd"
    ma.write_atomic(target, "one\n")
    ma.write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["passwd"]  # no temporary left


def test_reload_signals_the_pid_in_the_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    assert not ma.reload_broker(pid_file)  # no file
    pid_file.write_text("garbage")
    assert not ma.reload_broker(pid_file)
    # SIGHUP's default action in the child even where this process ignores it (as under
    # `nohup`: an ignored signal stays ignored across exec, and sleep would live on).
    child = subprocess.Popen(
        ["sleep", "30"], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL)
    )
    try:
        # Only once the child is `sleep` (the default action set before that).
        sleep = Path(shutil.which("sleep") or "/bin/sleep").resolve()
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child.pid}/exe").resolve() != sleep:
            assert time.monotonic() < deadline, "the child never became sleep"
            time.sleep(0.01)
        pid_file.write_text(f"{child.pid}\n")
        assert ma.reload_broker(pid_file)
        assert child.wait(5) == -signal.SIGHUP  # sleep dies of the SIGHUP it did not expect
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not ma.reload_broker(pid_file)  # the process is gone


def test_the_acl_in_the_protocol_document_is_the_one_the_server_writes() -> None:
    """docs/protocol.md §2.0 shows the ACL; a broker configured from it must behave as the
    server's own (a copy once left out `usage`, and its brokers refused usage reports)."""
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("### 2.0 Broker authentication and ACL") :]
    block = section[section.index("```\n") + 4 : section.index("```", section.index("```\n") + 4)]
    shown = [line.strip() for line in block.splitlines() if line.strip()]
    written = [
        line
        for line in ma.render_acl("fleet/v1", "lainaamo-server").splitlines()
        if line and not line.startswith("#")
    ]
    assert shown == written
