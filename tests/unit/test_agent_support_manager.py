"""The support manager's decisions with a fake platform, a fake channel and no network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.clock import FakeClock

from agent.core import AgentCore
from agent.platform.base import ConsentAnswer, SupportMedia
from agent.platform.simulated import SimulatedTablet
from agent.state import AgentState
from agent.support.channel import decode
from agent.support.manager import Phase, Session, SupportManager
from agent.support.peer import configuration, remote_candidate
from agent.support.tracks import TestPatternTrack as PatternTrack
from lainaamo.protocol import Kind, SessionEvent, SessionSignal, Topics, encode, parse

DEVICE = "tab-001"
SID = "s" * 20
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakePlatform:
    """Answers consent with `answer` after `delay` (None: never); records everything."""

    def __init__(self, answer: ConsentAnswer | None = None, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.asked: list[tuple[str, str, str]] = []
        self.cancelled = False
        self.indicator: str | None = None
        self.end_button: Callable[[], None] | None = None
        self.chats: list[str] = []
        self.pointers: list[tuple[float, float]] = []
        self.taps: list[tuple[float, float]] = []
        self.fail = False

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        self.asked.append((caller, purpose, mode))
        if self.fail:
            raise RuntimeError("no screen")
        try:
            await asyncio.sleep(self.delay)
            if self.answer is None:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        assert self.answer is not None
        return self.answer

    def show_indicator(self, caller: str, on_end: Callable[[], None]) -> None:
        self.indicator, self.end_button = caller, on_end

    def hide_indicator(self) -> None:
        self.indicator = None

    def show_chat(self, text: str, reply: Callable[[str], None]) -> None:
        self.chats.append(text)
        reply("echo")

    def show_pointer(self, x: float, y: float) -> None:
        self.pointers.append((x, y))

    def tap(self, x: float, y: float) -> bool:
        self.taps.append((x, y))
        return True

    def support_media(self) -> SupportMedia:
        raise AssertionError("no media without an offer")


class FakeChannel:
    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: str) -> None:
        self.sent.append(json.loads(data))


def signal(type_: str = "request", session_id: str = SID, **fields: Any) -> SessionSignal:
    base: dict[str, Any] = {"ts": NOW, "device_id": DEVICE, "boot": 1, "seq": 0}
    if type_ == "request":
        base |= {
            "caller": "Maija",
            "purpose": "bank app",
            "mode": "view",
            "consent_timeout_s": 0.2,  # the schema's minimum is 5; the manager trusts parse
            "max_duration_s": 3600,
            "ice_servers": [],
        }
    return SessionSignal(**(base | {"session_id": session_id, "type": type_} | fields))


class Harness:
    def __init__(self, platform: FakePlatform, clock: FakeClock | None = None) -> None:
        self.platform = platform
        self.events: list[dict[str, Any]] = []
        self.clock = clock or FakeClock()
        self.manager = SupportManager(
            platform, self.events.append, clock=self.clock.monotonic, wall=lambda: NOW
        )

    def types(self) -> list[tuple[str, Any]]:
        return [(e["type"], e.get("consent") or e.get("reason")) for e in self.events]

    async def accepted(self, mode: str = "view", control: bool = False) -> Session:
        """A session past consent, with a fake open data channel."""
        self.platform.answer = ConsentAnswer(True, control)
        await self.manager.on_signal(signal(mode=mode))
        session = self.manager.session
        assert session is not None and session.phase is Phase.ACCEPTED
        session.channel = FakeChannel()
        session.last_rx = self.clock.monotonic()
        return session


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_accept_shows_the_indicator_and_reports_consent() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(ConsentAnswer(True)))
        await h.manager.on_signal(signal())
        assert h.events == [
            {"session_id": SID, "type": "consent", "consent": "accepted", "control": False}
        ]
        assert h.platform.asked == [("Maija", "bank app", "view")]
        assert h.platform.indicator == "Maija"
        await h.manager.stop()
        assert h.types()[-1] == ("ended", "agent_stopped")
        assert h.platform.indicator is None and h.manager.session is None

    run(scenario())


def test_no_answer_is_a_deny_and_takes_the_question_away() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(None))
        await h.manager.on_signal(signal())
        await asyncio.sleep(0)
        assert h.types() == [("consent", "timeout")]
        assert h.platform.cancelled and h.manager.session is None
        assert h.platform.indicator is None

    run(scenario())


def test_decline_and_a_failing_dialog_deny() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(ConsentAnswer(False)))
        await h.manager.on_signal(signal())
        h.platform.fail = True
        await h.manager.on_signal(signal(session_id="t" * 20))
        assert h.types() == [("consent", "declined"), ("consent", "timeout")]

    run(scenario())


def test_control_needs_control_mode_and_the_second_consent() -> None:
    async def scenario() -> None:
        for mode, allowed, expected in [
            ("control", True, True),
            ("control", False, False),
            ("view", True, False),
        ]:
            h = Harness(FakePlatform(ConsentAnswer(True, allowed)))
            await h.manager.on_signal(signal(mode=mode))
            assert h.events[0]["control"] is expected
            await h.manager.stop()

    run(scenario())


def test_a_second_request_while_busy_gets_busy() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(ConsentAnswer(True), delay=0.1))
        first = asyncio.create_task(h.manager.on_signal(signal()))
        await asyncio.sleep(0.01)
        await h.manager.on_signal(signal(session_id="t" * 20))
        await h.manager.on_signal(signal())  # a redelivery of the first: nothing
        await first
        assert h.events[0] == {
            "session_id": "t" * 20,
            "type": "consent",
            "consent": "busy",
            "control": False,
        }
        assert h.types() == [("consent", "busy"), ("consent", "accepted")]
        await h.manager.stop()

    run(scenario())


def test_hangup_while_asking_cancels_the_question_silently() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(None))
        asking = asyncio.create_task(h.manager.on_signal(signal(consent_timeout_s=5)))
        await asyncio.sleep(0.01)
        await h.manager.on_signal(signal("hangup", reason="cancelled"))
        await asking
        assert h.events == [] and h.platform.cancelled and h.manager.session is None

    run(scenario())


def test_a_stale_request_is_not_shown() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(ConsentAnswer(True)))
        await h.manager.on_signal(signal(ts=NOW - timedelta(hours=2)))
        assert h.types() == [("consent", "timeout")] and h.platform.asked == []

    run(scenario())


def test_signals_of_other_sessions_and_early_offers_are_ignored() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform(ConsentAnswer(True)))
        await h.manager.on_signal(signal("offer", sdp="v=0"))
        await h.manager.on_signal(signal("hangup", reason="x"))
        session = await h.accepted()
        await h.manager.on_signal(signal("hangup", session_id="t" * 20))
        assert h.manager.session is session
        await h.manager.stop()

    run(scenario())


def test_channel_messages_malformed_ignored_input_only_with_control() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform())
        session = await h.accepted()
        for raw in [
            "not json",
            b"\xff",
            "[]",
            '{"t": "chat", "text": ""}',
            json.dumps({"t": "chat", "text": "x" * 1001}),
            '{"t": "pointer", "x": 2, "y": 0.5}',
            '{"t": "pointer", "x": true, "y": 0.5}',
            '{"t": "pointer", "x": NaN, "y": 0.5}',
            '{"t": "teleport"}',
            "x" * 5000,
            '{"t": "input", "kind": "tap", "x": 0.5, "y": 0.5}',  # view mode
        ]:
            h.manager.on_channel_message(session, raw)
        assert h.platform.chats == [] and h.platform.pointers == [] and h.platform.taps == []
        h.manager.on_channel_message(session, '{"t": "chat", "text": "hei"}')
        h.manager.on_channel_message(session, '{"t": "pointer", "x": 0, "y": 1}')
        await asyncio.sleep(0)  # the reply comes through the loop
        assert h.platform.chats == ["hei"] and h.platform.pointers == [(0.0, 1.0)]
        assert session.channel.sent == [{"t": "chat", "text": "echo"}]
        h.manager.on_channel_message(session, '{"t": "bye"}')
        await asyncio.sleep(0.01)
        assert h.types()[-1] == ("ended", "hangup_peer") and h.platform.indicator is None

        h.platform.answer = ConsentAnswer(True, True)
        session = await h.accepted(mode="control", control=True)
        h.manager.on_channel_message(session, '{"t": "input", "kind": "tap", "x": 0.5, "y": 0.25}')
        h.manager.on_channel_message(session, '{"t": "input", "kind": "swipe", "x": 0, "y": 0}')
        assert h.platform.taps == [(0.5, 0.25)]
        await h.manager.stop()

    run(scenario())


def test_heartbeat_pings_and_ends_after_five_silent_seconds() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        h = Harness(FakePlatform(), clock)
        h.manager.heartbeat_s = 0.01
        session = await h.accepted()
        beat = asyncio.create_task(h.manager.heartbeat(session))
        await asyncio.sleep(0.05)
        assert session.channel.sent[0]["t"] == "ping"
        clock.advance(4.9)
        h.manager.on_channel_message(session, '{"t": "ping", "at": 1}')  # alive
        clock.advance(4.9)
        await asyncio.sleep(0.05)
        assert not beat.done() and not h.manager.heartbeat_lost(session)
        clock.advance(0.2)
        await asyncio.wait_for(beat, 1)
        assert h.types()[-1] == ("ended", "heartbeat_lost")
        assert h.manager.session is None and h.platform.indicator is None

    run(scenario())


def test_end_button_and_max_duration() -> None:
    async def scenario() -> None:
        h = Harness(FakePlatform())
        session = await h.accepted()
        assert h.platform.end_button is not None
        h.platform.end_button()
        await asyncio.sleep(0.1)
        assert h.types()[-1] == ("ended", "hangup_client")
        assert session.channel.sent[-1] == {"t": "bye"}
        h.platform.answer = ConsentAnswer(True)
        await h.manager.on_signal(signal(session_id="t" * 20, max_duration_s=0.05))
        await asyncio.sleep(0.2)
        assert h.types()[-1] == ("ended", "max_duration") and h.manager.session is None

    run(scenario())


def test_channel_decode_accepts_the_protocol() -> None:
    assert decode('{"t":"ping","at":5}') is not None
    assert decode(b'{"t":"bye"}') is not None
    message = decode('{"t":"input","kind":"tap","x":1,"y":0.5}')
    assert message is not None and (message.t, message.x, message.y) == ("input", 1.0, 0.5)


def test_ice_configuration_and_trickled_candidates() -> None:
    assert configuration([]).iceServers == []
    turn = configuration([{"urls": ["turn:t.example:3478"], "username": "u", "credential": "c"}])
    assert turn.iceServers is not None
    server = turn.iceServers[0]
    assert (server.urls, server.username, server.credential) == (["turn:t.example:3478"], "u", "c")
    line = "candidate:1 1 udp 2130706431 192.0.2.5 50000 typ host"
    candidate = remote_candidate(line, "0", 0)
    assert candidate is not None and (candidate.ip, candidate.port, candidate.type) == (
        "192.0.2.5",
        50000,
        "host",
    )
    assert candidate.sdpMid == "0"
    assert remote_candidate("", "0", 0) is None


def test_the_test_pattern_has_the_promised_size() -> None:
    async def frames() -> list[Any]:
        track = PatternTrack(fps=1000)
        found = [await track.recv() for _ in range(3)]
        track.stop()
        return found

    found = run(frames())
    assert [(f.width, f.height) for f in found] == [(640, 360)] * 3
    assert found[0].pts < found[1].pts < found[2].pts


def test_core_subscribes_to_session_and_ignores_bad_signals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    state = AgentState(tmp_path / "state")
    topics = Topics("fleet/v1")
    core = AgentCore(
        device_id=DEVICE,
        topics=topics,
        platform=SimulatedTablet(DEVICE, 0),
        state=state,
        boot=state.next_boot(),
        status_interval_s=60,
        clock=clock,
    )
    topic = topics.topic(DEVICE, Kind.SESSION)
    assert topic in core.subscriptions()
    assert core.handle(topic, b"{not json") == []
    assert core.handle(topic, json.dumps({"type": "request"}).encode()) == []
    assert "ignoring bad session message" in caplog.text
    assert core.support.drain() == []  # nothing started
    woken: list[bool] = []
    core.support.set_waker(lambda: woken.append(True))
    core.support._emit({"session_id": SID, "type": "consent", "consent": "busy", "control": False})
    assert woken == [True] and core.support.pending()
    [out] = core.support_events()
    assert out.topic == topics.topic(DEVICE, Kind.SESSION_EVT) and out.durable
    event = parse(Kind.SESSION_EVT, DEVICE, out.payload)
    assert isinstance(event, SessionEvent) and event.consent == "busy" and event.boot == 1
    assert encode(event) == out.payload
