"""The agent's logic without I/O: builds outgoing messages and handles incoming ones.

`AgentCore` knows nothing of sockets or paho. The link asks it for the will, the birth and
the subscriptions when it connects, tells it when the connection is up or gone
(`on_connected`, `on_disconnected`), hands it every received message (`handle`) and calls
`tick` when `next_deadline` comes; `handle` and `tick` return the messages to publish. Time
comes from an injected clock, so the tests drive it by hand. The policy and the offline
self-lock live in `agent.enforcer`, the daily usage totals in `agent.usage`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from agent import commands
from agent.clock import Clock, SystemClock
from agent.enforcer import Applied, Enforcer
from agent.platform.base import (
    NO_USAGE,
    DeviceFacts,
    Platform,
    UsageReading,
    follow_time,
    read_usage,
)
from agent.state import AgentState
from agent.support.host import SupportHost
from agent.usage import UsageCounter, UsageDraft, category_of
from lainaamo import __version__
from lainaamo.errors import ProtocolError
from lainaamo.protocol import (
    Command,
    DesiredState,
    EnforcementReport,
    Kind,
    Message,
    OutboxReport,
    Presence,
    SessionEvent,
    SessionSignal,
    StatusReport,
    Topics,
    UsageReport,
    encode,
    parse,
)
from lainaamo.signing import Verifier

log = logging.getLogger(__name__)

CHANGE_MIN_INTERVAL_S = 2.0  # at most one "change" status per this many seconds
CHECK_INTERVAL_S = 1.0  # how often the platform is read to notice significant changes
USAGE_INTERVAL_S = 3600.0  # running usage totals at most this often (setting usage_interval_s)
_INCOMING = (Kind.DESIRED, Kind.CMD, Kind.SESSION)


@dataclass(frozen=True)
class Outgoing:
    """A message to publish; `durable` ones go through the outbox, the others straight to MQTT.

    The link calls `on_queued` once a durable message is in the outbox (a usage report's day
    may then be forgotten: the outbox keeps it from there).
    """

    message: Message = field(repr=False)
    topic: str
    payload: bytes = field(repr=False)
    retain: bool = False
    durable: bool = True
    qos: int = 1
    on_queued: Callable[[], None] | None = field(default=None, repr=False, compare=False)


def _key(
    facts: DeviceFacts,
    locked: bool,
    kiosk: bool,
    desired_version: int,
    enforcement: EnforcementReport | None,
) -> tuple[Any, ...]:
    """What counts as a significant change: any difference here is reported at once."""
    return (
        facts.charging,
        facts.network,
        locked,
        kiosk,
        facts.battery_pct // 5,
        desired_version,
        enforcement,
    )


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
        usage_interval_s: float = USAGE_INTERVAL_S,
        usage_tz: tzinfo | None = None,
    ) -> None:
        self.device_id = device_id
        # The link's outbox as a status report tells it (set by the link; protocol.md §6.2).
        self.outbox_report: Callable[[], OutboxReport | None] = lambda: None
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
        # Days end at local midnight: `usage_tz`, or the device's own time zone when None.
        self.usage = UsageCounter(state, interval_s=usage_interval_s, tz=usage_tz)
        self._usage_read_failed = False

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

    def outgoing(
        self,
        message: Message,
        *,
        retain: bool = False,
        durable: bool = True,
        on_queued: Callable[[], None] | None = None,
    ) -> Outgoing:
        """Wrap a message built on `envelope()` for publishing on its topic."""
        topic = self.topics.topic(self.device_id, message.kind)
        return Outgoing(
            message, topic, encode(message), retain=retain, durable=durable, on_queued=on_queued
        )

    # --- connection life cycle

    def subscriptions(self) -> list[str]:
        """Topics the agent subscribes to (QoS 1) on every connect: the link handles receipts
        itself (they concern its outbox), the core everything else."""
        return [self.topics.topic(self.device_id, k) for k in (*_INCOMING, Kind.RECEIPT)]

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

    def close(self) -> None:
        """The agent stops: save what is not saved yet (the usage totals counted since)."""
        try:
            self.usage.advance(self.clock.now())
            self.usage.save()
        except Exception:
            log.exception("%s: cannot save the usage totals", self.device_id)

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
        # What is enforced of the policy of desired_version (none before the first policy).
        enforcement = self.enforcer.report() if desired_version else None
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
            enforcement=enforcement,
            outbox=self.outbox_report(),
        )
        # The end-to-end tests read this line to prove that no report is ever lost.
        log.debug("%s: status boot=%d seq=%d (%s)", self.device_id, report.boot, report.seq, reason)
        self._reported = _key(facts, locked, kiosk, desired_version, enforcement)
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
        """Reports that are due now: usage totals, and a change report, else an interval one."""
        now = self.clock.monotonic()
        found: list[Outgoing] = []
        if now >= self._next_check:
            self._next_check = now + self._check_interval_s
            self._follow_time()
            if self.enforcer.check_offline_lock():
                self._change_pending = True
            facts = self._facts()
            if facts is not None and self._differs(facts):
                self._change_pending = True
            found = self._usage_tick()
        if self._change_pending and now >= self._last_change_at + self._change_min_interval_s:
            return found + self.status("change")
        if now >= self._next_interval:
            return found + self.status("interval")
        return found

    def next_deadline(self) -> float:
        """Monotonic time at which `tick` next has something to do."""
        deadline = min(self._next_check, self._next_interval)
        if self._change_pending:
            deadline = min(deadline, self._last_change_at + self._change_min_interval_s)
        return deadline

    def _follow_time(self) -> None:
        """Tell the platform the wall clock: remote groups' Join windows open and close by it
        without a new policy (docs/protocol.md §9.7); a change in what it enforces is kept and
        reported (the next check sees the difference)."""
        if self.enforcer.policy is None:
            return
        try:
            result = follow_time(self.platform, self.clock.now())
        except Exception:
            log.exception("%s: the platform failed to follow the time", self.device_id)
            return
        if result is not None:
            self.enforcer.followed(result)

    # --- usage totals (docs/protocol.md §18)

    def _usage_tick(self) -> list[Outgoing]:
        """Count what the platform saw since the last check; the usage reports due now."""
        try:
            policy = self.enforcer.policy
            if policy is None:
                self.usage.pause()  # no policy yet: none has said yes, nor no
                return []
            if not policy.usage:
                self.usage.disable()
                return []
            now = self.clock.now()
            fresh = not self.usage.enabled
            self.usage.enable(now)
            reading = self._read_usage()
            if not fresh:  # launches seen before counting started do not count
                for launch in reading.launches:
                    self.usage.launch(category_of(launch, policy.kiosk), now)
            self.usage.screen(bool(reading.screen_on), now)
            joined = [g for g in policy.groups if g.id == reading.group]
            self.usage.in_group(joined[0] if joined else None, now)
            drafts = self.usage.due(now, self.clock.monotonic())
            return [self._usage_report(draft) for draft in drafts]
        except Exception:
            log.exception("%s: counting usage failed", self.device_id)
            return []

    def _read_usage(self) -> UsageReading:
        try:
            reading = read_usage(self.platform)
        except Exception:
            # Said once: a platform that fails here fails every second.
            if not self._usage_read_failed:
                log.warning("%s: cannot read the usage", self.device_id, exc_info=True)
            self._usage_read_failed = True
            return NO_USAGE
        self._usage_read_failed = False
        return reading

    def _usage_report(self, draft: UsageDraft) -> Outgoing:
        totals = draft.totals
        report = UsageReport(
            **self.envelope(),
            day=draft.day,
            active_s=totals.active_s,
            launches=dict(totals.launches),
            support_s=totals.support_s,
            groups=dict(totals.groups) or None,
            final=draft.final,
        )
        log.debug("%s: usage %s%s", self.device_id, draft.day, " (final)" if draft.final else "")
        return self.outgoing(report, on_queued=lambda: self.usage.queued(draft))

    def _differs(self, facts: DeviceFacts) -> bool:
        version = self.state.desired.version
        enforcement = self.enforcer.report() if version else None
        key = _key(facts, self.platform.locked, self.platform.kiosk, version, enforcement)
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
        for connected in self.support.connection_changes():
            self.usage.support(connected, self.clock.now())
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
