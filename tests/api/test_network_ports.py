"""Network v2.0 subnets (IPv4, IPv6, pools, validation) and ports (fixed IP
requests, exhaustion, duplicates, updates, binding in a site)."""

from __future__ import annotations

from sqlalchemy import select

from isthmus.store.tables import Binding, Resource, Work
from tests.api.test_network import api, create, fails, make_network, project_of, snapshot
from tests.support import Cloud, add_server

# -- subnets ---------------------------------------------------------------------------------


def test_ipv4_subnet_defaults_pools_and_validation(cloud: Cloud) -> None:
    network, subnet = make_network(cloud, cidr="10.1.0.0/24")
    assert subnet["gateway_ip"] == "10.1.0.1"
    assert subnet["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    assert subnet["enable_dhcp"] is True and subnet["ip_version"] == 4
    assert subnet["network_id"] == network["id"] and subnet["dns_nameservers"] == []
    shown = api(cloud, "GET", f"/networks/{network['id']}", status=200)["network"]
    assert shown["subnets"] == [subnet["id"]]

    no_gateway = create(
        cloud,
        "subnets",
        "subnet",
        network_id=network["id"],
        cidr="10.2.0.0/29",
        ip_version=4,
        gateway_ip=None,
        enable_dhcp=False,
    )
    assert no_gateway["gateway_ip"] is None
    assert no_gateway["allocation_pools"] == [{"start": "10.2.0.1", "end": "10.2.0.6"}]
    pooled = create(
        cloud,
        "subnets",
        "subnet",
        network_id=network["id"],
        cidr="10.3.0.0/24",
        ip_version=4,
        gateway_ip="10.3.0.254",
        allocation_pools=[{"start": "10.3.0.10", "end": "10.3.0.20"}],
        dns_nameservers=["8.8.8.8", "1.1.1.1"],
        host_routes=[{"destination": "192.168.0.0/16", "nexthop": "10.3.0.5"}],
    )
    assert pooled["gateway_ip"] == "10.3.0.254"
    assert pooled["allocation_pools"] == [{"start": "10.3.0.10", "end": "10.3.0.20"}]
    assert pooled["dns_nameservers"] == ["8.8.8.8", "1.1.1.1"]

    before = snapshot(cloud)
    base = {"network_id": network["id"], "ip_version": 4}
    bad = [
        ({"cidr": "10.9.0.5/24"}, 400),  # host bits set
        ({"cidr": "not-a-cidr"}, 400),
        ({"cidr": "10.1.0.128/25"}, 400),  # overlaps 10.1.0.0/24
        ({"cidr": "fd00::/64"}, 400),  # not IPv4
        ({}, 400),  # no cidr
        ({"cidr": "10.9.0.0/24", "gateway_ip": "10.8.0.1"}, 400),
        ({"cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.0"}, 400),
        (
            {"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.1.1", "end": "10.9.1.9"}]},
            400,
        ),
        (
            {
                "cidr": "10.9.0.0/24",
                "allocation_pools": [
                    {"start": "10.9.0.10", "end": "10.9.0.20"},
                    {"start": "10.9.0.15", "end": "10.9.0.30"},
                ],
            },
            400,
        ),
        (
            {"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.1", "end": "10.9.0.9"}]},
            400,
        ),
        (
            {"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.9", "end": "10.9.0.2"}]},
            400,
        ),
        ({"cidr": "10.9.0.0/24", "dns_nameservers": ["8.8.8.8", "8.8.8.8"]}, 400),
        ({"cidr": "10.9.0.0/24", "dns_nameservers": ["nope"]}, 400),
        ({"cidr": "10.9.0.0/24", "host_routes": [{"destination": "x", "nexthop": "1.1.1.1"}]}, 400),
        ({"cidr": "10.9.0.0/24", "ipv6_ra_mode": "slaac"}, 400),
        ({"cidr": "10.9.0.0/24", "subnetpool_id": "pool"}, 404),  # no such pool
        ({"cidr": "10.9.0.0/24", "ip_version": 5}, 400),
        ({"cidr": "10.9.0.0/24", "bogus": 1}, 400),
        ({"cidr": "10.9.0.0/24", "network_id": "missing"}, 404),
    ]
    for extra, status in bad:
        fails(cloud, "POST", "/subnets", status, body={"subnet": {**base, **extra}})
    assert snapshot(cloud) == before


def test_ipv6_subnets_and_modes(cloud: Cloud) -> None:
    network, slaac = make_network(
        cloud, cidr="fd00:1::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac"
    )
    assert slaac["ip_version"] == 6 and slaac["gateway_ip"] == "fd00:1::1"
    assert (slaac["ipv6_ra_mode"], slaac["ipv6_address_mode"]) == ("slaac", "slaac")
    assert slaac["allocation_pools"] == [
        {"start": "fd00:1::2", "end": "fd00:1::ffff:ffff:ffff:ffff"}
    ]
    stateful = create(
        cloud,
        "subnets",
        "subnet",
        network_id=network["id"],
        cidr="fd00:2::/80",
        ip_version=6,
        ipv6_address_mode="dhcpv6-stateful",
    )
    assert stateful["ipv6_ra_mode"] is None
    link_local = create(
        cloud,
        "subnets",
        "subnet",
        network_id=network["id"],
        cidr="fd00:3::/64",
        ip_version=6,
        gateway_ip="fe80::1",
    )
    assert link_local["gateway_ip"] == "fe80::1"
    v4 = create(cloud, "subnets", "subnet", network_id=network["id"], cidr="10.5.0.0/24")
    assert v4["ip_version"] == 4  # the default version

    before = snapshot(cloud)
    base = {"network_id": network["id"], "ip_version": 6}
    for extra in (
        {"cidr": "fd00:4::/80", "ipv6_address_mode": "slaac"},  # EUI-64 needs /64
        {"cidr": "fd00:4::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"},
        {"cidr": "fd00:4::/64", "ipv6_ra_mode": "radvd"},
        {"cidr": "fd00:4::/64", "gateway_ip": "fd00:5::1"},
        {"cidr": "10.6.0.0/24"},
        {"cidr": "fd00:1:0:0:8000::/65"},  # overlaps fd00:1::/64
    ):
        fails(cloud, "POST", "/subnets", 400, body={"subnet": {**base, **extra}})
    assert snapshot(cloud) == before

    port = create(cloud, "ports", "port", network_id=network["id"])
    versions = sorted(":" in f["ip_address"] for f in port["fixed_ips"])
    assert versions == [False, True, True, True]  # one IPv4 plus one per IPv6 subnet
    listed = api(cloud, "GET", "/subnets?ip_version=6&fields=cidr", status=200)["subnets"]
    assert sorted(s["cidr"] for s in listed) == ["fd00:1::/64", "fd00:2::/80", "fd00:3::/64"]


def test_subnet_update_and_delete_rules(cloud: Cloud) -> None:
    network, subnet = make_network(cloud, cidr="10.7.0.0/24")
    path = f"/subnets/{subnet['id']}"
    updated = api(
        cloud,
        "PUT",
        path,
        body={
            "subnet": {
                "name": "renamed",
                "dns_nameservers": ["9.9.9.9"],
                "enable_dhcp": False,
                "allocation_pools": [{"start": "10.7.0.100", "end": "10.7.0.200"}],
            }
        },
        status=200,
    )["subnet"]
    assert updated["name"] == "renamed" and updated["dns_nameservers"] == ["9.9.9.9"]
    assert updated["revision_number"] == 2 and updated["enable_dhcp"] is False
    before = snapshot(cloud)
    fails(cloud, "PUT", path, 400, body={"subnet": {"cidr": "10.8.0.0/24"}})
    fails(cloud, "PUT", path, 400, body={"subnet": {"gateway_ip": "10.7.0.150"}})
    fails(cloud, "PUT", path, 400, body={"subnet": {"network_id": network["id"]}})
    assert snapshot(cloud) == before

    port = create(cloud, "ports", "port", network_id=network["id"])
    assert port["fixed_ips"][0]["ip_address"] == "10.7.0.100"
    fails(cloud, "DELETE", path, 409, "SubnetInUse")
    fails(cloud, "DELETE", f"/networks/{network['id']}", 409, "NetworkInUse")
    api(cloud, "DELETE", f"/ports/{port['id']}", status=204)
    api(cloud, "DELETE", path, status=204)
    fails(cloud, "GET", path, 404, "SubnetNotFound")
    _, other = make_network(cloud, cidr="10.9.0.0/24", name="cascade")
    api(cloud, "DELETE", f"/networks/{other['network_id']}", status=204)
    fails(cloud, "GET", f"/subnets/{other['id']}", 404, "SubnetNotFound")


# -- ports -----------------------------------------------------------------------------------


def test_port_fixed_ip_requests_and_errors(cloud: Cloud) -> None:
    network, subnet = make_network(cloud, cidr="10.10.0.0/24")
    _, second = make_network(cloud, cidr="10.11.0.0/24", name="other")
    net_id, sub_id = network["id"], subnet["id"]
    default = create(cloud, "ports", "port", network_id=net_id, name="p0")
    assert default["fixed_ips"] == [{"subnet_id": sub_id, "ip_address": "10.10.0.2"}]
    assert default["status"] == "DOWN" and default["device_id"] == ""
    assert default["mac_address"].startswith("fa:16:3e:")
    groups = api(cloud, "GET", "/security-groups?name=default", status=200)["security_groups"]
    assert default["security_groups"] == [groups[0]["id"]]
    by_subnet = create(cloud, "ports", "port", network_id=net_id, fixed_ips=[{"subnet_id": sub_id}])
    assert by_subnet["fixed_ips"][0]["ip_address"] == "10.10.0.3"
    by_address = create(
        cloud, "ports", "port", network_id=net_id, fixed_ips=[{"ip_address": "10.10.0.50"}]
    )
    assert by_address["fixed_ips"] == [{"subnet_id": sub_id, "ip_address": "10.10.0.50"}]
    both = create(
        cloud,
        "ports",
        "port",
        network_id=net_id,
        fixed_ips=[{"subnet_id": sub_id, "ip_address": "10.10.0.60"}],
        mac_address="fa:16:3e:00:00:01",
        device_id="some-device",
        device_owner="compute:nova",
        admin_state_up=False,
    )
    assert both["mac_address"] == "fa:16:3e:00:00:01" and both["admin_state_up"] is False
    assert (both["device_id"], both["device_owner"]) == ("some-device", "compute:nova")
    no_ips = create(cloud, "ports", "port", network_id=net_id, fixed_ips=[], security_groups=[])
    assert no_ips["fixed_ips"] == [] and no_ips["security_groups"] == []

    before = snapshot(cloud)
    base = {"network_id": net_id}
    bad = [
        ({"fixed_ips": [{"ip_address": "10.10.0.50"}]}, 409, "IpAddressAlreadyAllocated"),
        ({"fixed_ips": [{"ip_address": "10.10.0.1"}]}, 409, "IpAddressAlreadyAllocated"),
        ({"fixed_ips": [{"ip_address": "10.10.0.0"}]}, 400, "InvalidIpForSubnet"),
        ({"fixed_ips": [{"ip_address": "10.10.0.255"}]}, 400, "InvalidIpForSubnet"),
        ({"fixed_ips": [{"ip_address": "192.168.1.1"}]}, 400, None),
        ({"fixed_ips": [{"subnet_id": sub_id, "ip_address": "10.11.0.5"}]}, 400, None),
        ({"fixed_ips": [{"subnet_id": second["id"]}]}, 400, None),
        ({"fixed_ips": [{"ip_address": "bogus"}]}, 400, None),
        ({"fixed_ips": "10.10.0.9"}, 400, None),
        ({"mac_address": "fa:16:3e:00:00:01"}, 409, "MacAddressInUse"),
        ({"mac_address": "zz"}, 400, None),
        ({"security_groups": ["missing"]}, 404, "SecurityGroupNotFound"),
        ({"binding:host_id": "site-a"}, 400, None),
        ({"port_security_enabled": "maybe"}, 400, None),
        ({"network_id": "missing"}, 404, "NetworkNotFound"),
    ]
    for extra, status, error_type in bad:
        fails(cloud, "POST", "/ports", status, error_type, body={"port": {**base, **extra}})
    fails(cloud, "POST", "/ports", 400, body={"port": {"name": "no network"}})
    assert snapshot(cloud) == before

    _, small = make_network(cloud, cidr="10.12.0.0/29", name="small")  # .2-.6 free
    for _ in range(5):
        create(cloud, "ports", "port", network_id=small["network_id"])
    before = snapshot(cloud)
    fails(
        cloud,
        "POST",
        "/ports",
        409,
        "IpAddressGenerationFailure",
        body={"port": {"network_id": small["network_id"]}},
    )
    assert snapshot(cloud) == before


def test_port_update_reallocates_and_lists_filter(cloud: Cloud) -> None:
    network, subnet = make_network(cloud, cidr="10.20.0.0/24")
    _, subnet_b = make_network(cloud, cidr="10.21.0.0/24", name="b")
    port = create(cloud, "ports", "port", network_id=network["id"], name="a")
    path = f"/ports/{port['id']}"
    group = create(cloud, "security-groups", "security_group", name="web")
    updated = api(
        cloud,
        "PUT",
        path,
        body={
            "port": {
                "name": "renamed",
                "security_groups": [group["id"]],
                "device_id": "dev-1",
                "device_owner": "compute:x",
            }
        },
        status=200,
    )["port"]
    assert updated["name"] == "renamed" and updated["security_groups"] == [group["id"]]
    assert updated["device_id"] == "dev-1" and updated["revision_number"] == 2
    # a subnet-only entry keeps the current address; a new address is added
    moved = api(
        cloud,
        "PUT",
        path,
        body={"port": {"fixed_ips": [{"subnet_id": subnet["id"]}, {"ip_address": "10.20.0.77"}]}},
        status=200,
    )["port"]
    assert [f["ip_address"] for f in moved["fixed_ips"]] == ["10.20.0.2", "10.20.0.77"]
    replaced = api(
        cloud, "PUT", path, body={"port": {"fixed_ips": [{"ip_address": "10.20.0.9"}]}}, status=200
    )["port"]
    assert [f["ip_address"] for f in replaced["fixed_ips"]] == ["10.20.0.9"]
    reuse = create(
        cloud, "ports", "port", network_id=network["id"], fixed_ips=[{"ip_address": "10.20.0.77"}]
    )
    assert reuse["fixed_ips"][0]["ip_address"] == "10.20.0.77"  # freed by the update

    before = snapshot(cloud)
    for body, status in (
        ({"fixed_ips": [{"ip_address": "10.20.0.77"}]}, 409),
        ({"fixed_ips": [{"subnet_id": subnet_b["id"]}]}, 400),
        ({"network_id": subnet_b["network_id"]}, 400),
        ({"mac_address": "fa:16:3e:11:22:33"}, 403),  # admin only, as in Neutron
        ({"binding:host_id": "site-b"}, 400),
        ({"security_groups": ["missing"]}, 404),
        ({"status": "ACTIVE"}, 400),
    ):
        fails(cloud, "PUT", path, status, body={"port": body})
    assert snapshot(cloud) == before

    def ids(query: str) -> set[str]:
        return {p["id"] for p in api(cloud, "GET", f"/ports?{query}", status=200)["ports"]}

    assert ids(f"network_id={network['id']}") == {port["id"], reuse["id"]}
    assert ids("fixed_ips=ip_address%3D10.20.0.9") == {port["id"]}
    assert ids(f"fixed_ips=subnet_id%3D{subnet['id']}") == {port["id"], reuse["id"]}
    assert ids("device_owner=compute:x") == {port["id"]}
    assert ids(f"security_groups={group['id']}") == {port["id"]}
    assert ids(f"id={port['id']}&id={reuse['id']}") == {port["id"], reuse["id"]}
    assert ids("status=ACTIVE") == set()
    fields = api(cloud, "GET", "/ports?fields=id&fields=mac_address", status=200)["ports"]
    assert all(set(p) == {"id", "mac_address"} for p in fields)
    fails(cloud, "DELETE", f"/security-groups/{group['id']}", 409, "SecurityGroupInUse")
    api(cloud, "DELETE", path, status=204)
    fails(cloud, "GET", path, 404, "PortNotFound")
    api(cloud, "DELETE", f"/security-groups/{group['id']}", status=204)


def test_port_bound_in_a_site_shows_zone_host_and_status(cloud: Cloud) -> None:
    network, _ = make_network(cloud, cidr="10.30.0.0/24")
    project = project_of(cloud, cloud.demo)
    with cloud.service.db.read() as session:
        assert not session.scalars(select(Work)).all()  # create enqueued nothing
    add_server(cloud.service, project, network["id"], az="site-b")
    cloud.wait_idle()
    port = api(cloud, "GET", f"/ports?network_id={network['id']}", status=200)["ports"][0]
    assert port["status"] == "ACTIVE" and port["device_owner"] == "compute:site-b"
    assert "binding:host_id" not in port
    as_admin = api(cloud, "GET", f"/ports/{port['id']}", cloud.admin, status=200)["port"]
    assert as_admin["binding:host_id"] == "site-b"
    assert as_admin["binding:vif_type"] == "ovs"
    shown = api(cloud, "GET", f"/networks/{network['id']}", status=200)["network"]
    assert shown["availability_zones"] == ["site-b"]
    fails(cloud, "DELETE", f"/networks/{network['id']}", 409, "NetworkInUse")
    fails(
        cloud,
        "PUT",
        f"/ports/{port['id']}",
        409,
        "PortInUse",
        body={"port": {"device_id": "another-device"}},
    )

    # updates of bound resources go to their sites
    api(cloud, "PUT", f"/networks/{network['id']}", body={"network": {"name": "x"}}, status=200)
    api(cloud, "PUT", f"/ports/{port['id']}", body={"port": {"name": "nic0"}}, status=200)
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        for resource_id in (network["id"], port["id"]):
            resource = session.get(Resource, resource_id)
            binding = session.get(Binding, (resource_id, "site-b"))
            assert resource is not None and binding is not None
            assert binding.applied_generation == resource.generation
