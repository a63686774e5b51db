"""Transports: how Raft messages travel between nodes.

:class:`TcpTransport` (the default) and :class:`UdpTransport` authenticate every peer
with the cluster secret and carry messages in the compact frames of
:mod:`replobj.transport.codec` (never pickle). :class:`MemoryNetwork` connects nodes in
one process; :class:`FaultyTransport` wraps any of them to inject loss, delay,
duplication and partitions. The wire format is described in ``docs/wire.md``.
"""

from __future__ import annotations

from .base import Address, Transport, TransportStats
from .codec import WIRE_VERSION, decode_frame, decode_frames, encode_frame
from .faulty import FaultStats, FaultyTransport
from .memory import MemoryNetwork, MemoryTransport
from .tcp import TcpTransport
from .udp import UdpTransport

__all__ = [
    "WIRE_VERSION",
    "Address",
    "FaultStats",
    "FaultyTransport",
    "MemoryNetwork",
    "MemoryTransport",
    "TcpTransport",
    "Transport",
    "TransportStats",
    "UdpTransport",
    "decode_frame",
    "decode_frames",
    "encode_frame",
]
