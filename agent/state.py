"""What the agent keeps across restarts, as small files in its state directory.

- `boot`           the boot counter, incremented once per agent process start
- `desired.json`   the version and policy of the last desired state applied, and what of it
                   the platform enforced (its unsupported and failed keys)
- `commands.json`  the most recent command ids seen, with their final ack
- `contact.json`   when the agent last had a server connection, and whether it has locked
                   the device itself for want of one (the offline self-lock)
- `usage.json`     the usage totals of the days whose final report is not yet in the outbox
                   (only totals per day; see agent/usage.py); absent when there are none

Every file is replaced atomically (write a temporary file, fsync, rename), so a crash or
power cut leaves either the old or the new content, never a torn file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lainaamo.errors import ConfigError

log = logging.getLogger(__name__)

SEEN_COMMANDS_MAX = 1000


@dataclass(frozen=True)
class AppliedDesired:
    """The desired state the device applied last (version 0: none yet).

    `enforcement`: what the platform enforced of it, as agent/enforcer.py writes it (None: not
    recorded, as by an agent before 2026-12; the next enforcement of the policy records it).
    """

    version: int = 0
    policy: dict[str, Any] = field(default_factory=dict)
    enforcement: dict[str, Any] | None = None


@dataclass(frozen=True)
class SeenCommand:
    """A command id the agent has handled; `status` is its last ack ('received' if unfinished)."""

    cmd_id: str
    status: str
    detail: str | None = None

    @property
    def finished(self) -> bool:
        return self.status != "received"


@dataclass(frozen=True)
class Contact:
    """When the agent last had a server connection (None: not known); whether it locked since."""

    last_at: datetime | None = None
    self_locked: bool = False


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never half.

    `durable` also survives a power cut (fsync before the rename); without it, only a crash of
    the process — enough for simulated tablets, thousands of which share one disk.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AgentState:
    """The persistent state of one agent, kept in `directory`."""

    def __init__(
        self, directory: str | Path, seen_max: int = SEEN_COMMANDS_MAX, durable: bool = True
    ) -> None:
        self.directory = Path(directory)
        self._durable = durable
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seen_max = seen_max
        self._desired = self._load_desired()
        self._seen = self._load_seen()
        self._contact = self._load_contact()
        self._usage = self._load_usage()

    # --- boot counter

    def next_boot(self) -> int:
        """Increment and persist the boot counter; the first start of an agent gets 1."""
        path = self.directory / "boot"
        try:
            current = int(path.read_text().strip())
        except FileNotFoundError:
            current = 0
        except ValueError:
            # A torn write cannot happen (atomic replace), so this is tampering or disk rot.
            # Restarting from 0 would make every later message look old to the server.
            raise ConfigError(f"boot counter file {path} is corrupt; fix or remove it") from None
        boot = current + 1
        write_atomically(path, f"{boot}\n".encode(), durable=self._durable)
        return boot

    # --- desired state

    @property
    def desired(self) -> AppliedDesired:
        return self._desired

    def save_desired(
        self, version: int, policy: dict[str, Any], enforcement: dict[str, Any] | None = None
    ) -> None:
        """Record that desired state `version` has been applied, and what of it is enforced."""
        record = {"version": version, "policy": policy}
        if enforcement is not None:
            record["enforcement"] = enforcement
        data = json.dumps(record, sort_keys=True).encode()
        write_atomically(self.directory / "desired.json", data, durable=self._durable)
        enforced = None if enforcement is None else json.loads(json.dumps(enforcement))
        self._desired = AppliedDesired(version, dict(policy), enforced)

    def save_enforcement(self, enforcement: dict[str, Any]) -> None:
        """Record what is enforced of the applied policy now (skipped if unchanged)."""
        desired = self._desired
        if desired.version == 0 or enforcement == desired.enforcement:
            return
        self.save_desired(desired.version, desired.policy, enforcement)

    def forget_desired(self) -> None:
        """Forget the applied desired state, so that the next one received is applied."""
        (self.directory / "desired.json").unlink(missing_ok=True)
        self._desired = AppliedDesired()

    def _load_desired(self) -> AppliedDesired:
        path = self.directory / "desired.json"
        try:
            data = json.loads(path.read_bytes())
            enforcement = data.get("enforcement")
            return AppliedDesired(
                int(data["version"]),
                dict(data["policy"]),
                dict(enforcement) if isinstance(enforcement, dict) else None,
            )
        except FileNotFoundError:
            return AppliedDesired()
        except (ValueError, KeyError, TypeError) as exc:
            # Forgetting the version only makes the agent re-apply the retained desired state.
            log.warning("ignoring unreadable %s: %s", path, exc)
            return AppliedDesired()

    # --- seen command ids

    def seen(self, cmd_id: str) -> SeenCommand | None:
        """The record of a command id handled before, if it is still remembered."""
        return self._seen.get(cmd_id)

    def record_command(self, cmd_id: str, status: str, detail: str | None = None) -> None:
        """Remember the latest ack of a command, keeping only the most recent ids."""
        self._seen.pop(cmd_id, None)
        self._seen[cmd_id] = SeenCommand(cmd_id, status, detail)
        while len(self._seen) > self._seen_max:
            self._seen.popitem(last=False)
        rows = [[s.cmd_id, s.status, s.detail] for s in self._seen.values()]
        write_atomically(
            self.directory / "commands.json", json.dumps(rows).encode(), durable=self._durable
        )

    def _load_seen(self) -> OrderedDict[str, SeenCommand]:
        path = self.directory / "commands.json"
        seen: OrderedDict[str, SeenCommand] = OrderedDict()
        try:
            for cmd_id, status, detail in json.loads(path.read_bytes()):
                seen[str(cmd_id)] = SeenCommand(str(cmd_id), str(status), detail)
        except FileNotFoundError:
            pass
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
        return seen

    # --- server contact and the offline self-lock

    @property
    def contact(self) -> Contact:
        return self._contact

    def save_contact(self, contact: Contact) -> None:
        """Record the last server contact and the self-lock (skipped if nothing changed)."""
        if contact == self._contact:
            return
        last_at = None if contact.last_at is None else contact.last_at.isoformat()
        data = json.dumps({"last_at": last_at, "self_locked": contact.self_locked}).encode()
        write_atomically(self.directory / "contact.json", data, durable=self._durable)
        self._contact = contact

    def _load_contact(self) -> Contact:
        path = self.directory / "contact.json"
        try:
            data = json.loads(path.read_bytes())
            last_at = None if data["last_at"] is None else datetime.fromisoformat(data["last_at"])
            if last_at is not None and last_at.tzinfo is None:
                raise ValueError("last_at has no time zone")
            return Contact(last_at, bool(data["self_locked"]))
        except FileNotFoundError:
            return Contact()
        except (ValueError, KeyError, TypeError) as exc:
            # Without the record, a device offline past its offline_lock_at locks itself (again):
            # the safe side.
            log.warning("ignoring unreadable %s: %s", path, exc)
            return Contact()

    # --- usage totals (agent/usage.py reads and checks the content)

    @property
    def usage(self) -> dict[str, Any]:
        """The usage totals recorded last, as saved (empty when there are none)."""
        return self._usage

    def save_usage(self, data: dict[str, Any]) -> None:
        """Record the usage totals (skipped if unchanged; the file is removed when empty)."""
        if data == self._usage:
            return
        path = self.directory / "usage.json"
        if data:
            write_atomically(path, json.dumps(data, sort_keys=True).encode(), durable=self._durable)
        else:
            path.unlink(missing_ok=True)
        self._usage = json.loads(json.dumps(data))  # a copy the caller cannot change

    def _load_usage(self) -> dict[str, Any]:
        path = self.directory / "usage.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return {}
        if not isinstance(data, dict):
            log.warning("ignoring unreadable %s: not an object", path)
            return {}
        return data
