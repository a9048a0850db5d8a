"""The agent's logic without I/O: builds outgoing messages and handles incoming ones.

`AgentCore` knows nothing of sockets or paho. The link asks it for the will, the birth and
the subscriptions when it connects, tells it when the connection is up or gone
(`on_connected`, `on_disconnected`), hands it every received message (`handle`) and calls
`tick` when `next_deadline` comes; `handle` and `tick` return the messages to publish. Time
comes from an injected clock, so the tests drive it by hand. The policy and the offline
self-lock live in `agent.enforcer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agent import commands
from agent.clock import Clock, SystemClock
from agent.enforcer import Applied, Enforcer
from agent.platform.base import DeviceFacts, Platform
from agent.state import AgentState
from agent.support.host import SupportHost
from lainaamo import __version__
from lainaamo.errors import ProtocolError
from lainaamo.protocol import (
    Command,
    DesiredState,
    Kind,
    Message,
    Presence,
    SessionEvent,
    SessionSignal,
    StatusReport,
    Topics,
    encode,
    parse,
)
from lainaamo.signing import Verifier

log = logging.getLogger(__name__)

CHANGE_MIN_INTERVAL_S = 2.0  # at most one "change" status per this many seconds
CHECK_INTERVAL_S = 1.0  # how often the platform is read to notice significant changes
_INCOMING = (Kind.DESIRED, Kind.CMD, Kind.SESSION)


@dataclass(frozen=True)
class Outgoing:
    """A message to publish; `durable` ones go through the outbox, the others straight to MQTT."""

    message: Message = field(repr=False)
    topic: str
    payload: bytes = field(repr=False)
    retain: bool = False
    durable: bool = True
    qos: int = 1


def _key(facts: DeviceFacts, locked: bool, kiosk: bool, desired_version: int) -> tuple[Any, ...]:
    """What counts as a significant change: any difference here is reported at once."""
    return (facts.charging, facts.network, locked, kiosk, facts.battery_pct // 5, desired_version)


class AgentCore:
    """One device's agent logic: sequence numbers, status timing, desired state, commands."""

    def __init__(
        self,
        *,
        device_id: str,
        topics: Topics,
        platform: Platform,
        state: AgentState,
        boot: int,
        status_interval_s: float,
        clock: Clock | None = None,
        agent_version: str = __version__,
        change_min_interval_s: float = CHANGE_MIN_INTERVAL_S,
        check_interval_s: float = CHECK_INTERVAL_S,
        command_public_key: str = "",
    ) -> None:
        self.device_id = device_id
        # The server's keys: destructive commands run only when signed by one (protocol §10.1).
        self.verifier = Verifier.from_setting(command_public_key)
        self.topics = topics
        self.platform = platform
        self.state = state
        self.boot = boot
        self.status_interval_s = status_interval_s
        self.clock: Clock = clock or SystemClock()
        self.agent_version = agent_version[:32]
        self._change_min_interval_s = change_min_interval_s
        self._check_interval_s = check_interval_s
        self._seq = 0
        self._connect_seqs: tuple[int, Outgoing] | None = None  # (birth seq, will)
        start = self.clock.monotonic()
        self._next_interval = start + status_interval_s
        self._next_check = start + check_interval_s
        self._last_change_at = float("-inf")
        self._change_pending = False
        self._reported: tuple[Any, ...] | None = None
        self._foreign_seen = False
        self.enforcer = Enforcer(device_id, platform, state, self.clock)
        self.support = SupportHost(device_id, platform)

    def restore(self) -> None:
        """Enforce the last applied policy (and an offline self-lock) again after a restart."""
        self.enforcer.restore()

    # --- sequence and envelope

    def next_seq(self) -> int:
        """Reserve the next sequence number of this boot."""
        seq = self._seq
        self._seq += 1
        return seq

    def envelope(self, seq: int | None = None) -> dict[str, Any]:
        """The fields every message carries, with the next seq unless one is given."""
        return {
            "device_id": self.device_id,
            "ts": self.clock.now(),
            "boot": self.boot,
            "seq": self.next_seq() if seq is None else seq,
        }

    def outgoing(self, message: Message, *, retain: bool = False, durable: bool = True) -> Outgoing:
        """Wrap a message built on `envelope()` for publishing on its topic."""
        topic = self.topics.topic(self.device_id, message.kind)
        return Outgoing(message, topic, encode(message), retain=retain, durable=durable)

    # --- connection life cycle

    def subscriptions(self) -> list[str]:
        """Topics the agent subscribes to (QoS 1) on every connect."""
        return [self.topics.topic(self.device_id, k) for k in _INCOMING]

    def will(self) -> Outgoing:
        """The last will for the next connect attempt; the birth's seq is reserved just below it.

        Birth b and will w = b + 1 of one connection are reserved together before connecting,
        so its will sorts after its own birth (and is applied when the connection dies) but
        before the birth of any later connection (so a late will is ignored).
        """
        if self._connect_seqs is None:
            birth_seq = self.next_seq()
            presence = Presence(**self.envelope(), state="offline", reason="will")
            self._connect_seqs = (birth_seq, self.outgoing(presence, retain=True, durable=False))
        return self._connect_seqs[1]

    def abandon_will(self) -> None:
        """A connect attempt may have reached the broker but got no CONNACK: reserve anew.

        Reusing its seqs could give the next birth a seq below a will the broker has fired.
        An attempt that failed before its CONNECT was sent (no TCP connection) may reuse them.
        """
        self._connect_seqs = None

    def birth(self) -> Outgoing:
        """The birth presence, to publish right after CONNACK, with the seq reserved for it."""
        self.will()
        assert self._connect_seqs is not None
        birth_seq, _will = self._connect_seqs
        self._connect_seqs = None
        presence = Presence(
            **self.envelope(birth_seq),
            state="online",
            reason="birth",
            agent_version=self.agent_version,
            status_interval_s=min(86400, max(1, round(self.status_interval_s))),
        )
        return self.outgoing(presence, retain=True, durable=False)

    def on_connected(self) -> None:
        """The broker accepted the connection (CONNACK): the server can be reached."""
        self.enforcer.on_connected()

    def on_disconnected(self) -> None:
        """The connection is gone, lost or closed (harmless when it was not up)."""
        self.enforcer.on_disconnected()

    def shutdown(self) -> Outgoing:
        """The offline presence of a clean shutdown."""
        presence = Presence(**self.envelope(), state="offline", reason="shutdown")
        return self.outgoing(presence, retain=True, durable=False)

    # --- status

    def status(self, reason: str) -> list[Outgoing]:
        """A status report now (empty if the platform cannot be read)."""
        facts = self._facts()
        if facts is None:
            return []
        return [self._status(facts, reason)]

    def _status(self, facts: DeviceFacts, reason: str) -> Outgoing:
        now = self.clock.monotonic()
        locked, kiosk = self.platform.locked, self.platform.kiosk
        desired_version = self.state.desired.version
        report = StatusReport(
            **self.envelope(),
            battery_pct=facts.battery_pct,
            charging=facts.charging,
            storage_free_mb=facts.storage_free_mb,
            storage_total_mb=facts.storage_total_mb,
            os_version=facts.os_version[:64],
            agent_version=self.agent_version,
            network=facts.network,
            signal_pct=facts.signal_pct,
            uptime_s=facts.uptime_s,
            locked=locked,
            kiosk=kiosk,
            desired_version=desired_version,
            reason=reason,
        )
        # The end-to-end tests read this line to prove that no report is ever lost.
        log.debug("%s: status boot=%d seq=%d (%s)", self.device_id, report.boot, report.seq, reason)
        self._reported = _key(facts, locked, kiosk, desired_version)
        self._change_pending = False
        self._next_interval = now + self.status_interval_s
        if reason == "change":
            self._last_change_at = now
        return self.outgoing(report)

    def _facts(self) -> DeviceFacts | None:
        try:
            return self.platform.facts()
        except Exception:
            log.exception("%s: cannot read the platform's telemetry", self.device_id)
            return None

    def tick(self) -> list[Outgoing]:
        """Reports that are due now: a change report, else an interval report."""
        now = self.clock.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._check_interval_s
            if self.enforcer.check_offline_lock():
                self._change_pending = True
            facts = self._facts()
            if facts is not None and self._differs(facts):
                self._change_pending = True
        if self._change_pending and now >= self._last_change_at + self._change_min_interval_s:
            return self.status("change")
        if now >= self._next_interval:
            return self.status("interval")
        return []

    def next_deadline(self) -> float:
        """Monotonic time at which `tick` next has something to do."""
        deadline = min(self._next_check, self._next_interval)
        if self._change_pending:
            deadline = min(deadline, self._last_change_at + self._change_min_interval_s)
        return deadline

    def _differs(self, facts: DeviceFacts) -> bool:
        key = _key(facts, self.platform.locked, self.platform.kiosk, self.state.desired.version)
        if self._reported is None:
            # Nothing reported yet: the first report (birth or interval) tells it all.
            self._reported = key
        return key != self._reported

    def changes_now(self) -> list[Outgoing]:
        """Look for a significant change at once (after a command) and report it if allowed."""
        facts = self._facts()
        if facts is None or not self._differs(facts):
            return []
        self._change_pending = True
        return self.tick()

    # --- incoming messages

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        """Handle one received MQTT message; never raises, whatever the payload."""
        try:
            try:
                device_id, kind = self.topics.parse(topic)
            except ProtocolError:
                device_id, kind = "", Kind.STATUS
            if device_id != self.device_id or kind not in _INCOMING:
                # Some brokers (amqtt) hand out other topics' retained messages on subscribe.
                level = logging.DEBUG if self._foreign_seen else logging.WARNING
                self._foreign_seen = True
                log.log(level, "%s: ignoring a message on %r", self.device_id, topic[:200])
                return []
            try:
                message = parse(kind, device_id, payload)
            except ProtocolError as exc:
                log.warning("%s: ignoring bad %s message: %s", self.device_id, kind.value, exc)
                return commands.reject(self, payload, exc) if kind is Kind.CMD else []
            if isinstance(message, DesiredState):
                return self._on_desired(message)
            if isinstance(message, Command):
                return commands.run(self, message)
            if isinstance(message, SessionSignal):
                self.support.on_signal(message)
            return []
        except Exception:
            log.exception("%s: failed to handle a message on %s", self.device_id, topic[:200])
            return []

    def support_events(self) -> list[Outgoing]:
        """The remote-support events waiting (durable, through the outbox like every report)."""
        found = []
        for fields in self.support.drain():
            try:
                found.append(self.outgoing(SessionEvent(**self.envelope(), **fields)))
            except Exception:
                log.exception("%s: cannot build a support event %r", self.device_id, fields)
        return found

    def _on_desired(self, desired: DesiredState) -> list[Outgoing]:
        applied = self.enforcer.on_desired(desired)
        if applied is Applied.REAPPLIED:
            # Same version: reported only if it changed something (lifted a lock, say).
            return self.changes_now()
        if applied is Applied.IGNORED:
            return []
        facts = self._facts()
        return [] if facts is None else [self._status(facts, "change")]
