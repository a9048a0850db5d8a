"""Remote-support signaling: session state and the WebRTC offer/answer relay.

Empty until the remote-support issue lands; the package exists so that the layout of the
product (server, agent, signaling, monitoring) is stable from the first release.
"""
