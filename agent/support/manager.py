"""One device's remote-support sessions (docs/protocol.md §17), run in the support event loop.

One session at a time: a request while another is on gets `busy`. The person holding the
tablet is asked through the platform; no answer within the request's `consent_timeout_s` is a
deny (`timeout`) — the manager enforces it and never accepts by itself. After `accepted` the
browser's offer is answered with a complete SDP (non-trickle), the screen and microphone
tracks are sent and the browser's audio is consumed. The session ends on `hangup`, a `bye` on
the data channel, the tablet's end button, `max_duration_s`, a lost heartbeat (no message on
the data channel for `heartbeat_lost_s`), a failed connection or the agent stopping; every
end closes the peer connection and hides the indicator. Events go out through `emit` (a dict
of SessionEvent fields without the envelope), which must be safe to call from this loop;
`on_connection` hears when a session connects (True) and when a connected one ends (False),
for the day's support seconds.

Signals may come twice: the broker redelivers a QoS 1 message, and the server sends a signal
again when the device has reconnected since (a broker restarted without its store forgets what
it held). So a request of the current session is ignored, and so is the same request again
(the same session id, caller, purpose and mode) of one of the last FINISHED_REMEMBERED sessions
that ended here (declined, timed out, answered `busy`, ended): the client is never asked twice.
An offer counts only in phase ACCEPTED (the first one moves the session on at once, before
anything is awaited); a candidate the peer connection already has, or one after the end of
candidates, changes nothing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.platform.base import ConsentAnswer, SupportMedia, SupportPlatform
from agent.support.channel import MAX_CHAT_CHARS, decode, encode
from lainaamo.protocol import SessionSignal

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
Asks = tuple[str, str, str]  # what a request asks: caller, purpose, mode
STALE_GRACE_S = 30.0  # a request older than its consent timeout plus this is not shown at all
FINISHED_REMEMBERED = 64  # ids of sessions finished here whose redelivered requests are ignored
_NO_BYE = (None, "hangup_peer", "heartbeat_lost", "connection_failed")


class Phase(enum.Enum):
    ASKING = "asking"
    ACCEPTED = "accepted"  # waiting for the offer
    CONNECTING = "connecting"  # answered; ICE and then the data channel
    ENDED = "ended"


@dataclass(eq=False)
class Session:
    session_id: str
    caller: str
    mode: str
    ice_servers: list[dict[str, Any]]
    max_duration_s: float
    purpose: str = ""  # as the request said: a repeated request is known by it too
    phase: Phase = Phase.ASKING
    control: bool = False
    ask: asyncio.Future[ConsentAnswer] | None = None
    pc: Any = None  # RTCPeerConnection
    channel: Any = None  # RTCDataChannel "support"
    media: SupportMedia | None = None
    sinks: list[Any] = field(default_factory=list)  # MediaBlackholes of the browser's tracks
    remote_set: bool = False
    pending: list[Any] = field(default_factory=list)  # candidates before the offer was set
    last_rx: float = 0.0
    connected: bool = False
    indicator: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def asks(self) -> Asks:
        return self.caller, self.purpose, self.mode


class SupportManager:
    """The support sessions of one device."""

    def __init__(
        self,
        platform: SupportPlatform,
        emit: Emit,
        *,
        label: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        heartbeat_s: float = 1.0,
        heartbeat_lost_s: float = 5.0,
        connect_timeout_s: float = 30.0,
        on_connection: Callable[[bool], None] = lambda connected: None,
    ) -> None:
        self.platform = platform
        self._emit_fields = emit
        self.label = label
        self._clock = clock
        self._wall = wall
        self.heartbeat_s = heartbeat_s
        self.heartbeat_lost_s = heartbeat_lost_s
        self.connect_timeout_s = connect_timeout_s
        self.on_connection = on_connection
        self.session: Session | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._finished: OrderedDict[str, Asks] = OrderedDict()  # oldest first

    # --- signals

    async def on_signal(self, signal: SessionSignal) -> None:
        """Handle one signal from the server; never raises."""
        try:
            if signal.type == "request":
                await self._on_request(signal)
            elif signal.type == "offer":
                from agent.support.connect import answer_offer

                session = self._current(signal)
                if session is not None and session.phase is Phase.ACCEPTED:
                    await answer_offer(self, session, signal.sdp or "")
                else:
                    log.info("%s: support: ignoring an unexpected offer", self.label)
            elif signal.type == "candidate":
                from agent.support.connect import add_candidate

                session = self._current(signal)
                if session is not None and session.phase is Phase.CONNECTING:
                    await add_candidate(session, signal)
            elif signal.type == "hangup":
                session = self._current(signal)
                if session is not None:
                    log.info("%s: support: hung up by the server (%s)", self.label, signal.reason)
                    await self.end(session, None)
        except Exception as exc:
            log.warning("%s: support: %s signal failed", self.label, signal.type, exc_info=True)
            session = self._current(signal)
            if session is not None:
                await self.end(session, "error", f"{type(exc).__name__}: {exc}"[:300])

    def _current(self, signal: SessionSignal) -> Session | None:
        session = self.session
        return session if session is not None and session.session_id == signal.session_id else None

    def finished(self, session_id: str) -> bool:
        """Whether the session ended here lately (its request again is ignored)."""
        return session_id in self._finished

    def _finish(self, session_id: str, asks: Asks) -> None:
        self._finished[session_id] = asks
        self._finished.move_to_end(session_id)
        while len(self._finished) > FINISHED_REMEMBERED:
            self._finished.popitem(last=False)

    async def _on_request(self, signal: SessionSignal) -> None:
        asks = (signal.caller or "?", signal.purpose or "", signal.mode or "view")
        if self._finished.get(signal.session_id) == asks:
            log.info("%s: support: ignoring the request of a finished session", self.label)
            return
        if self.session is not None:
            if self.session.session_id != signal.session_id:  # not a redelivery of QoS 1
                self.emit(signal.session_id, "consent", consent="busy", control=False)
                self._finish(signal.session_id, asks)
            return
        timeout = float(signal.consent_timeout_s or 60)
        if (self._wall() - signal.ts).total_seconds() > timeout + STALE_GRACE_S:
            log.info("%s: support: request arrived after its consent time", self.label)
            self.emit(signal.session_id, "consent", consent="timeout", control=False)
            self._finish(signal.session_id, asks)
            return
        session = Session(
            session_id=signal.session_id,
            caller=asks[0],
            purpose=asks[1],
            mode=asks[2],
            ice_servers=list(signal.ice_servers or []),
            max_duration_s=float(signal.max_duration_s or 3600),
        )
        self.session = session
        ask = self.platform.ask_consent(session.caller, session.purpose, session.mode, timeout)
        session.ask = asyncio.ensure_future(ask)
        done, _ = await asyncio.wait({session.ask}, timeout=timeout)
        answer: ConsentAnswer | None = None
        if not done:
            session.ask.cancel()
        elif session.ask.cancelled():
            return  # hung up while asking
        elif session.ask.exception() is not None:
            log.warning("%s: support: asking failed: %r", self.label, session.ask.exception())
        else:
            answer = session.ask.result()
        if self.session is not session:
            return
        if answer is None or not answer.accepted:
            self.session = None
            session.phase = Phase.ENDED
            self._finish(session.session_id, session.asks)
            consent = "timeout" if answer is None else "declined"
            self.emit(session.session_id, "consent", consent=consent, control=False)
            return
        session.control = answer.control and session.mode == "control"
        session.phase = Phase.ACCEPTED
        self.emit(session.session_id, "consent", consent="accepted", control=session.control)
        loop = asyncio.get_running_loop()
        session.timers.append(
            loop.call_later(session.max_duration_s, self.spawn_end, session, "max_duration")
        )

        def on_end() -> None:  # the end button, from whatever thread the platform uses
            loop.call_soon_threadsafe(self.spawn_end, session, "hangup_client")

        self._guard(self.platform.show_indicator, session.caller, on_end)
        session.indicator = True

    # --- the data channel

    def on_channel_message(self, session: Session, raw: object) -> None:
        """One message from the browser: any message counts as a heartbeat."""
        if self.session is not session:
            return
        session.last_rx = self._clock()
        message = decode(raw)
        if message is None:
            log.debug("%s: support: ignoring a malformed channel message", self.label)
        elif message.t == "chat" and message.text is not None:
            loop = asyncio.get_running_loop()

            def reply(text: str) -> None:
                loop.call_soon_threadsafe(self.send, session, "chat", text[:MAX_CHAT_CHARS])

            self._guard(self.platform.show_chat, message.text, reply)
        elif message.t == "pointer" and message.x is not None and message.y is not None:
            self._guard(self.platform.show_pointer, message.x, message.y)
        elif message.t == "input" and message.x is not None and message.y is not None:
            if session.control:
                self._guard(self.platform.tap, message.x, message.y)
            else:
                log.info("%s: support: ignoring input: control was not allowed", self.label)
        elif message.t == "bye":
            self.spawn_end(session, "hangup_peer")

    def send(self, session: Session, t: str, text: str | None = None) -> None:
        """Send one message on the data channel if it is open."""
        channel = session.channel
        if channel is None or channel.readyState != "open" or self.session is not session:
            return
        fields: dict[str, Any] = {"at": int(time.time() * 1000)} if t == "ping" else {}
        if text is not None:
            fields["text"] = text
        try:
            channel.send(encode(t, **fields))
        except Exception as exc:
            log.info("%s: support: cannot send on the data channel: %s", self.label, exc)

    def heartbeat_lost(self, session: Session) -> bool:
        """Whether the browser has been silent on an open data channel for too long."""
        return session.channel is not None and (
            self._clock() - session.last_rx > self.heartbeat_lost_s
        )

    async def heartbeat(self, session: Session) -> None:
        """Ping every `heartbeat_s`; end the session when the browser falls silent."""
        next_ping = -float("inf")
        while self.session is session:
            now = self._clock()
            if now >= next_ping:
                self.send(session, "ping")
                next_ping = now + self.heartbeat_s
            if self.heartbeat_lost(session):
                silent = self._clock() - session.last_rx
                await self.end(session, "heartbeat_lost", f"no message for {silent:.1f} s")
                return
            await asyncio.sleep(min(0.25, self.heartbeat_s))

    # --- the end

    def spawn_end(self, session: Session, reason: str | None, detail: str | None = None) -> None:
        """End a session from a callback (not a coroutine)."""
        if session.phase is not Phase.ENDED:
            self.background(self.end(session, reason, detail))

    async def end(self, session: Session, reason: str | None, detail: str | None = None) -> None:
        """End a session, report `ended` (unless the server hung up) and release everything."""
        if session.phase is Phase.ENDED:
            return
        log.info("%s: support: session ends (%s)", self.label, reason or "hangup")
        session.phase = Phase.ENDED
        self._finish(session.session_id, session.asks)
        if reason not in _NO_BYE and session.channel is not None:
            self.send(session, "bye")
        if self.session is session:
            self.session = None
        if reason is not None:
            self.emit(session.session_id, "ended", reason=reason, detail=detail)
        if session.ask is not None:
            session.ask.cancel()
        for timer in session.timers:
            timer.cancel()
        current = asyncio.current_task()
        for task in list(session.tasks):
            if task is not current:
                task.cancel()
        if session.indicator:
            self._guard(self.platform.hide_indicator)
        if session.connected:
            self.on_connection(False)
        from agent.support.connect import release

        await release(self, session)

    async def stop(self) -> None:
        """The agent stops: end the session (`agent_stopped`) and wait for the clean-up."""
        if self.session is not None:
            await self.end(self.session, "agent_stopped")
        if self._background:
            await asyncio.wait(set(self._background), timeout=3.0)

    # --- helpers

    def emit(self, session_id: str, type_: str, **fields: Any) -> None:
        """Report one event (None fields are left out)."""
        data = {"session_id": session_id, "type": type_}
        data |= {k: v for k, v in fields.items() if v is not None}
        self._emit_fields(data)

    def background(self, coro: Coroutine[Any, Any, Any], session: Session | None = None) -> None:
        """Run a coroutine as a task that is kept alive and whose failure is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        owner = self._background if session is None else session.tasks
        owner.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            owner.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.warning("%s: support: a task failed: %r", self.label, finished.exception())

        task.add_done_callback(done)

    def _guard(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            log.warning("%s: support: the platform failed", self.label, exc_info=True)
