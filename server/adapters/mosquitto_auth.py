"""Mosquitto's own authentication files: a `password_file` and an `acl_file`, and a reload.

No broker plugin: the server renders the two files Mosquitto 2 reads itself, writes them
atomically (a reader never sees half a file) and sends the broker SIGHUP, on which Mosquitto 2
re-reads both.

- Passwords are stored in Mosquitto's `$7$` format: PBKDF2-HMAC-SHA512, 101 iterations, a
  12-byte random salt, `username:$7$101$<salt base64>$<hash base64>`, exactly what
  `mosquitto_passwd` writes (tests check it against the real tool and broker).
- The ACL gives each device (user name = device id) its own topics through `pattern` lines
  with `%u`, and the server's identity the whole prefix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path

ITERATIONS = 101  # what mosquitto_passwd uses in Mosquitto 2.0
SALT_BYTES = 12
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
FILE_MODE = 0o640

# Topics under `{prefix}/{device id}/` a device may publish to, and read.
DEVICE_WRITES = ("presence", "status", "cmd/ack", "session/evt", "usage")
DEVICE_READS = ("desired", "cmd", "session", "receipt")


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """`$7$101$salt$hash`: the password hash `mosquitto_passwd` writes (PBKDF2-SHA512)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a `$7$` hash (as Mosquitto would decide)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def _check_username(username: str) -> str:
    if not username or any(c in username for c in ":\n\r\0") or username != username.strip():
        raise ValueError(f"user name {username!r} cannot be put in a Mosquitto password file")
    return username


def render_password_file(entries: Iterable[tuple[str, str]]) -> str:
    """`username:hash` lines, sorted by user name; a user listed twice is an error."""
    seen: dict[str, str] = {}
    for username, encoded in entries:
        if _check_username(username) in seen:
            raise ValueError(f"user {username!r} is listed twice")
        seen[username] = encoded
    lines = [f"{name}:{seen[name]}" for name in sorted(seen)]
    return "".join(line + "\n" for line in lines)


SERVER_SYS_READS = ("$SYS/broker/publish/messages/dropped", "$SYS/broker/store/messages/count")


def render_acl(prefix: str, server_username: str) -> str:
    """The ACL: the server reads and writes `{prefix}/#` (and reads two of the broker's `$SYS`
    counts), a device only its own topics.

    Mosquitto applies `pattern` lines to every authenticated user, with `%u` replaced by the
    user name; a device's user name is its device id, which cannot contain `/`, `+` or `#`
    (the id rule), so a device cannot widen a pattern with its name."""
    prefix = prefix.strip("/")
    lines = [
        "# Written by the Lainaamo server (server/adapters/mosquitto_auth.py); do not edit:",
        "# it is rewritten whenever device credentials change.",
        "",
    ]
    if server_username:
        lines += [f"user {_check_username(server_username)}", f"topic readwrite {prefix}/#"]
        # The ingest's broker watch (server/entrypoints/broker_watch.py) reads these counts.
        lines += [f"topic read {topic}" for topic in SERVER_SYS_READS] + [""]
    lines.append("# Every device, by its user name (= device id):")
    lines += [f"pattern write {prefix}/%u/{leaf}" for leaf in DEVICE_WRITES]
    lines += [f"pattern read {prefix}/%u/{leaf}" for leaf in DEVICE_READS]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, mode: int = FILE_MODE) -> None:
    """Replace `path` with `text` in one rename, so the broker never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def reload_broker(pid_file: str | Path) -> bool:
    """Send SIGHUP to the broker whose pid is in `pid_file`; False if there is none running."""
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return False
    if pid <= 1:
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except (ProcessLookupError, PermissionError):
        return False
    return True
