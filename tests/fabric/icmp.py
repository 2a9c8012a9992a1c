"""A one-shot ICMP echo run inside a namespace (the machines may have no `ping`):
`nsenter --net=<ns> python -m tests.fabric.icmp TARGET TIMEOUT` exits 0 on a reply."""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo(target: str, timeout: float) -> bool:
    ident = os.getpid() & 0xFFFF
    payload = b"isthmus-probe"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        try:
            sock.sendto(packet, (target, 0))
        except OSError:
            return False  # e.g. no route, or the output chain dropped it
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return False
            data, (source, _) = sock.recvfrom(2048)
            offset = (data[0] & 0x0F) * 4
            kind, _, _, got_id, _ = struct.unpack("!BBHHH", data[offset : offset + 8])
            if kind == 0 and got_id == ident and source == target:
                return True
    return False


if __name__ == "__main__":
    sys.exit(0 if echo(sys.argv[1], float(sys.argv[2])) else 1)
