"""Remote support end to end: the agent (aiortc) against an aiortc test peer over Mosquitto.

A plain paho client plays the server (publishes signals, reads `session/evt`); an aiortc peer
connection in the test's own event loop plays the counsellor's browser: it receives video,
sends and receives audio and opens the `support` data channel.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from paho.mqtt.enums import CallbackAPIVersion
from support.mosquitto import Mosquitto

from agent.platform.simulated import SimulatedTablet
from agent.runner import run_agent
from agent.support.tracks import SilenceTrack
from lainaamo.config import Settings
from lainaamo.protocol import Kind, SessionSignal, Topics, encode, parse

pytestmark = pytest.mark.integration

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")


class FakeServer:
    """Publishes session signals and records the agent's session events (checked by parse)."""

    def __init__(self, broker: Mosquitto) -> None:
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.statuses = 0
        self._seq = itertools.count()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fake-server")
        self.client.on_connect = lambda c, *a: c.subscribe(f"fleet/v1/{DEVICE}/#", 1)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        _device, kind = TOPICS.parse(msg.topic)
        with self._lock:
            if kind is Kind.SESSION_EVT:
                parse(kind, DEVICE, bytes(msg.payload))  # every event is valid
                self.events.append(json.loads(msg.payload))
            elif kind is Kind.STATUS:
                self.statuses += 1

    def send(self, session_id: str, type_: str, **fields: Any) -> None:
        signal = SessionSignal(
            device_id=DEVICE,
            ts=datetime.now(UTC),
            boot=1,
            seq=next(self._seq),
            session_id=session_id,
            type=type_,
            **fields,
        )
        self.client.publish(TOPICS.topic(DEVICE, Kind.SESSION), encode(signal), qos=1)

    def request(self, mode: str = "view", timeout_s: int = 30) -> str:
        session_id = secrets.token_urlsafe(24)
        self.send(
            session_id,
            "request",
            caller="Maija (Aikuissosiaalityö)",
            purpose="Help with the bank app",
            mode=mode,
            consent_timeout_s=timeout_s,
            max_duration_s=3600,
            ice_servers=[],
        )
        return session_id

    async def event(self, session_id: str, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events:
                    if event["session_id"] == session_id and event["type"] == type_:
                        return event
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {type_} event for the session: {self.events}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class TestBrowser:
    """The counsellor's browser: receives video, sends audio, opens the data channel."""

    __test__ = False

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTrack(SilenceTrack())
        self.channel = self.pc.createDataChannel("support")
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.video: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pinging = True
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)
        self.channel.on("message", lambda raw: self.received.put_nowait(json.loads(raw)))
        self.channel.on("open", lambda: self._tasks.append(asyncio.create_task(self._ping())))

    def _on_track(self, track: Any) -> None:
        if track.kind == "video" and not self.video.done():
            self.video.set_result(track)

    async def _ping(self) -> None:
        while self.pinging and self.channel.readyState == "open":
            self.send({"t": "ping", "at": int(time.time() * 1000)})
            await asyncio.sleep(1.0)

    def send(self, message: dict[str, Any] | str) -> None:
        self.channel.send(message if isinstance(message, str) else json.dumps(message))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def message(self, t: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                found = await self.received.get()
                if found.get("t") == t:
                    return found

    def vanish(self) -> None:
        """Go silent at once, as a browser tab that crashed: no bye, no more packets."""
        self.pinging = False
        connection = self.pc.sctp.transport.transport._connection
        for protocol in connection._protocols:
            protocol.transport.close()

    async def close(self) -> None:
        self.pinging = False
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


class Agent:
    def __init__(self, settings: Settings, tablet: SimulatedTablet) -> None:
        self.tablet = tablet
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=run_agent,
            args=(settings, self.stop_event),
            kwargs={"platform": tablet},
            name="agent",
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


@pytest.fixture
def server(mosquitto: Mosquitto) -> Iterator[FakeServer]:
    fake = FakeServer(mosquitto)
    yield fake
    fake.close()


def start_agent(
    mosquitto: Mosquitto, tmp_path: Path, server: FakeServer, consent: str = "accept"
) -> Agent:
    settings = Settings(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        mqtt_keepalive_s=5,
        device_id=DEVICE,
        agent_state_dir=str(tmp_path / "agent"),
        agent_platform="simulated",
        status_interval_s=30,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
    )
    agent = Agent(settings, SimulatedTablet(DEVICE, 0, consent=consent, consent_delay_s=0.2))
    deadline = time.monotonic() + 10
    while server.statuses == 0:  # the birth status follows the subscriptions
        assert time.monotonic() < deadline, "the agent did not connect"
        time.sleep(0.02)
    return agent


async def connect(
    server: FakeServer, mode: str = "view", wait_open: bool = True
) -> tuple[str, TestBrowser, float]:
    """Request, consent, offer and answer: a connected session and when consent arrived."""
    session_id = server.request(mode)
    consent = await server.event(session_id, "consent")
    accepted_at = time.monotonic()
    assert consent["consent"] == "accepted"
    assert consent["control"] is (mode == "control")
    browser = TestBrowser()
    server.send(session_id, "offer", sdp=await browser.offer())
    answer = await server.event(session_id, "answer")
    assert "a=candidate" in answer["sdp"]  # complete: non-trickle
    await browser.answer(answer["sdp"])
    if wait_open:
        await browser.message("ping", timeout=10)  # the agent's heartbeat: the channel is open
    return session_id, browser, accepted_at


def test_video_chat_pointer_and_hangup_by_the_peer(
    mosquitto: Mosquitto, tmp_path: Path, server: FakeServer
) -> None:
    agent = start_agent(mosquitto, tmp_path, server)

    async def scenario() -> None:
        session_id, browser, accepted_at = await connect(server, wait_open=False)
        try:
            track = await asyncio.wait_for(browser.video, 10)
            frame = await asyncio.wait_for(track.recv(), 10)
            first_frame_s = time.monotonic() - accepted_at
            print(f"\naccepted -> first decoded frame: {first_frame_s * 1000:.0f} ms")
            assert (frame.width, frame.height) == (640, 360)
            for _ in range(5):
                frame = await asyncio.wait_for(track.recv(), 5)
            connected = await server.event(session_id, "connected")
            assert connected["connection_type"] == "host"
            assert agent.tablet.indicator == "Maija (Aikuissosiaalityö)"
            # Two-way audio: the tablet plays the professional's voice (here: silence frames).
            deadline = time.monotonic() + 5
            while agent.tablet.voice_frames < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert agent.tablet.voice_frames >= 5
            await browser.message("ping")  # the agent's heartbeat: the channel is open
            browser.send({"t": "chat", "text": "Hei, näetkö?"})
            assert (await browser.message("chat"))["text"] == "echo: Hei, näetkö?"
            browser.send({"t": "pointer", "x": 0.25, "y": 0.5})
            browser.send({"t": "input", "kind": "tap", "x": 0.5, "y": 0.5})  # view mode
            browser.send("not json")
            browser.send({"t": "pointer", "x": 7, "y": "a"})
            browser.send({"t": "ping", "at": 1})
            browser.send({"t": "bye"})
            ended = await server.event(session_id, "ended")
            assert ended["reason"] == "hangup_peer"
            assert agent.tablet.pointers == [(0.25, 0.5)]
            assert agent.tablet.taps == []
            assert agent.tablet.indicator is None
        finally:
            await browser.close()

    try:
        asyncio.run(scenario())
    finally:
        agent.stop()


def test_hangup_by_the_server_the_tablet_and_the_agent_stopping(
    mosquitto: Mosquitto, tmp_path: Path, server: FakeServer
) -> None:
    agent = start_agent(mosquitto, tmp_path, server)

    async def scenario() -> None:
        # The server hangs up: the agent closes the connection, the browser sees it closed.
        session_id, browser, _ = await connect(server)
        try:
            await server.event(session_id, "connected")
            server.send(session_id, "hangup", reason="hangup_professional")
            async with asyncio.timeout(10):
                while browser.channel.readyState != "closed":
                    await asyncio.sleep(0.05)
            assert agent.tablet.indicator is None
        finally:
            await browser.close()
        # Control mode; the tablet's end button: `ended hangup_client` and a bye to the browser.
        session_id, browser, _ = await connect(server, mode="control")
        try:
            await server.event(session_id, "connected")
            browser.send({"t": "input", "kind": "tap", "x": 0.1, "y": 0.9})
            browser.send({"t": "chat", "text": "sync"})
            await browser.message("chat")
            assert agent.tablet.taps == [(0.1, 0.9)]
            assert agent.tablet.press_end()
            await browser.message("bye")
            ended = await server.event(session_id, "ended")
            assert ended["reason"] == "hangup_client"
        finally:
            await browser.close()
        # The agent stops during a session: `ended agent_stopped`.
        session_id, browser, _ = await connect(server)
        try:
            await server.event(session_id, "connected")
            await asyncio.get_running_loop().run_in_executor(None, agent.stop)
            ended = await server.event(session_id, "ended")
            assert ended["reason"] == "agent_stopped"
        finally:
            await browser.close()

    try:
        asyncio.run(scenario())
    finally:
        if agent.thread.is_alive():
            agent.stop()


def test_a_vanished_peer_is_detected_by_the_heartbeat(
    mosquitto: Mosquitto, tmp_path: Path, server: FakeServer
) -> None:
    agent = start_agent(mosquitto, tmp_path, server)

    async def scenario() -> None:
        session_id, browser, _ = await connect(server)
        try:
            await server.event(session_id, "connected")
            browser.vanish()
            vanished_at = time.monotonic()
            ended = await server.event(session_id, "ended", timeout=10)
            assert ended["reason"] == "heartbeat_lost"
            assert time.monotonic() - vanished_at < 6.5
            assert agent.tablet.indicator is None
        finally:
            await browser.close()

    try:
        asyncio.run(scenario())
    finally:
        agent.stop()


@pytest.mark.parametrize("consent", ["decline", "ignore"])
def test_decline_timeout_and_busy(
    mosquitto: Mosquitto, tmp_path: Path, server: FakeServer, consent: str
) -> None:
    agent = start_agent(mosquitto, tmp_path, server, consent=consent)

    async def scenario() -> None:
        first = server.request(timeout_s=5)
        if consent == "ignore":
            await asyncio.sleep(0.5)
            second = server.request()
            busy = await server.event(second, "consent")
            assert busy["consent"] == "busy"
        answer = await server.event(first, "consent", timeout=8)
        assert answer["consent"] == ("declined" if consent == "decline" else "timeout")
        assert answer["control"] is False
        assert agent.tablet.consent_asked[0][0] == "Maija (Aikuissosiaalityö)"
        assert agent.tablet.indicator is None

    try:
        asyncio.run(scenario())
    finally:
        agent.stop()
