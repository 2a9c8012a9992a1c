"""Routers and floating IPs in the embedded data plane (next to dataplane.py).

A router present in a site is a namespace `<prefix>-r-<router id[:12]>-<site>`
with `net.ipv4.ip_forward=1` (IPv6 off):

- per attached network a veth `qr<port id[:12]>` (in the router) / `rq<port id[:12]>`
  (a port of that network's bridge `br<VNI>` in the site gateway), carrying the
  interface port's MAC and fixed IP (the subnet's gateway IP), MTU 1450;
- with an external gateway, a veth `qg<router id[:12]>` / `rg<router id[:12]>` into
  the site's provider bridge of that external network (below), with the gateway
  port's address, a default route via the external subnet's gateway IP, and the
  floating IPs of the site as /32 addresses (so the router answers ARP for them);
- its extra routes (extraroute; IPv4 only, IPv6 ones are control-plane only) in its
  main table, protocol and metric 188, via their nexthops on its legs (several
  nexthops for one destination: one multipath route), none while it is down;
- nftables table `ip isthmus_nat`: per floating IP a DNAT (floating -> fixed) and
  an SNAT (fixed -> floating) out of `qg`, then, if `enable_snat`, an SNAT of the
  router's inside subnets to the gateway address.

Distributed gateway. The router is in every site one of its networks is in, with
the same interface addresses and MACs in each, so a server's gateway (IP and MAC)
is the same wherever it runs and each site routes its own servers' traffic: a
packet from a server in site-a to a subnet whose servers are in site-b is routed
by site-a's copy and bridged over VXLAN to site-b; the answer is routed by site-b's
copy. The same MAC in several sites must not reach BGP EVPN, or the sites would
advertise it in turn (a MAC move each time, then duplicate detection). So:
- learning is off on the `rq` bridge ports (and on the VXLAN ports, as for every
  network), so no bridge ever has an fdb entry for the router MAC and zebra never
  advertises it; a frame to the router MAC is flooded in the site's bridge;
- a bridge-family nftables table `bridge isthmus_r<router id[:12]>` in the site
  gateway keeps traffic to the router MAC in its site (`oifname vxlan<VNI> ether
  daddr <MAC>` dropped, except ARP) and keeps each site's ARP answers for the
  gateway IP at home (ARP replies from `rq...` out of `vxlan<VNI>` dropped).
ARP replies to the router MAC do cross sites (flooded): the copy of the router
that asked for a server in another site gets its answer; the other copies ignore
it. tests/fabric/test_routing.py checks the router MAC is in no EVPN table.

External networks. An external network (`router:external`) is not a VXLAN segment:
each site has its own provider segment of it, a bridge `ex<network id[:12]>` in the
site gateway (no address, no uplink: whatever is plugged into it is "outside" for
that site, as a real provider network would be). The same subnet is used in every
site; a router's gateway address appears once per site, each in its own segment,
and a floating IP only in the site of its server.

Every call looks before it creates; namespaces are recorded in the fabric's state
before they are made and removed by exact name (dataplane.EmbeddedFabric).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from isthmus.fabric.dataplane import (
    NETNS_DIR,
    SERVER_MTU,
    EmbeddedFabric,
    FabricError,
    _ignore,
    _index,
    _ipr,
    nsexec,
)

NAT_TABLE = "ip isthmus_nat"
EXTERNAL_MTU = 1500
EXTRA_ROUTE_PROTO = 188  # the route protocol number that marks a router's extra routes
EXTRA_ROUTE_METRIC = 188  # their metric: a connected or default route of the same prefix wins


@dataclass(frozen=True)
class RouterLeg:
    """One interface of a router on a tenant network."""

    port_id: str
    vni: int
    mac: str
    addresses: tuple[tuple[str, int], ...]  # (ip, prefixlen)
    cidrs: tuple[str, ...] = ()  # the subnets behind it (SNAT sources)


@dataclass(frozen=True)
class ExternalLeg:
    """A router's gateway on the site's provider segment of an external network."""

    network_id: str
    mac: str
    address: str
    prefixlen: int
    gateway: str | None = None
    snat: bool = True


@dataclass(frozen=True)
class FloatingNat:
    floating: str
    fixed: str


def _short(identifier: str) -> str:
    return identifier.replace("-", "")[:12]


def external_bridge(network_id: str) -> str:
    """The provider bridge of an external network in a site gateway."""
    return f"ex{_short(network_id)}"


def _bridge_table(router_id: str) -> str:
    return f"bridge isthmus_r{_short(router_id)}"


def render_nat(
    router_id: str,
    external: ExternalLeg | None,
    legs: Iterable[RouterLeg],
    fips: Iterable[FloatingNat],
) -> str:
    """The router's NAT table, replacing the previous one atomically (only removing
    it when there is nothing to translate)."""
    reset = f"table {NAT_TABLE} {{}}\ndelete table {NAT_TABLE}\n"
    if external is None:
        return reset
    oif = f'oifname "qg{_short(router_id)}"'
    pre, post = [], []
    for fip in sorted(fips, key=lambda f: f.floating):
        pre.append(f"  ip daddr {fip.floating} dnat to {fip.fixed}")
        post.append(f"  {oif} ip saddr {fip.fixed} snat to {fip.floating}")
    inside = sorted({cidr for leg in legs for cidr in leg.cidrs})
    if external.snat and inside:
        post.append(f"  {oif} ip saddr {{ {', '.join(inside)} }} snat to {external.address}")
    if not pre and not post:
        return reset
    return (
        reset
        + f"table {NAT_TABLE} {{\n"
        + " chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n"
        + "".join(line + "\n" for line in pre)
        + " }\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n"
        + "".join(line + "\n" for line in post)
        + " }\n}\n"
    )


def render_gateway_filter(router_id: str, legs: Iterable[RouterLeg]) -> str:
    """The site gateway's bridge rules that keep the router's MAC in its site."""
    table = _bridge_table(router_id)
    lines = [f"table {table} {{}}", f"delete table {table}"]
    rules = []
    for leg in legs:
        vxlan = f'"vxlan{leg.vni}"'
        rules.append(f"  oifname {vxlan} ether daddr {leg.mac.lower()} ether type != arp drop")
        rules.append(
            f'  iifname "rq{_short(leg.port_id)}" oifname {vxlan} arp operation reply drop'
        )
    if rules:
        lines += [
            f"table {table} {{",
            " chain forward {",
            "  type filter hook forward priority 0; policy accept;",
            *rules,
            " }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _nft(namespace: str, ruleset: str) -> None:
    result = nsexec(namespace, ["nft", "-f", "-"], input=ruleset, timeout=30)
    if result.returncode != 0:
        raise FabricError(f"nft in {namespace} failed: {result.stderr.strip()}")


def _sysctls(namespace: str, values: dict[str, str]) -> None:
    """Write /proc/sys entries as seen from `namespace` (a thread joins it: setns
    only moves the calling thread, and /proc/sys/net follows the thread's netns)."""
    failure: list[BaseException] = []

    def write() -> None:
        from pyroute2 import netns

        try:
            netns.setns(namespace)
            for key, value in values.items():
                with open(f"/proc/sys/{key}", "w") as handle:
                    handle.write(value)
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=write, name=f"sysctl-{namespace}", daemon=True)
    thread.start()
    thread.join(timeout=10)
    if failure:
        raise FabricError(f"sysctl in {namespace} failed: {failure[0]}")


class Routers:
    """The routers of the embedded sites of one fabric."""

    def __init__(self, fabric: EmbeddedFabric) -> None:
        self.fabric = fabric

    def namespace(self, site: str, router_id: str) -> str:
        return f"{self.fabric.prefix}-r-{_short(router_id)}-{site}"

    def ensure_router(
        self,
        site: str,
        router_id: str,
        legs: list[RouterLeg],
        external: ExternalLeg | None,
        fips: list[FloatingNat],
        up: bool = True,
        routes: list[tuple[str, str]] | None = None,
    ) -> str:
        """The router's namespace in `site`, shaped like the arguments; its name.
        `up` False (admin_state_up false): its legs are down, it routes nothing.
        `routes`: its extra routes (destination CIDR, nexthop); the IPv4 ones are
        installed (see `_extra_routes`), the routes this call installed earlier and
        that are no longer asked for are removed, no other route is touched."""
        for vni in sorted({leg.vni for leg in legs}):
            self.fabric.ensure_network(site, vni)
        namespace = self.namespace(site, router_id)
        gateway_ns = self.fabric.site_namespace(site)
        with self.fabric.locked() as state:
            self.fabric._create_namespace(state, namespace)
            _sysctls(  # every time: a crash may have come between creating and this
                namespace,
                {
                    "net/ipv6/conf/all/disable_ipv6": "1",
                    "net/ipv6/conf/default/disable_ipv6": "1",
                    "net/ipv4/ip_forward": "1",
                },
            )
            with _ipr(gateway_ns) as gw, _ipr(namespace) as rtr:
                wanted = {f"qr{_short(leg.port_id)}" for leg in legs}
                if external is not None:
                    wanted.add(f"qg{_short(router_id)}")
                for link in rtr.get_links():
                    name = link.get("ifname") or ""
                    if name.startswith(("qr", "qg")) and name not in wanted:
                        rtr.link("del", index=link["index"])
                for leg in legs:
                    bridge = _index(gw, f"br{leg.vni}")
                    if bridge is None:
                        raise FabricError(f"network br{leg.vni} is not in site {site} yet")
                    outer, inner = f"rq{_short(leg.port_id)}", f"qr{_short(leg.port_id)}"
                    self._leg(gw, rtr, namespace, (outer, inner), leg.mac, bridge)
                    gw.link("set", index=_index(gw, outer), mtu=SERVER_MTU)
                    rtr.link("set", index=_index(rtr, inner), mtu=SERVER_MTU)
                    gw.brport("set", index=_index(gw, outer), learning=0)
                    self._addresses(rtr, inner, set(leg.addresses), up)
                if external is not None:
                    self._external(gw, rtr, namespace, router_id, external, fips, up)
                self._extra_routes(rtr, routes or [], up)
            self._prune_external_bridges(gateway_ns)
        _nft(gateway_ns, render_gateway_filter(router_id, legs))
        _nft(namespace, render_nat(router_id, external, legs, fips))
        return namespace

    def _leg(
        self,
        gw: Any,
        rtr: Any,
        namespace: str,
        names: tuple[str, str],
        mac: str,
        bridge: int | None,
    ) -> None:
        """A veth `outer` (a port of `bridge` in the gateway) / `inner` (in the router,
        with `mac`), made if either half is missing."""
        outer, inner = names
        if _index(gw, outer) is None or _index(rtr, inner) is None:
            for ipr, name in ((gw, outer), (rtr, inner)):
                stale = _index(ipr, name)
                if stale is not None:
                    with _ignore(errno.ENODEV):
                        ipr.link("del", index=stale)
            gw.link(
                "add", ifname=outer, kind="veth", peer={"ifname": inner, "net_ns_fd": namespace}
            )
        gw.link("set", index=_index(gw, outer), master=bridge, state="up")
        index = _index(rtr, inner)
        if rtr.get_links(index)[0].get("address") != mac.lower():
            rtr.link("set", index=index, state="down")
            rtr.link("set", index=index, address=mac.lower())

    def _addresses(self, rtr: Any, ifname: str, wanted: set[tuple[str, int]], up: bool) -> None:
        index = _index(rtr, ifname)
        have = {(a.get("address"), a["prefixlen"]) for a in rtr.get_addr(index=index, family=2)}
        for address, prefixlen in have - wanted:
            rtr.addr("del", index=index, address=address, prefixlen=prefixlen)
        for address, prefixlen in wanted - have:
            rtr.addr("add", index=index, address=address, prefixlen=prefixlen)
        rtr.link("set", index=index, state="up" if up else "down")

    def _external(
        self,
        gw: Any,
        rtr: Any,
        namespace: str,
        router_id: str,
        external: ExternalLeg,
        fips: list[FloatingNat],
        up: bool,
    ) -> None:
        bridge_name = external_bridge(external.network_id)
        if _index(gw, bridge_name) is None:
            with _ignore(errno.EEXIST):
                gw.link("add", ifname=bridge_name, kind="bridge")
        bridge = _index(gw, bridge_name)
        gw.link("set", index=bridge, state="up")
        outer, inner = f"rg{_short(router_id)}", f"qg{_short(router_id)}"
        self._leg(gw, rtr, namespace, (outer, inner), external.mac, bridge)
        wanted = {(external.address, external.prefixlen)} | {(f.floating, 32) for f in fips}
        gw.link("set", index=_index(gw, outer), mtu=EXTERNAL_MTU)
        rtr.link("set", index=_index(rtr, inner), mtu=EXTERNAL_MTU)
        self._addresses(rtr, inner, wanted, up)
        if external.gateway and up:
            network = ipaddress.ip_network(f"{external.address}/{external.prefixlen}", False)
            if ipaddress.ip_address(external.gateway) in network:
                rtr.route("replace", dst="0.0.0.0/0", gateway=external.gateway)

    def _extra_routes(self, rtr: Any, routes: list[tuple[str, str]], up: bool) -> None:
        """The router's extra routes in its main table: IPv4 ones only (an IPv6 route
        is control-plane only, as IPv6 routing is here), several nexthops for one
        destination as one multipath route. Ours are told apart by protocol
        EXTRA_ROUTE_PROTO and carry metric EXTRA_ROUTE_METRIC, so they never replace
        a connected route or the gateway's default route (those win on the same
        prefix). None while the router is down: its legs are, so the kernel has
        already dropped the routes through them. A nexthop the router cannot reach
        (the intent layer allows only nexthops on its subnets) is a FabricError."""
        from pyroute2 import NetlinkError

        wanted: dict[str, frozenset[str]] = {}
        for destination, nexthop in routes if up else ():
            network = ipaddress.ip_network(destination, strict=False)
            via_ip = ipaddress.ip_address(nexthop)
            if network.version == 4 and via_ip.version == 4:
                wanted[str(network)] = wanted.get(str(network), frozenset()) | {str(via_ip)}
        have: dict[str, frozenset[str]] = {}
        for route in rtr.get_routes(family=socket.AF_INET, proto=EXTRA_ROUTE_PROTO, table=254):
            dst = f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"
            hops = [h.get_attr("RTA_GATEWAY") for h in route.get_attr("RTA_MULTIPATH") or []]
            have[dst] = frozenset(h for h in [*hops, route.get_attr("RTA_GATEWAY")] if h)
        for dst in sorted(have.keys() - wanted.keys()):
            with _ignore(errno.ESRCH):
                rtr.route("del", dst=dst, proto=EXTRA_ROUTE_PROTO, priority=EXTRA_ROUTE_METRIC)
        for dst, nexthops in sorted(wanted.items()):
            if have.get(dst) == nexthops:
                continue
            hops = sorted(nexthops, key=ipaddress.ip_address)
            via: dict[str, Any] = (
                {"gateway": hops[0]}
                if len(hops) == 1
                else {"multipath": [{"gateway": hop} for hop in hops]}
            )
            try:
                rtr.route(
                    "replace",
                    dst=dst,
                    proto=EXTRA_ROUTE_PROTO,
                    priority=EXTRA_ROUTE_METRIC,
                    **via,
                )
            except NetlinkError as exc:
                raise FabricError(f"extra route {dst} via {', '.join(hops)}: {exc}") from exc

    def _prune_external_bridges(self, gateway_ns: str) -> None:
        """Provider bridges no router uses any more go."""
        with _ipr(gateway_ns) as gw:
            links = gw.get_links()
            masters = {link.get("master") for link in links}
            for link in links:
                name = link.get("ifname") or ""
                if name.startswith("ex") and link["index"] not in masters:
                    with _ignore(errno.ENODEV):
                        gw.link("del", index=link["index"])

    def remove_router(self, site: str, router_id: str) -> None:
        """The router's namespace in `site` and its bridge rules go (its veths go
        with the namespace); removing a missing router succeeds."""
        gateway_ns = self.fabric.site_namespace(site)
        with self.fabric.locked() as state:
            self.fabric._remove_namespace(state, self.namespace(site, router_id))
            if (NETNS_DIR / gateway_ns).exists():
                self._prune_external_bridges(gateway_ns)
        if (NETNS_DIR / gateway_ns).exists():
            _nft(gateway_ns, render_gateway_filter(router_id, []))
