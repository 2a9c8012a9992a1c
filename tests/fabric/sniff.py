"""A packet watcher run inside a server's namespace: did any frame arrive?

    nsenter --net=<ns> python -m tests.fabric.sniff IFNAME SECONDS

binds an AF_PACKET socket to IFNAME (every ethertype), prints `ready` once bound,
and after SECONDS prints one JSON list of the frames it RECEIVED (outgoing ones are
left out): {"src": MAC, "type": "arp"|"ipv4"|"0x86dd"..., "sender": IP, "target": IP}
(sender/target: the ARP sender/target protocol address, or the IPv4 source and
destination). ARP requests are broadcast, so a watcher on a segment sees them even
when nobody answers: the way to tell whether ARP crossed into a segment.
"""

from __future__ import annotations

import json
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw) if len(raw) == 4 else ""


def describe(frame: bytes) -> dict[str, str]:
    src = frame[6:12].hex(":")
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0806:
        return {"src": src, "type": "arp", "sender": _ip(frame[28:32]), "target": _ip(frame[38:42])}
    if ethertype == 0x0800:
        return {
            "src": src,
            "type": "ipv4",
            "sender": _ip(frame[26:30]),
            "target": _ip(frame[30:34]),
        }
    return {"src": src, "type": hex(ethertype), "sender": "", "target": ""}


def watch(ifname: str, seconds: float) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.bind((ifname, 0))
        print("ready", flush=True)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                frame, address = sock.recvfrom(65535)
            except TimeoutError:
                break
            if address[2] != PACKET_OUTGOING:
                seen.append(describe(frame))
    return seen


if __name__ == "__main__":
    print(json.dumps(watch(sys.argv[1], float(sys.argv[2]))), flush=True)
