"""Remote support on the device: consent, the WebRTC peer, media and the data channel.

See docs/protocol.md §17. aiortc runs in one asyncio event loop on a daemon thread
(`agent.support.runtime`), shared by every agent of the process; the MQTT side hands it
signals and gets its events back through `agent.support.host.SupportHost`.
"""
