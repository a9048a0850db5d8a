"""The WebRTC side of a session: answer the browser's offer, take its candidates, release all."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole

from agent.support.peer import configuration, connection_type, remote_candidate
from lainaamo.protocol import SessionSignal

if TYPE_CHECKING:
    from agent.support.manager import Session, SupportManager

log = logging.getLogger(__name__)

CHANNEL_LABEL = "support"


async def answer_offer(manager: SupportManager, session: Session, sdp: str) -> None:
    """Set the offer, add the screen and microphone, report the complete answer."""
    from agent.support.manager import Phase

    session.phase = Phase.CONNECTING
    pc = RTCPeerConnection(configuration(session.ice_servers))
    session.pc = pc
    loop = asyncio.get_running_loop()
    _follow(manager, session, pc)
    session.media = manager.platform.support_media()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    session.remote_set = True
    pc.addTrack(session.media.video)
    pc.addTrack(session.media.audio)
    for candidate in session.pending:
        await pc.addIceCandidate(candidate)
    session.pending.clear()
    await pc.setLocalDescription(await pc.createAnswer())  # gathers every candidate
    if manager.session is not session:
        return  # ended meanwhile; `end` releases the connection
    manager.emit(session.session_id, "answer", sdp=pc.localDescription.sdp)

    def too_slow() -> None:
        if not session.connected:
            manager.spawn_end(session, "connection_failed", "ICE did not connect in time")

    session.timers.append(loop.call_later(manager.connect_timeout_s, too_slow))


def _follow(manager: SupportManager, session: Session, pc: RTCPeerConnection) -> None:
    """React to the connection's state, the professional's voice and the support channel."""

    @pc.on("connectionstatechange")
    def on_state() -> None:
        state = pc.connectionState
        if manager.session is not session:
            return
        if state == "connected" and not session.connected:
            session.connected = True
            kind = connection_type(pc)
            log.info("%s: support: connected (%s)", manager.label, kind)
            manager.emit(session.session_id, "connected", connection_type=kind)
            manager.on_connection(True)
        elif state == "failed":
            manager.spawn_end(session, "connection_failed", "ICE failed")

    @pc.on("track")
    def on_track(track: Any) -> None:
        # The professional's voice, played where the platform has a speaker.
        sink = MediaBlackhole()
        if track.kind == "audio" and session.media is not None and session.media.speaker:
            try:
                sink = session.media.speaker()
            except Exception as exc:  # no sound device after all: drop the voice, keep going
                log.info("%s: support: cannot play the voice: %s", manager.label, exc)
        sink.addTrack(track)
        session.sinks.append(sink)
        manager.background(sink.start(), session)

    @pc.on("datachannel")
    def on_channel(channel: Any) -> None:
        if channel.label != CHANNEL_LABEL or session.channel is not None:
            return
        session.channel = channel
        session.last_rx = manager._clock()
        channel.on("message", lambda raw: manager.on_channel_message(session, raw))
        manager.background(manager.heartbeat(session), session)


async def add_candidate(session: Session, signal: SessionSignal) -> None:
    """A candidate the browser found after its offer (trickle); "" ends them."""
    candidate = remote_candidate(signal.candidate or "", signal.sdp_mid, signal.sdp_mline_index)
    if not session.remote_set:
        session.pending.append(candidate)
        return
    await session.pc.addIceCandidate(candidate)


async def release(manager: SupportManager, session: Session) -> None:
    """Close the peer connection and stop the tracks; each step on its own."""
    if session.channel is not None and session.channel.readyState == "open":
        await asyncio.sleep(0.05)  # let a `bye` leave before the association is torn down
    steps: list[Any] = [sink.stop() for sink in session.sinks]
    if session.pc is not None:
        steps.append(session.pc.close())
    for step in steps:
        try:
            await step
        except Exception as exc:
            log.info("%s: support: clean-up step failed: %r", manager.label, exc)
    media = session.media
    if media is not None:
        for track in (media.video, media.audio):
            try:
                track.stop()
            except Exception as exc:
                log.info("%s: support: cannot stop a track: %r", manager.label, exc)
        if media.close is not None:
            try:
                await media.close()
            except Exception as exc:
                log.info("%s: support: cannot close the media: %r", manager.label, exc)
