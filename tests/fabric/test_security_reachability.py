"""Security groups hold in the embedded data plane, driven through the Network and
Compute APIs: servers in two sites on one network; the default group lets in only
its own members; a rule added (ICMP from a CIDR, TCP from a remote group) opens
the way within seconds, and removing it closes it again. A port with port security
off (port_security_enabled false, no groups) is not filtered at all; port security
on again, with its group, filters it again. Delays are measured by polling and
printed (figures, not assertions).

Needs root, FRR, nft and nsenter (skipped with the reason otherwise); the
`fabric` fixture of test_dataplane.py makes and tears everything down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fabric import test_dataplane
from tests.fabric.api_support import FabricCloud, N
from tests.fabric.test_dataplane import MISSING, Fabric
from tests.waiting import wait_for

fabric = test_dataplane.fabric  # the fixture: 3 data-plane sites, torn down by record
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}"),
    pytest.mark.timeout(180),
]

PORT = 8080
APPLY = 20.0  # how long a rule change may take to show before the test gives up


@pytest.fixture
def api(fabric: Fabric) -> Iterator[FabricCloud]:
    cloud = FabricCloud(fabric)
    try:
        yield cloud
    finally:
        cloud.close()


def _opens(api: FabricCloud, probe: str, source: str, ip: str) -> float:
    """Seconds until `probe` (icmp|tcp) from source to ip succeeds (fails the test if never)."""
    check = (
        (lambda: api.ping(source, ip, 0.5))
        if probe == "icmp"
        else (lambda: api.tcp(source, ip, PORT, 0.5))
    )
    started = time.monotonic()
    wait_for(check, timeout=APPLY, what=f"{probe} to {ip} to get through")
    return time.monotonic() - started


def _closes(api: FabricCloud, probe: str, source: str, ip: str) -> float:
    """Seconds until `probe` from source to ip stops getting through."""
    check = (
        (lambda: not api.ping(source, ip, 0.5))
        if probe == "icmp"
        else (lambda: not api.tcp(source, ip, PORT, 0.5))
    )
    started = time.monotonic()
    wait_for(check, timeout=APPLY, what=f"{probe} to {ip} to stop getting through")
    return time.monotonic() - started


def test_default_group_and_rules_change_reachability(api: FabricCloud) -> None:
    demo = api.demo
    net = api.network(demo, "10.40.0.0/24", "sg-net")
    default = api.group(demo, "default")
    web = api.group(demo, "web")  # Neutron's new group: egress rules only
    a = api.boot(demo, "a", net, "site-a")  # default group
    b = api.boot(demo, "b", net, "site-b")  # default group
    w = api.boot(demo, "w", net, "site-b", groups=["web"])
    api.wait_active(demo, a, b, w)
    ip = {server: api.ip(demo, server) for server in (a, b, w)}
    for server in (a, b, w):
        api.serve_tcp(server, PORT)

    # members of the default group reach each other, across sites, ICMP and TCP
    first = _opens(api, "icmp", a, ip[b])
    assert api.ping(b, ip[a]) and api.tcp(a, ip[b], PORT) and api.tcp(b, ip[a], PORT)
    # a server in another group does not get in, and nothing gets into `web`
    for source, target in ((w, a), (w, b), (a, w), (b, w)):
        assert not api.ping(source, ip[target], 0.5), "ICMP crossed groups without a rule"
        assert not api.tcp(source, ip[target], PORT, 0.5), "TCP crossed groups without a rule"

    # ICMP from a's address only (a CIDR rule): a gets through, b does not
    icmp_rule = api.add_rule(demo, web, protocol="icmp", remote_ip_prefix=f"{ip[a]}/32")
    icmp_open = _opens(api, "icmp", a, ip[w])
    assert not api.ping(b, ip[w], 0.5), "a /32 rule let another address in"
    assert not api.tcp(a, ip[w], PORT, 0.5), "an ICMP rule let TCP in"

    # TCP to the port from the default group (a remote-group rule): a and b get in
    tcp_rule = api.add_rule(
        demo,
        web,
        protocol="tcp",
        port_range_min=PORT,
        port_range_max=PORT,
        remote_group_id=default,
    )
    tcp_open = _opens(api, "tcp", a, ip[w])
    _opens(api, "tcp", b, ip[w])
    assert not api.tcp(w, ip[a], PORT, 0.5), "a rule of `web` opened the default group"

    # and the other way: the default group lets `web` in on that port
    back_rule = api.add_rule(
        demo,
        default,
        protocol="tcp",
        port_range_min=PORT,
        port_range_max=PORT,
        remote_group_id=web,
    )
    back_open = _opens(api, "tcp", w, ip[a])
    assert not api.ping(w, ip[a], 0.5), "a TCP rule let ICMP in"

    # removing the rules closes the way again
    api.delete_rule(demo, icmp_rule)
    icmp_closed = _closes(api, "icmp", a, ip[w])
    assert api.tcp(a, ip[w], PORT), "removing the ICMP rule closed TCP too"
    api.delete_rule(demo, tcp_rule)
    tcp_closed = _closes(api, "tcp", b, ip[w])
    assert not api.tcp(a, ip[w], PORT, 0.5)
    api.delete_rule(demo, back_rule)
    back_closed = _closes(api, "tcp", w, ip[a])
    # the default group's own members were never affected
    assert api.ping(a, ip[b]) and api.tcp(b, ip[a], PORT)
    print(
        f"\nfirst ping a->b (site-a->site-b) {first:.2f}s after ACTIVE; rule added -> reachable:"
        f" ICMP/CIDR {icmp_open:.2f}s, TCP/remote group {tcp_open:.2f}s, default<-web"
        f" {back_open:.2f}s; rule removed -> blocked: ICMP {icmp_closed:.2f}s,"
        f" TCP {tcp_closed:.2f}s, default<-web {back_closed:.2f}s"
    )


def _port_security(api: FabricCloud, server: str, enabled: bool, groups: list[str]) -> None:
    """PUT the server's port: port security on or off, with these security groups."""
    (port,) = api.call("GET", f"{N}/ports?device_id={server}", api.demo)["ports"]
    body = {"port": {"port_security_enabled": enabled, "security_groups": groups}}
    shown = api.call("PUT", f"{N}/ports/{port['id']}", api.demo, body)["port"]
    assert shown["port_security_enabled"] is enabled and shown["security_groups"] == groups


def test_a_port_without_port_security_is_not_filtered(api: FabricCloud) -> None:
    """A port with port_security_enabled false (and so no groups) lets in what its
    group blocked, on any protocol; port security on again, with the group, blocks
    again. The other servers' own filtering does not change."""
    demo = api.demo
    net = api.network(demo, "10.41.0.0/24", "ps-net")
    web = api.group(demo, "web")  # Neutron's new group: egress rules only
    a = api.boot(demo, "a", net, "site-a")  # default group
    w = api.boot(demo, "w", net, "site-b", groups=["web"])
    api.wait_active(demo, a, w)
    ip = {server: api.ip(demo, server) for server in (a, w)}
    api.serve_tcp(w, PORT)
    api.serve_tcp(a, PORT)
    assert not api.ping(a, ip[w], 0.5), "ICMP into `web` without a rule"
    assert not api.tcp(a, ip[w], PORT, 0.5), "TCP into `web` without a rule"

    _port_security(api, w, False, [])
    opened = _opens(api, "icmp", a, ip[w])
    assert api.tcp(a, ip[w], PORT), "TCP still filtered without port security"
    # a's default group still keeps w out: only w's own port stopped filtering
    assert not api.ping(w, ip[a], 0.5) and not api.tcp(w, ip[a], PORT, 0.5)

    _port_security(api, w, True, [web])
    closed = _closes(api, "icmp", a, ip[w])
    assert not api.tcp(a, ip[w], PORT, 0.5), "TCP gets in with port security back on"
    print(f"\nport security off -> reachable {opened:.2f}s; back on -> blocked {closed:.2f}s")
