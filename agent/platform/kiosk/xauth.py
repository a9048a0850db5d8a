"""Who may connect to the kiosk's X display: the agent, its overlay and the client's browser.

Without authorisation any local process of any account could connect to the display, read the
screen and type into the session. The agent starts the X server with `-auth` and a fresh
MIT-MAGIC-COOKIE-1 each time (written with `xauth`, in a directory only root can read); the
agent and its overlay use that file, and the browser a copy owned by the client account, made
again at every start of the browser (a wipe makes the account anew).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

AUTH_DIR = "/run/lainaamo-kiosk"


class XAuthority:
    """The cookie files of one display (`:N`) under `directory`."""

    def __init__(self, directory: str | Path, display: str) -> None:
        self.directory = Path(directory)
        self.display = display
        number = display.lstrip(":").split(".", 1)[0]
        self.server_file = self.directory / f"display-{number}"
        self.client_file = self.directory / f"client-{number}"

    def renew(self) -> Path:
        """A new cookie for the next start of the X server; the file to give it with -auth."""
        xauth = shutil.which("xauth")
        if xauth is None:
            raise OSError("xauth is not installed (Debian: xauth)")
        self.directory.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o711)  # the client reaches its own file, lists nothing
        for path in (self.server_file, self.client_file):
            path.unlink(missing_ok=True)
        fd = os.open(self.server_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        cookie = secrets.token_hex(16)
        done = subprocess.run(
            [xauth, "-q", "-f", str(self.server_file), "add", self.display, ".", cookie],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise OSError(f"xauth: {(done.stderr or done.stdout).strip()[-200:]}")
        return self.server_file

    def for_account(self, uid: int, gid: int) -> Path:
        """A copy of the cookie that only the account `uid` can read."""
        temporary = self.client_file.with_name(f".{self.client_file.name}.tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, self.server_file.read_bytes())
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.replace(temporary, self.client_file)
        return self.client_file

    def remove(self) -> None:
        for path in (self.server_file, self.client_file):
            path.unlink(missing_ok=True)
