"""aiortc helpers: ICE servers from a request, trickled candidates, the connection type."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

log = logging.getLogger(__name__)

CONNECTION_TYPES = ("host", "srflx", "prflx", "relay")


def configuration(ice_servers: Sequence[dict[str, Any]] | None) -> RTCConfiguration:
    """`RTCConfiguration` of the request's servers; none given means host candidates only.

    An explicit empty list matters: with None aiortc would fall back to a public STUN server.
    """
    servers = [
        RTCIceServer(
            urls=list(server["urls"]),
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in ice_servers or []
    ]
    return RTCConfiguration(iceServers=servers)


def remote_candidate(
    line: str, sdp_mid: str | None, sdp_mline_index: int | None
) -> RTCIceCandidate | None:
    """A trickled candidate ('candidate:…' or the bare value); None for the end of candidates."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("a="):
        line = line[2:]
    candidate = candidate_from_sdp(line.removeprefix("candidate:"))
    candidate.sdpMid = sdp_mid
    candidate.sdpMLineIndex = sdp_mline_index
    if sdp_mid is None and sdp_mline_index is None:
        candidate.sdpMLineIndex = 0  # bundled: the first m-line carries the transport
    return candidate


def connection_type(pc: RTCPeerConnection) -> str:
    """The type of the local candidate of the nominated pair; "host" if it cannot be found."""
    transports: list[Any] = []
    sctp = getattr(pc, "sctp", None)
    if sctp is not None:
        transports.append(sctp.transport.transport)
    for transceiver in pc.getTransceivers():
        transport = transceiver.sender.transport
        if transport is not None:
            transports.append(transport.transport)
    for ice in transports:
        connection = getattr(ice, "_connection", None)
        nominated = getattr(connection, "_nominated", None) or {}
        for pair in nominated.values():
            kind = getattr(getattr(pair, "local_candidate", None), "type", None)
            if kind in CONNECTION_TYPES:
                return str(kind)
    return "host"
