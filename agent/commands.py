"""Commands: run each cmd_id at most once, refuse expired and badly signed ones, ack every step.

Acks go through the outbox like status reports. A command id seen before (the broker
redelivers a QoS 1 message whose PUBACK was lost) gets its final ack again without running.

While the desired policy locks the device (locked, lost), the policy is what holds: a `lock`
command leaves its lock screen as it is (done), and an `unlock` is not run (failed, detail
POLICY_LOCKED) — docs/protocol.md §9.3. A `release` runs only under an `unmanaged` policy
(else failed, detail NOT_RELEASED) — §10.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

from lainaamo.errors import ProtocolError
from lainaamo.protocol import Command, CommandAck
from lainaamo.signing import Rejected

if TYPE_CHECKING:
    from agent.core import AgentCore, Outgoing

log = logging.getLogger(__name__)

_CMD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_DETAIL_MAX = 500  # the schema's limit
POLICY_LOCKED = "policy_locked"  # the unlock's detail while the desired policy locks the device
NOT_RELEASED = "not_released"  # a release's detail unless the desired policy is `unmanaged`


def run(core: AgentCore, cmd: Command) -> list[Outgoing]:
    """Handle a valid command: re-ack a duplicate, expire a late one, else run and ack it."""
    seen = core.state.seen(cmd.cmd_id)
    if seen is not None:
        log.info("%s: command %s seen before, re-acking", core.device_id, cmd.cmd_id)
        if seen.finished:
            return [ack(core, cmd.cmd_id, seen.status, seen.detail, record=False)]
        # Received but never finished: the agent stopped while running it. Running it again
        # could do it twice (a wipe!), so it is reported as failed instead.
        return [ack(core, cmd.cmd_id, "failed", "interrupted")]
    try:
        core.verifier.check(cmd)
    except Rejected as exc:
        # Possibly forged (a broker ACL mistake, an attacker): never run. Not remembered, so
        # a forgery cannot pre-empt the genuine command with the same id.
        log.warning("%s: command %s (%s) rejected: %s", core.device_id, cmd.cmd_id, cmd.name, exc)
        return [ack(core, cmd.cmd_id, "rejected", str(exc), record=False)]
    if cmd.expires_at <= core.clock.now():
        return [ack(core, cmd.cmd_id, "expired")]
    out = [ack(core, cmd.cmd_id, "received")]
    held = _held_by_policy(core, cmd.name)
    if held is not None:
        status, detail = held
        out.append(ack(core, cmd.cmd_id, status, detail))
        log.info("%s: command %s (%s): %s, %s", core.device_id, cmd.cmd_id, cmd.name, *held)
        return out
    if cmd.name == "sync":
        out += core.status("sync")
        out.append(ack(core, cmd.cmd_id, "done"))
        log.info("%s: command %s (%s): %s", core.device_id, cmd.cmd_id, cmd.name, "done")
        return out
    try:
        result = core.platform.execute(cmd.name, cmd.args)
    except Exception as exc:
        log.exception("%s: command %s (%s) raised", core.device_id, cmd.cmd_id, cmd.name)
        out.append(ack(core, cmd.cmd_id, "failed", f"error: {exc}"))
    else:
        status = "done" if result.ok else "failed"
        out.append(ack(core, cmd.cmd_id, status, result.detail))
        log.info("%s: command %s (%s): %s", core.device_id, cmd.cmd_id, cmd.name, status)
    return out + core.changes_now()


def _held_by_policy(core: AgentCore, name: str) -> tuple[str, str] | None:
    """The outcome of a command that the applied policy decides instead (else None): a lock
    or unlock under a locking policy, and a release unless the device is released."""
    policy = core.enforcer.policy
    if name == "release":
        # Leaving management for good takes both the signed command and the desired state.
        return (
            None if policy is not None and policy.mode == "unmanaged" else ("failed", NOT_RELEASED)
        )
    if name not in ("lock", "unlock") or policy is None or policy.lock_screen is None:
        return None
    if name == "unlock":
        return "failed", POLICY_LOCKED
    # Locked already by the policy's own screen (neutral text, support phone): keep it.
    return ("done", "locked by the policy") if core.platform.locked else None


def reject(core: AgentCore, payload: bytes, error: ProtocolError) -> list[Outgoing]:
    """Ack 'rejected' a command that breaks the schema but carries a usable cmd_id."""
    cmd_id = extract_cmd_id(payload) if error.reason != "oversized" else None
    if cmd_id is None:
        return []
    seen = core.state.seen(cmd_id)
    if seen is not None and seen.finished:
        return [ack(core, cmd_id, seen.status, seen.detail, record=False)]
    return [ack(core, cmd_id, "rejected", str(error))]


def ack(
    core: AgentCore, cmd_id: str, status: str, detail: str | None = None, *, record: bool = True
) -> Outgoing:
    """An ack of a command, remembered as the command's latest state (if `record`)."""
    detail = None if detail is None else detail[:_DETAIL_MAX]
    if record:
        core.state.record_command(cmd_id, status, detail)
    message = CommandAck(**core.envelope(), cmd_id=cmd_id, status=status, detail=detail)
    return core.outgoing(message)


def extract_cmd_id(payload: bytes) -> str | None:
    """The cmd_id of a payload that failed validation, if it has a well-formed one."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    cmd_id = data.get("cmd_id") if isinstance(data, dict) else None
    return cmd_id if isinstance(cmd_id, str) and _CMD_ID_RE.match(cmd_id) else None
