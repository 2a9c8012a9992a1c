"""Security groups as nftables rules inside a server's namespace.

One table, `inet isthmus`, per server: input and output chains drop by default,
let established/related traffic, loopback and IPv6 neighbour discovery through,
and accept what the security groups of each port (`iifname`/`oifname eth<N>`)
allow; a port without port security accepts everything. A rule with a remote
group matches the fixed IPs of that group's ports
(`SecurityGroupSpec.remote_group_members`); an empty group matches nothing.
The ruleset replaces the previous one atomically (`nft -f`: add, delete and
re-create the table in one transaction).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from isthmus.model.specs import SecurityGroupSpec, SecurityRule

TABLE = "inet isthmus"
PORT_PROTOCOLS = {
    "tcp": "tcp",
    "6": "tcp",
    "udp": "udp",
    "17": "udp",
    "sctp": "sctp",
    "132": "sctp",
}
ICMP = {"icmp": "icmp", "1": "icmp"}
ICMP6 = {"icmpv6": "icmpv6", "ipv6-icmp": "icmpv6", "58": "icmpv6"}
ND_TYPES = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert"

Interface = tuple[str, Iterable[SecurityGroupSpec]]  # (ifname inside the server, its groups)


def _range(low: int | None, high: int | None) -> str:
    if low is None and high is None:
        return ""
    low = high if low is None else low
    high = low if high is None else high
    return str(low) if low == high else f"{low}-{high}"


def _protocol(rule: SecurityRule, family: str) -> str | None:
    """The protocol part of a match, '' for any, None if it cannot match `family`."""
    proto = (rule.protocol or "").lower()
    if proto in ("", "any", "0"):
        return ""
    if proto in PORT_PROTOCOLS:
        name = PORT_PROTOCOLS[proto]
        ports = _range(rule.port_range_min, rule.port_range_max)
        return f"meta l4proto {name}" + (f" {name} dport {ports}" if ports else "")
    if proto in ICMP or proto in ICMP6:
        name = "icmp" if family == "ip" else "icmpv6"
        if (proto in ICMP) != (family == "ip"):
            return None
        l4 = "icmp" if name == "icmp" else "ipv6-icmp"
        match = f"meta l4proto {l4}"
        if rule.port_range_min is not None:
            match += f" {name} type {rule.port_range_min}"
            if rule.port_range_max is not None:
                match += f" {name} code {rule.port_range_max}"
        return match
    if proto.isdigit():
        return f"meta l4proto {proto}"
    return f"meta l4proto {proto}"


def _remotes(rule: SecurityRule, family: str, members: dict[str, tuple[str, ...]]) -> str | None:
    """The remote-address part, '' for anywhere, None when nothing can match."""
    side = "saddr" if rule.direction == "ingress" else "daddr"
    version = 4 if family == "ip" else 6
    if rule.remote_group_id:
        addresses = sorted(
            a
            for a in members.get(rule.remote_group_id, ())
            if ipaddress.ip_address(a).version == version
        )
        if not addresses:
            return None
        return f"{family} {side} {{ {', '.join(addresses)} }}"
    if rule.remote_ip_prefix:
        network = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if network.version != version:
            return None
        return "" if network.prefixlen == 0 else f"{family} {side} {network}"
    return ""


def render_rule(rule: SecurityRule, ifname: str, members: dict[str, tuple[str, ...]]) -> str | None:
    """One nft rule line for `rule` on `ifname`, or None when it can match nothing."""
    family = "ip6" if rule.ethertype == "IPv6" else "ip"
    proto = _protocol(rule, family)
    remote = _remotes(rule, family, members)
    if proto is None or remote is None:
        return None
    device = "iifname" if rule.direction == "ingress" else "oifname"
    nfproto = "ipv6" if family == "ip6" else "ipv4"
    parts = [f'{device} "{ifname}"', f"meta nfproto {nfproto}", remote, proto, "accept"]
    return " ".join(p for p in parts if p)


def render_ruleset(interfaces: Iterable[Interface], open_interfaces: Iterable[str] = ()) -> str:
    """The whole table for one server (load it with `nft -f -`). `open_interfaces`:
    its ports without port security (port_security_enabled false), whose traffic
    is accepted first, before any connection-state check or group rule."""
    chains: dict[str, list[str]] = {"ingress": [], "egress": []}
    unfiltered = sorted(set(open_interfaces))
    for ifname, groups in interfaces:
        for group in groups:
            members = {gid: tuple(ips) for gid, ips in group.remote_group_members}
            for rule in group.rules:
                line = render_rule(rule, ifname, members)
                if line and rule.direction in chains and line not in chains[rule.direction]:
                    chains[rule.direction].append(line)
    out = [f"table {TABLE} {{}}", f"delete table {TABLE}", f"table {TABLE} {{"]
    for chain, hook, device, direction in (
        ("input", "input", "iifname", "ingress"),
        ("output", "output", "oifname", "egress"),
    ):
        out += [
            f"  chain {chain} {{",
            f"    type filter hook {hook} priority 0; policy drop;",
            *(f'    {device} "{ifname}" accept' for ifname in unfiltered),
            "    ct state established,related accept",
            "    ct state invalid drop",
            f'    {device} "lo" accept',
            f"    icmpv6 type {{ {ND_TYPES} }} accept",
            *(f"    {line}" for line in chains[direction]),
            "  }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"
