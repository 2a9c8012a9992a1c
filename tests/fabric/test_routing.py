"""Routers and floating IPs in the embedded data plane, end to end through the API
and the engine (real namespaces, real packets; fabric/routing.py):

- routed: two subnets, one router, a server on each in different sites reach each
  other through the router's copies in their own sites; the router MAC (the same in
  every site) is in no EVPN table; detaching an interface stops the traffic;
- extra routes: a route the router gets through the API (to an address a server
  holds behind its fixed IP) carries traffic from the other site; two nexthops for
  one destination are one multipath route; the routes go while the router is down
  and come back with it; removing the route stops the traffic;
- floating IP: a client on the external network of a site reaches a server there
  through its floating IP, the server's traffic leaves with the floating IP as
  source, and after the floating IP is deleted, with the router's gateway address.

Needs root, FRR, nft and nsenter (skipped otherwise); the `fabric` fixture of
test_dataplane.py makes the sites and tears everything down by its own record; the
client namespace this test adds is removed by its exact name.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from isthmus.fabric.dataplane import NETNS_DIR, nsexec
from isthmus.fabric.routing import EXTRA_ROUTE_PROTO, Routers, external_bridge
from tests.api.test_compute import boot_ok
from tests.api.test_network import api, create, make_network
from tests.fabric import test_dataplane
from tests.fabric.test_dataplane import MISSING, ROOT, Fabric
from tests.support import Cloud

fabric = test_dataplane.fabric  # the fixture: 3 data-plane sites, torn down by record
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}"),
    pytest.mark.timeout(180),
]

CLIENT_IP = "203.0.113.250"


def _port_of(cloud: Cloud, server_id: str) -> dict[str, Any]:
    (port,) = api(cloud, "GET", f"/ports?device_id={server_id}", status=200)["ports"]
    return port


def _interface(cloud: Cloud, router_id: str, verb: str, subnet_id: str) -> dict[str, Any]:
    path = f"/routers/{router_id}/{verb}_router_interface"
    return api(cloud, "PUT", path, body={"subnet_id": subnet_id}, status=200)


def _evpn_macs(fab: Fabric, site: str, vni: int) -> dict[str, Any]:
    shown = subprocess.run(
        ["vtysh", "-N", fab.fabric.site_namespace(site), "-c", f"show evpn mac vni {vni} json"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return dict(json.loads(shown).get("macs") or {})


def test_routed_between_sites_and_detach(fabric: Fabric) -> None:
    cloud = Cloud(fabric.service)
    net1, sub1 = make_network(cloud, cidr="10.1.0.0/24", name="one")
    net2, sub2 = make_network(cloud, cidr="10.2.0.0/24", name="two")
    router = create(cloud, "routers", "router", name="r")["id"]
    _interface(cloud, router, "add", sub1["id"])
    added = _interface(cloud, router, "add", sub2["id"])
    a = boot_ok(cloud, net1["id"], "a", availability_zone="site-a")
    b = boot_ok(cloud, net2["id"], "b", availability_zone="site-b")
    fabric.settle()
    routers = Routers(fabric.fabric)
    for site in ("site-a", "site-b"):
        assert (NETNS_DIR / routers.namespace(site, router)).exists()
    assert not (NETNS_DIR / routers.namespace("site-c", router)).exists()
    a_ip, b_ip = fabric.ip_of(a), fabric.ip_of(b)
    assert a_ip.startswith("10.1.0.") and b_ip.startswith("10.2.0.")
    first = fabric.wait_ping(a, b_ip)
    fabric.wait_ping(b, a_ip)
    print(f"\nfirst routed cross-site ping {first:.2f}s after the engine went idle")

    # the router's MAC (the same in both sites) never reached BGP EVPN
    router_macs = {
        p["mac_address"] for p in api(cloud, "GET", f"/ports?device_id={router}")["ports"]
    }
    server_macs = {_port_of(cloud, a)["mac_address"], _port_of(cloud, b)["mac_address"]}
    vnis = [fabric.resource(n["id"]).spec["segmentation_id"] for n in (net1, net2)]
    for site in ("site-a", "site-b"):
        seen: set[str] = set()
        for vni in vnis:
            macs = set(_evpn_macs(fabric, site, vni))
            assert not macs & router_macs, (site, macs)
            seen |= macs
        assert server_macs <= seen  # the servers' MACs did

    # A's packets to its gateway stay in site-a: site-b's copy of the router does not
    # receive them on its net1 leg (only B's answers leave through that leg)
    port1 = next(
        p
        for p in api(cloud, "GET", f"/ports?device_id={router}")["ports"]
        if p["network_id"] == net1["id"]
    )

    def pings() -> None:
        for _ in range(5):
            assert fabric.ping(a, b_ip)

    leg = f"qr{port1['id'].replace('-', '')[:12]}"
    home, away = _frames_on(
        [(routers.namespace(site, router), leg) for site in ("site-a", "site-b")], pings
    )
    # only A's IPv4 packets to B count (not the ARP and broadcast noise of the segment)
    assert len(_ipv4(home, a_ip, b_ip)) >= 5  # site-a's copy routed them (the watcher works)
    crossed = _ipv4(away, a_ip, b_ip)
    assert len(crossed) < 5, f"site-b's router got {len(crossed)} packets from A's pings"

    # detach net2: the router keeps net1 only; A no longer reaches B, nor B A
    _interface(cloud, router, "remove", sub2["id"])
    fabric.settle()
    assert not fabric.ping(a, b_ip, wait=1.0)
    assert not fabric.ping(b, a_ip, wait=1.0)
    assert not (NETNS_DIR / routers.namespace("site-b", router)).exists()
    assert added["port_id"] not in {
        p["id"] for p in api(cloud, "GET", f"/ports?device_id={router}")["ports"]
    }


BEHIND = "10.77.0.1"  # an address server X holds on its loopback, behind its fixed IP


def _extra_routes(namespace: str) -> dict[str, set[str]]:
    """The router copy's extra routes (protocol EXTRA_ROUTE_PROTO): CIDR -> nexthops."""
    from pyroute2 import IPRoute

    found: dict[str, set[str]] = {}
    with IPRoute(netns=namespace) as ipr:
        for route in ipr.get_routes(family=socket.AF_INET, proto=EXTRA_ROUTE_PROTO):
            dst = f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"
            hops = [h.get_attr("RTA_GATEWAY") for h in route.get_attr("RTA_MULTIPATH") or []]
            found[dst] = {h for h in [*hops, route.get_attr("RTA_GATEWAY")] if h}
    return found


def test_extra_routes_carry_traffic_between_sites(fabric: Fabric) -> None:
    cloud = Cloud(fabric.service)
    net1, sub1 = make_network(cloud, cidr="10.1.0.0/24", name="one")
    net2, sub2 = make_network(cloud, cidr="10.2.0.0/24", name="two")
    router = create(cloud, "routers", "router", name="r")["id"]
    _interface(cloud, router, "add", sub1["id"])
    _interface(cloud, router, "add", sub2["id"])
    x = boot_ok(cloud, net1["id"], "x", availability_zone="site-a")
    y = boot_ok(cloud, net2["id"], "y", availability_zone="site-b")
    fabric.settle()
    x_ip = fabric.ip_of(x)
    fabric.wait_ping(y, x_ip)  # both in the default group: routed, allowed
    added = nsexec(fabric.namespace(x), ["ip", "addr", "add", f"{BEHIND}/32", "dev", "lo"])
    assert added.returncode == 0, added.stderr
    assert not fabric.ping(y, BEHIND, wait=0.5), "reached without a route"
    copies = [Routers(fabric.fabric).namespace(site, router) for site in ("site-a", "site-b")]

    # the route, through the API: Y (site-b) reaches the address behind X (site-a)
    route = {"destination": "10.77.0.0/24", "nexthop": x_ip}
    api(cloud, "PUT", f"/routers/{router}", body={"router": {"routes": [route]}}, status=200)
    fabric.settle()
    for copy in copies:
        assert _extra_routes(copy) == {"10.77.0.0/24": {x_ip}}, copy
    fabric.wait_ping(y, BEHIND)

    # a second destination with two nexthops: one multipath route in every copy
    both = [{"destination": "10.88.0.0/24", "nexthop": n} for n in (x_ip, "10.1.0.200")]
    body = {"router": {"routes": both}}
    api(cloud, "PUT", f"/routers/{router}/add_extraroutes", body=body, status=200)
    fabric.settle()
    for copy in copies:
        assert _extra_routes(copy) == {
            "10.77.0.0/24": {x_ip},
            "10.88.0.0/24": {x_ip, "10.1.0.200"},
        }, copy
    assert fabric.ping(y, BEHIND)

    # down, the router routes nothing and holds no extra route; up, they come back
    api(cloud, "PUT", f"/routers/{router}", body={"router": {"admin_state_up": False}})
    fabric.settle()
    assert all(_extra_routes(copy) == {} for copy in copies)
    assert not fabric.ping(y, BEHIND, wait=0.5)
    api(cloud, "PUT", f"/routers/{router}", body={"router": {"admin_state_up": True}})
    fabric.settle()
    assert all(len(_extra_routes(copy)) == 2 for copy in copies)
    fabric.wait_ping(y, BEHIND)

    # removing the route stops the traffic; the other route stays
    body = {"router": {"routes": [route]}}
    api(cloud, "PUT", f"/routers/{router}/remove_extraroutes", body=body, status=200)
    fabric.settle()
    for copy in copies:
        assert _extra_routes(copy) == {"10.88.0.0/24": {x_ip, "10.1.0.200"}}, copy
    assert not fabric.ping(y, BEHIND, wait=1.0), "reached after the route was removed"
    assert fabric.ping(y, x_ip)  # the router itself still routes
    api(cloud, "PUT", f"/routers/{router}", body={"router": {"routes": []}}, status=200)
    fabric.settle()
    assert all(_extra_routes(copy) == {} for copy in copies)


def _frames_on(
    interfaces: list[tuple[str, str]], traffic: Callable[[], None]
) -> list[list[dict[str, str]]]:
    """The frames each (namespace, ifname) receives while `traffic()` runs: a watcher
    (tests/fabric/sniff.py) per interface, started before and collected after, each
    ended by its own handle."""
    watchers = []
    try:
        for namespace, ifname in interfaces:
            argv = ["nsenter", f"--net={NETNS_DIR / namespace}", sys.executable, "-m"]
            watcher = subprocess.Popen(
                [*argv, "tests.fabric.sniff", ifname, "3"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            watchers.append(watcher)
            assert watcher.stdout is not None and watcher.stdout.readline().strip() == "ready"
        traffic()
        return [list(json.loads(w.communicate(timeout=30)[0])) for w in watchers]
    finally:
        for watcher in watchers:
            if watcher.poll() is None:
                watcher.kill()  # our own child, by its pid
                watcher.wait(timeout=5)


def _ipv4(frames: list[dict[str, str]], source: str, target: str) -> list[dict[str, str]]:
    return [
        f for f in frames if f["type"] == "ipv4" and (f["sender"], f["target"]) == (source, target)
    ]


def _client(fab: Fabric, site: str, network_id: str) -> str:
    """A namespace plugged into the site's provider segment of the external network,
    with CLIENT_IP/24 and no route beyond it."""
    from pyroute2 import IPRoute, netns

    name = f"{fab.fabric.prefix}-client"
    netns.create(name)
    with IPRoute(netns=fab.fabric.site_namespace(site)) as gw:
        gw.link("add", ifname="cl0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": name})
        (bridge,) = gw.link_lookup(ifname=external_bridge(network_id))
        (outer,) = gw.link_lookup(ifname="cl0")
        gw.link("set", index=outer, master=bridge, state="up")
    with IPRoute(netns=name) as client:
        (inner,) = client.link_lookup(ifname="eth0")
        client.addr("add", index=inner, address=CLIENT_IP, prefixlen=24)
        client.link("set", index=inner, state="up")
        (lo,) = client.link_lookup(ifname="lo")
        client.link("set", index=lo, state="up")
    return name


def _probe(namespace: str, target: str, wait: float = 1.0) -> bool:
    probe = [sys.executable, "-m", "tests.fabric.icmp", target, str(wait)]
    return nsexec(namespace, probe, timeout=10, cwd=ROOT).returncode == 0


RECEIVE = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0',9999)); s.settimeout(float(sys.argv[1]))\n"
    "print('ready',flush=True)\n"
    "_,peer=s.recvfrom(64); print(peer[0],flush=True)\n"
)
SEND = "import socket,sys\nsocket.socket(2,2).sendto(b'x',(sys.argv[1],9999))\n"


def _source_seen(fab: Fabric, client: str, server: str) -> str:
    """The source address the client sees on a datagram the server sends it."""
    argv = ["nsenter", f"--net={NETNS_DIR / client}", sys.executable, "-c", RECEIVE, "5"]
    listener = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        sent = nsexec(fab.namespace(server), [sys.executable, "-c", SEND, CLIENT_IP], timeout=10)
        assert sent.returncode == 0, sent.stderr
        out, _ = listener.communicate(timeout=10)
        return out.strip()
    finally:
        if listener.poll() is None:
            listener.kill()  # our own child, by its pid
            listener.wait(timeout=5)


def test_floating_ip_dnat_snat_and_delete(fabric: Fabric) -> None:
    cloud = Cloud(fabric.service)
    public = create(
        cloud, "networks", "network", cloud.admin, name="public", **{"router:external": True}
    )
    create(
        cloud,
        "subnets",
        "subnet",
        cloud.admin,
        network_id=public["id"],
        cidr="203.0.113.0/24",
        ip_version=4,
        allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.99"}],
    )
    net, sub = make_network(cloud, cidr="10.1.0.0/24", name="inside")
    router = create(
        cloud, "routers", "router", name="r", external_gateway_info={"network_id": public["id"]}
    )
    gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    _interface(cloud, router["id"], "add", sub["id"])
    (default,) = api(cloud, "GET", "/security-groups?name=default", status=200)["security_groups"]
    rule = {"security_group_id": default["id"], "direction": "ingress", "protocol": "icmp"}
    create(cloud, "security-group-rules", "security_group_rule", **rule)
    server = boot_ok(cloud, net["id"], "web", availability_zone="site-b")
    fabric.settle()
    fip = create(
        cloud,
        "floatingips",
        "floatingip",
        floating_network_id=public["id"],
        port_id=_port_of(cloud, server)["id"],
    )
    fabric.settle()
    shown = api(cloud, "GET", f"/floatingips/{fip['id']}", status=200)["floatingip"]
    assert shown["status"] == "ACTIVE"
    address = fip["floating_ip_address"]

    client = _client(fabric, "site-b", public["id"])
    try:
        started = time.monotonic()
        assert _probe(client, address, wait=3.0), "client cannot reach the floating IP"
        print(f"\nfloating IP answered {time.monotonic() - started:.2f}s after the engine idled")
        assert _source_seen(fabric, client, server) == address  # SNAT to the floating IP
        assert _probe(client, gateway_ip)  # the router's own gateway address answers

        api(cloud, "DELETE", f"/floatingips/{fip['id']}", status=204)
        fabric.settle()
        assert not _probe(client, address, wait=1.0), "floating IP still answers"
        assert _source_seen(fabric, client, server) == gateway_ip  # the router's SNAT
    finally:
        from pyroute2 import netns

        netns.remove(client)  # by its exact name; its veth goes with it
    assert not (NETNS_DIR / client).exists()
