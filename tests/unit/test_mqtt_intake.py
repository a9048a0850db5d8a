"""The ingest's paho client: buffered reads and one write for a batch's PUBACKs."""

from __future__ import annotations

import socket
import struct

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from lainaamo.mqtt import BufferedSocket, IntakeClient


def test_buffered_reads_hand_out_the_stream_in_order_and_report_what_is_left() -> None:
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        reader = BufferedSocket(b)
        a.sendall(b"\x30\x05hello\x30\x03abc")
        assert reader.recv(1) == b"\x30"  # one kernel read fills the buffer
        assert reader.pending() == 11
        assert reader.recv(1) == b"\x05"
        assert reader.recv(5) == b"hello"
        assert reader.recv(100) == b"\x30\x03abc"  # never more than is buffered
        assert reader.pending() == 0
        with pytest.raises(BlockingIOError):  # nothing buffered, nothing on the socket
            reader.recv(1)
        a.sendall(b"xy")
        assert reader.recv(2) == b"xy"  # a read that takes all the kernel had
        assert reader.pending() == 0
        a.close()
        assert reader.recv(1) == b""  # end of stream is passed on
        assert reader.fileno() == b.fileno()  # everything else is the socket's
    finally:
        a.close()
        b.close()


def test_ack_many_queues_one_write_of_every_puback() -> None:
    client = IntakeClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=paho.MQTTv5)
    client.manual_ack_set(True)
    client.ack_many([1, 300, 65535])
    (queued,) = client._out_packet  # noqa: SLF001 - what paho will write
    assert queued["packet"] == b"".join(struct.pack("!BBH", 0x40, 2, m) for m in (1, 300, 65535))
    assert queued["to_process"] == 12
    client.ack_many([])
    assert len(client._out_packet) == 1  # noqa: SLF001 - nothing to acknowledge, nothing queued


def test_ack_many_does_nothing_when_paho_acknowledges_by_itself() -> None:
    client = IntakeClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=paho.MQTTv5)
    client.ack_many([1, 2])
    assert not client._out_packet  # noqa: SLF001
