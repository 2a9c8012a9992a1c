"""Two tenants, the same CIDR, different networks: no packet crosses, in either
direction, ARP included, driven through the Isthmus API on the embedded data plane.

Both tenants' servers are in a security group that lets ICMP and TCP in from
anywhere, so nothing but the segments keeps them apart. Each tenant has a server
in site-a and one in site-b. While one tenant probes the other's addresses (ICMP,
TCP, and so ARP broadcasts on its own segment), a frame watcher (tests/fabric/
sniff.py) runs on the other tenant's servers: it must see none of the first
tenant's frames, ARP or IP, while it does see its own peer's (the control that
it watches at all). Afterwards no server has the other tenant's addresses in its
neighbour table.

Needs root, FRR, nft and nsenter (skipped with the reason otherwise); the
`fabric` fixture of test_dataplane.py makes and tears everything down.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pytest

from tests.fabric import test_dataplane
from tests.fabric.api_support import FabricCloud
from tests.fabric.test_dataplane import MISSING, Fabric
from tests.waiting import wait_for

fabric = test_dataplane.fabric  # the fixture: 3 data-plane sites, torn down by record
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}"),
    pytest.mark.timeout(180),
]

CIDR = "10.70.0.0/24"
PORT = 8080
WATCH_SECONDS = 7.0


@dataclass(frozen=True)
class Tenant:
    name: str
    headers: dict[str, str]
    servers: tuple[str, ...]  # (in site-a, in site-b)
    ips: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()


@pytest.fixture
def api(fabric: Fabric) -> Iterator[FabricCloud]:
    cloud = FabricCloud(fabric)
    try:
        yield cloud
    finally:
        cloud.close()


def _tenant(api: FabricCloud, name: str, headers: dict[str, str], hosts: tuple[int, ...]) -> Tenant:
    net = api.network(headers, CIDR, f"{name}-net")
    group = api.group(headers, "open")
    api.add_rule(headers, group, protocol="icmp", remote_ip_prefix="0.0.0.0/0")
    api.add_rule(
        headers,
        group,
        protocol="tcp",
        port_range_min=PORT,
        port_range_max=PORT,
        remote_ip_prefix="0.0.0.0/0",
    )
    prefix = CIDR.rsplit(".", 1)[0]
    servers = tuple(
        api.boot(
            headers,
            f"{name}-{zone}",
            net,
            zone,
            groups=["open"],
            fixed_ip=f"{prefix}.{host}" if host else None,
        )
        for zone, host in zip(("site-a", "site-b"), hosts, strict=True)
    )
    return Tenant(name, headers, servers)


def _ready(api: FabricCloud, tenant: Tenant) -> Tenant:
    api.wait_active(tenant.headers, *tenant.servers)
    ips = tuple(api.ip(tenant.headers, s) for s in tenant.servers)
    macs = tuple(api.mac(tenant.headers, s).lower() for s in tenant.servers)
    for server in tenant.servers:
        api.serve_tcp(server, PORT)
    return replace(tenant, ips=ips, macs=macs)


def _probe_all(api: FabricCloud, source: Tenant, target: Tenant) -> list[str]:
    """Every server of `source` tries ICMP and TCP to every address of `target`; what
    got through (must be nothing when they are different tenants)."""
    jobs = [(s, ip, kind) for s in source.servers for ip in target.ips for kind in ("icmp", "tcp")]

    def run(job: tuple[str, str, str]) -> str:
        server, ip, kind = job
        ok = api.ping(server, ip, 1.0) if kind == "icmp" else api.tcp(server, ip, PORT, 1.0)
        return f"{kind} {server[:8]} -> {ip}" if ok else ""

    with ThreadPoolExecutor(4) as pool:
        return [r for r in pool.map(run, jobs) if r]


def _crossing(api: FabricCloud, prober: Tenant, watched: Tenant) -> list[dict[str, str]]:
    """Watch `watched`'s servers while `prober` probes them and `watched`'s own servers
    ping each other; the frames from `prober` that arrived (must be none)."""
    watchers = [api.watch(server, WATCH_SECONDS) for server in watched.servers]
    leaked = _probe_all(api, prober, watched)
    assert not leaked, f"{prober.name} reached {watched.name}: {leaked}"
    own = _probe_all(api, watched, watched)
    reports = [api.frames(w) for w in watchers]
    # the control: each watcher saw its own peer (the probes above ran while it watched)
    for index, frames in enumerate(reports):
        peer_mac = watched.macs[1 - index]
        assert any(f["src"] == peer_mac for f in frames), (
            f"watcher on {watched.name}'s server {index} saw none of its peer's frames: {own}"
        )
    foreign = set(prober.macs)
    foreign_ips = set(prober.ips)
    return [
        f for frames in reports for f in frames if f["src"] in foreign or f["sender"] in foreign_ips
    ]


def test_two_tenants_same_cidr_no_packet_crosses(api: FabricCloud) -> None:
    first = _tenant(api, "blue", api.demo, (0, 0))  # addresses from IPAM
    second = _tenant(api, "red", api.cloud.new_member("red"), (201, 202))
    blue, red = _ready(api, first), _ready(api, second)
    assert not set(blue.ips) & set(red.ips)  # distinct, so "no reply" is not one's own address
    nets = {
        api.call("GET", f"/network/v2.0/ports?device_id={t.servers[0]}", t.headers)["ports"][0][
            "network_id"
        ]
        for t in (blue, red)
    }
    assert len(nets) == 2

    # each tenant reaches itself across sites (the fabric works for both)
    for tenant in (blue, red):
        a, b = tenant.servers
        wait_for(
            lambda a=a, ip=tenant.ips[1]: api.ping(a, ip, 0.5),
            timeout=20,
            what=f"{tenant.name}: site-a to reach site-b",
        )
        assert api.ping(b, tenant.ips[0]) and api.tcp(a, tenant.ips[1], PORT)
        assert api.tcp(b, tenant.ips[0], PORT)

    # no frame of one tenant reaches the other's servers, either way, ARP included
    assert _crossing(api, blue, red) == []
    assert _crossing(api, red, blue) == []

    # nobody learnt a neighbour of the other tenant (an ARP request that crossed would
    # have left its sender in the receiver's table); the failed lookups stayed failed
    for tenant, other in ((blue, red), (red, blue)):
        for server in tenant.servers:
            table = api.neighbours(server)
            for ip in other.ips:
                state = table.get(ip, "")
                assert not state or state in ("FAILED", "INCOMPLETE"), (tenant.name, ip, table)
            assert any(ip in table for ip in tenant.ips), (tenant.name, table)
