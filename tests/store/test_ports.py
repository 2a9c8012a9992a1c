"""store/ports.py without HTTP: a port's MAC and fixed IPs come from the global IPAM in
the caller's transaction; requested addresses and MACs are checked for conflicts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.model import ipam
from isthmus.store import ports, repo
from isthmus.store.db import Database
from isthmus.store.tables import IpAllocation, MacAllocation, Resource, Work

PROJECT = "p1"


def _network(session: Session, *cidrs: str) -> Resource:
    """A network with one subnet per CIDR (Neutron's default gateway and pools),
    and the project's default security group."""
    try:
        ports.default_security_group(session, PROJECT)
    except NotFound:
        repo.add(session, "security_group", project_id=PROJECT, name="default")
        session.flush()
    net = repo.add(session, "network", project_id=PROJECT, name="net", status="ACTIVE")
    for cidr in cidrs:
        network = ipam.parse_cidr(cidr)
        gateway = ipam.default_gateway(network)
        repo.add(
            session,
            "subnet",
            project_id=PROJECT,
            parent_id=net.id,
            status="ACTIVE",
            spec={
                "cidr": cidr,
                "ip_version": network.version,
                "gateway_ip": gateway,
                "allocation_pools": ipam.default_pools(network, gateway),
            },
        )
    session.flush()
    return net


def _port(session: Session, net: Resource, **options: Any) -> Resource:
    return ports.create_port(session, net, project_id=PROJECT, **options)


def _addresses(port: Resource) -> list[str]:
    return [entry["ip_address"] for entry in port.spec["fixed_ips"]]


def test_ports_get_the_lowest_free_address_and_a_fresh_mac(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/29")  # gateway .1, pool .2-.6
        first, second = _port(session, net), _port(session, net)
        subnet_id = first.spec["fixed_ips"][0]["subnet_id"]
        assert _addresses(first) == ["10.0.0.2"] and _addresses(second) == ["10.0.0.3"]
        assert first.spec["mac_address"] != second.spec["mac_address"]
        assert first.spec["mac_address"].startswith(ipam.MAC_PREFIX)
        default = ports.default_security_group(session, PROJECT)
        assert first.spec["security_groups"] == [default]
        assert (first.status, first.parent_id, first.generation) == ("DOWN", net.id, 1)
    with db.read() as session:
        held = session.scalars(select(IpAllocation))
        rows = {(a.subnet_id, a.ip_address): a.port_id for a in held}
        assert rows == {(subnet_id, "10.0.0.2"): first.id, (subnet_id, "10.0.0.3"): second.id}
        macs = {m.mac_address: m.port_id for m in session.scalars(select(MacAllocation))}
        assert macs == {first.spec["mac_address"]: first.id, second.spec["mac_address"]: second.id}


def test_a_pool_runs_out_with_neutrons_conflict(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/29")
        for _ in range(5):
            _port(session, net)
        with pytest.raises(Conflict) as full:
            _port(session, net)
        assert full.value.error_type == "IpAddressGenerationFailure"


def test_a_deleted_ports_address_and_mac_are_free_again(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/29")
        port = _port(session, net, mac_address="fa:16:3e:00:00:01")
        repo.mark_deleting(session, port)  # in no site: purged at once
        again = _port(session, net, mac_address="fa:16:3e:00:00:01")
        assert _addresses(again) == ["10.0.0.2"]


def test_by_default_one_ipv4_address_and_one_per_ipv6_subnet(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/24", "10.0.1.0/24", "fd00:1::/64", "fd00:2::/64")
        assert _addresses(_port(session, net)) == ["10.0.0.2", "fd00:1::2", "fd00:2::2"]


def test_a_requested_address_finds_its_subnet_and_must_be_free(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/24", "10.0.1.0/24")
        port = _port(session, net, fixed_ips=[{"ip_address": "10.0.1.50"}])
        assert _addresses(port) == ["10.0.1.50"]
        subnet_b = port.spec["fixed_ips"][0]["subnet_id"]
        with pytest.raises(Conflict) as taken:
            _port(session, net, fixed_ips=[{"ip_address": "10.0.1.50"}])
        assert taken.value.error_type == "IpAddressAlreadyAllocated"
        assert taken.value.message == f"IP address 10.0.1.50 already allocated in subnet {subnet_b}"
        with pytest.raises(Conflict, match="is the gateway of subnet") as gateway:
            _port(session, net, fixed_ips=[{"ip_address": "10.0.1.1"}])
        assert gateway.value.error_type == "IpAddressAlreadyAllocated"
        with pytest.raises(BadRequest) as elsewhere:
            _port(session, net, fixed_ips=[{"ip_address": "10.9.9.9"}])
        assert elsewhere.value.error_type == "InvalidIpForNetwork"
        # a subnet and an address outside it
        with pytest.raises(BadRequest) as outside:
            _port(session, net, fixed_ips=[{"subnet_id": subnet_b, "ip_address": "10.0.0.9"}])
        assert outside.value.error_type == "InvalidIpForSubnet"
        # a subnet alone: its next free address
        assert _addresses(_port(session, net, fixed_ips=[{"subnet_id": subnet_b}])) == ["10.0.1.2"]


@pytest.mark.parametrize(
    ("fixed_ips", "message"),
    [
        (["10.0.0.5"], "each entry must be an object"),
        ([{}], "give subnet_id or ip_address"),
        ([{"subnet_id": "no-such-subnet"}], "invalid subnet no-such-subnet"),
    ],
)
def test_malformed_fixed_ips_are_refused(db: Database, fixed_ips: list, message: str) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/24")
        with pytest.raises(BadRequest, match=message):
            _port(session, net, fixed_ips=fixed_ips)


def test_a_requested_mac_is_normalized_and_must_be_free(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/24")
        port = _port(session, net, mac_address="FA-16-3E-AA-BB-CC")
        assert port.spec["mac_address"] == "fa:16:3e:aa:bb:cc"
        with pytest.raises(Conflict) as in_use:
            _port(session, net, mac_address="fa:16:3e:aa:bb:cc")
        assert in_use.value.error_type == "MacAddressInUse"
        with pytest.raises(BadRequest, match="not a valid MAC address"):
            _port(session, net, mac_address="ff:ff:ff:ff:ff:ff")


def test_change_mac_moves_the_allocation_unless_bound_or_taken(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/24")
        free = _port(session, net, mac_address="fa:16:3e:00:00:01")
        _port(session, net, mac_address="fa:16:3e:00:00:02")
        bound = _port(session, net, mac_address="fa:16:3e:00:00:03", device_id="some-server")
        assert ports.change_mac(session, free, "fa:16:3e:00:00:01") == "fa:16:3e:00:00:01"
        with pytest.raises(Conflict) as in_use:
            ports.change_mac(session, free, "fa:16:3e:00:00:02")
        assert in_use.value.error_type == "MacAddressInUse"
        with pytest.raises(Conflict) as bound_port:
            ports.change_mac(session, bound, "fa:16:3e:00:00:09")
        assert bound_port.value.error_type == "PortBound"
        assert ports.change_mac(session, free, "FA:16:3E:00:00:04") == "fa:16:3e:00:00:04"
        session.flush()
        held = {m.mac_address: m.port_id for m in session.scalars(select(MacAllocation))}
        assert held["fa:16:3e:00:00:04"] == free.id
        assert "fa:16:3e:00:00:01" not in held  # the old MAC is free again


def test_a_port_with_a_site_is_enqueued_there_and_one_without_is_not(db: Database) -> None:
    with db.session() as session:
        net = _network(session, "10.0.0.0/24")
        intent_only = _port(session, net)
        placed = _port(session, net, site="site-b", device_id="a-server")
    with db.read() as session:
        work = [(w.resource_id, w.kind, w.site) for w in session.scalars(select(Work))]
    assert work == [(placed.id, "port", "site-b")]
    assert intent_only.id not in {resource_id for resource_id, _, _ in work}


def test_a_project_without_a_default_group_cannot_get_a_default_port(db: Database) -> None:
    with db.session() as session:
        net = repo.add(session, "network", project_id="p2", name="net", status="ACTIVE")
        with pytest.raises(NotFound, match="has no default security group"):
            ports.create_port(session, net, project_id="p2")
        # named groups need no default one
        port = ports.create_port(session, net, project_id="p2", security_groups=[])
        assert port.spec["security_groups"] == []


def test_the_one_rule_on_whether_an_address_can_be_a_new_ports(db: Database) -> None:
    """subnet_holding and address_taken: what Nova's early check and Neutron's allocation
    both ask."""
    with db.session() as session:
        net = _network(session, "10.0.0.0/24", "10.0.1.0/24")
        subnets = ports.subnets_of(session, net.id)
        first, second = subnets
        holding = ports.subnet_holding(subnets, ipam.parse_address("10.0.1.7"))
        assert holding is second
        assert ports.subnet_holding(subnets, ipam.parse_address("10.9.0.1")) is None
        port = _port(session, net, fixed_ips=[{"ip_address": "10.0.0.7"}])
        assert ports.address_taken(session, first, "10.0.0.7") == "allocated"
        assert ports.address_taken(session, first, "10.0.0.1") == "gateway"
        assert ports.address_taken(session, first, "10.0.0.8") is None
        assert ports.address_taken(session, second, "10.0.0.7") is None  # per subnet
        repo.mark_deleting(session, port)
        assert ports.address_taken(session, first, "10.0.0.7") is None
