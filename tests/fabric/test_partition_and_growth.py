"""The embedded data plane under a WAN partition and while a network grows to a
new site, end to end through the engine (FRR BGP EVPN, timers 3/9).

- Partition: site-c's WAN link (its veth `w<N>` on `br-wan` in the fabric's WAN
  namespace) goes down; site-a <-> site-b keep answering, site-c is unreachable
  and its BGP sessions drop; the link comes back and traffic to site-c resumes by
  itself within a bounded retry.
- Growth: a network in three sites is extended to a fourth site (site-d, added at
  run time the way the admin API adds a site); its server pings the others.

Needs root, FRR, nft and nsenter (skipped with the reason otherwise); everything
is made and torn down by the `fabric` fixture of test_dataplane.py.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time

import pytest

from isthmus.engine.health import check_site
from isthmus.fabric.dataplane import UNDERLAY
from isthmus.service import Service
from isthmus.store import repo
from isthmus.store.tables import Site
from tests.fabric import test_dataplane
from tests.fabric.test_dataplane import MISSING, Fabric
from tests.support import add_network, add_server, project_id
from tests.waiting import wait_for

fabric = test_dataplane.fabric  # the fixture: 3 data-plane sites, torn down by record
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}"),
    pytest.mark.timeout(120),
]

RECOVERY = 20.0  # BGP timers 3/9, connect 1: a re-established session well within this


def _wan_link(fab: Fabric, site: str) -> str:
    """The WAN-side veth of the site's uplink (`w<host part of its VTEP>`)."""
    vtep = ipaddress.ip_address(fab.fabric.vteps()[site])
    return f"w{int(vtep) - int(UNDERLAY.network_address)}"


def _set_link(fab: Fabric, ifname: str, up: bool) -> None:
    from pyroute2 import IPRoute

    with IPRoute(netns=fab.fabric.wan_namespace) as wan:
        (index,) = wan.link_lookup(ifname=ifname)
        wan.link("set", index=index, state="up" if up else "down")


def _bgp_state(fab: Fabric, site: str, peer: str) -> str:
    """The state of `site`'s l2vpn-evpn session to `peer` ('' if not listed)."""
    shown = subprocess.run(
        ["vtysh", "-N", fab.fabric.site_namespace(site), "-c", "show bgp l2vpn evpn summary json"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    try:
        summary = json.loads(shown)
    except ValueError:
        return ""
    peers = summary.get("peers") or summary.get("l2VpnEvpn", {}).get("peers") or {}
    return str(peers.get(peer, {}).get("state", ""))


def _add_site(service: Service, name: str) -> None:
    """Register a data-plane embedded site at run time, as POST /admin/sites does
    (row, forget any cached driver, check it at once)."""
    with service.db.session() as session:
        session.add(
            Site(
                name=name,
                driver="local",
                config={"boot_seconds": 0.0, "data_plane": True},
                enabled=True,
                health="unknown",
                capacity={},
                usage={},
                allocated={},
                created_at=repo.utcnow(),
            )
        )
    service.sites.forget(name)
    assert check_site(service.db, service.sites, name) == "up"


def test_partition_of_one_site_and_recovery(fabric: Fabric) -> None:
    service = fabric.service
    demo = project_id(service)
    net, _ = add_network(service, demo, "10.20.0.0/24", "partitioned")
    servers = {s: add_server(service, demo, net, s, az=f"site-{s}") for s in "abc"}
    fabric.settle()
    a, b, c = servers["a"], servers["b"], servers["c"]
    ip = {server: fabric.ip_of(server) for server in servers.values()}
    for source in (a, b, c):
        for target in (a, b, c):
            if source != target:
                fabric.wait_ping(source, ip[target])

    uplink = _wan_link(fabric, "site-c")
    vtep_c = fabric.fabric.vteps()["site-c"]
    assert _bgp_state(fabric, "site-a", vtep_c) == "Established"
    _set_link(fabric, uplink, up=False)
    cut = time.monotonic()
    try:
        rounds = 0

        def dropped_after_a_round() -> bool:
            """True once the session is down; until then one round of checks."""
            nonlocal rounds
            if _bgp_state(fabric, "site-a", vtep_c) != "Established":
                return True
            fabric.wait_ping(a, ip[b], timeout=3)
            fabric.wait_ping(b, ip[a], timeout=3)
            assert not fabric.ping(a, ip[c], wait=0.3), "site-c answered while cut off"
            assert not fabric.ping(c, ip[b], wait=0.3), "site-c reached site-b while cut off"
            rounds += 1
            return False

        wait_for(
            dropped_after_a_round,
            timeout=15,
            interval=0,
            what="site-a's session to site-c to drop (it must not outlive hold time)",
        )
        dropped = time.monotonic() - cut
        fabric.wait_ping(a, ip[b], timeout=3)  # and still after the session to c dropped
        fabric.wait_ping(b, ip[a], timeout=3)
        assert not fabric.ping(b, ip[c], wait=0.3)
    finally:
        _set_link(fabric, uplink, up=True)
    restored = time.monotonic()
    first = fabric.wait_ping(a, ip[c], timeout=RECOVERY)
    for source, target in ((c, a), (b, c), (c, b)):
        fabric.wait_ping(source, ip[target], timeout=RECOVERY)
    print(
        f"\npartition of site-c ({uplink} down): a<->b answered in {rounds} rounds, BGP"
        f" session dropped after {dropped:.1f}s; a->c answered {first:.2f}s after link up,"
        f" all pairs {time.monotonic() - restored:.2f}s"
    )


def test_network_grows_to_a_fourth_site(fabric: Fabric) -> None:
    service = fabric.service
    demo = project_id(service)
    net, _ = add_network(service, demo, "10.30.0.0/24", "growing")
    others = [add_server(service, demo, net, s, az=f"site-{s}") for s in "abc"]
    fabric.settle()
    fabric.wait_ping(others[0], fabric.ip_of(others[1]))
    fabric.wait_ping(others[0], fabric.ip_of(others[2]))

    _add_site(service, "site-d")
    service.engine.start()  # worker threads, so ACTIVE is seen when it happens
    asked = time.monotonic()
    d = add_server(service, demo, net, "d", az="site-d")
    service.wake()

    def active() -> bool:
        status = fabric.resource(d).status
        if status == "ACTIVE":
            return True
        assert status == "BUILD", status
        return False

    wait_for(
        active,
        timeout=30 - (time.monotonic() - asked),
        interval=0.01,
        what="server in site-d ACTIVE",
    )
    active = time.monotonic()
    assert fabric.resource(d).site == "site-d"
    first = fabric.wait_ping(d, fabric.ip_of(others[0]), timeout=RECOVERY)
    for other in others:
        fabric.wait_ping(d, fabric.ip_of(other), timeout=RECOVERY)
        fabric.wait_ping(other, fabric.ip_of(d), timeout=RECOVERY)
    print(
        f"\nsite-d joined the network: first ping answered {first:.2f}s after ACTIVE"
        f" ({active - asked:.2f}s from asking to ACTIVE); all pairs with d"
        f" {time.monotonic() - active:.2f}s after ACTIVE"
    )
