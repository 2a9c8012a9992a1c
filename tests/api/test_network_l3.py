"""Network v2.0 routers (interfaces, external gateway) and floating IPs."""

from __future__ import annotations

from typing import Any

from tests.api.test_network import api, create, fails, make_network, project_of, snapshot
from tests.support import Cloud


def _external(cloud: Cloud, cidr: str = "172.24.4.0/24") -> tuple[dict[str, Any], dict[str, Any]]:
    network = create(
        cloud, "networks", "network", cloud.admin, name="public", **{"router:external": True}
    )
    subnet = create(
        cloud, "subnets", "subnet", cloud.admin, network_id=network["id"], cidr=cidr, ip_version=4
    )
    return network, subnet


def _interface(cloud: Cloud, router_id: str, verb: str, status: int, **body: Any) -> Any:
    return api(
        cloud, "PUT", f"/routers/{router_id}/{verb}_router_interface", body=body, status=status
    )


def test_router_interfaces_by_subnet_and_port(cloud: Cloud) -> None:
    net, sub = make_network(cloud, cidr="10.50.0.0/24")
    net2, sub2 = make_network(cloud, cidr="10.51.0.0/24", name="two")
    _, overlapping = make_network(cloud, cidr="10.50.0.0/25", name="overlap")
    _, no_gateway = make_network(cloud, cidr="10.52.0.0/24", name="nogw", gateway_ip=None)
    router = create(cloud, "routers", "router", name="r1", description="edge")
    assert router["status"] == "ACTIVE" and router["external_gateway_info"] is None
    assert router["admin_state_up"] is True and router["routes"] == []
    rid = router["id"]

    added = _interface(cloud, rid, "add", 200, subnet_id=sub["id"])
    assert added["id"] == rid and added["subnet_id"] == sub["id"]
    assert added["subnet_ids"] == [sub["id"]] and added["network_id"] == net["id"]
    port = api(cloud, "GET", f"/ports/{added['port_id']}", status=200)["port"]
    assert port["device_owner"] == "network:router_interface" and port["device_id"] == rid
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.50.0.1"}]
    assert port["project_id"] == router["project_id"]
    listed = api(cloud, "GET", f"/ports?device_id={rid}", status=200)["ports"]
    assert [p["id"] for p in listed] == [added["port_id"]]

    before = snapshot(cloud)
    fails(cloud, "PUT", f"/routers/{rid}/add_router_interface", 400, body={"subnet_id": sub["id"]})
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/add_router_interface",
        400,
        body={"subnet_id": overlapping["id"]},
    )
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/add_router_interface",
        400,
        body={"subnet_id": no_gateway["id"]},
    )
    fails(cloud, "PUT", f"/routers/{rid}/add_router_interface", 400, body={})
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/add_router_interface",
        400,
        body={"subnet_id": sub2["id"], "port_id": added["port_id"]},
    )
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/add_router_interface",
        404,
        "SubnetNotFound",
        body={"subnet_id": "missing"},
    )
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/add_router_interface",
        409,
        "PortInUse",
        body={"port_id": added["port_id"]},
    )
    fails(cloud, "DELETE", f"/ports/{added['port_id']}", 409, "L3PortInUse")
    fails(cloud, "DELETE", f"/subnets/{sub['id']}", 409, "SubnetInUse")
    fails(cloud, "DELETE", f"/networks/{net['id']}", 409, "NetworkInUse")
    fails(cloud, "DELETE", f"/routers/{rid}", 409, "RouterInUse")
    assert snapshot(cloud) == before

    free = create(
        cloud, "ports", "port", network_id=net2["id"], fixed_ips=[{"ip_address": "10.51.0.10"}]
    )
    by_port = _interface(cloud, rid, "add", 200, port_id=free["id"])
    assert by_port["port_id"] == free["id"] and by_port["subnet_ids"] == [sub2["id"]]
    attached = api(cloud, "GET", f"/ports/{free['id']}", status=200)["port"]
    assert attached["device_id"] == rid and attached["device_owner"] == "network:router_interface"

    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/remove_router_interface",
        404,
        "RouterInterfaceNotFoundForSubnet",
        body={"subnet_id": no_gateway["id"]},
    )
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/remove_router_interface",
        404,
        "RouterInterfaceNotFound",
        body={"port_id": "missing"},
    )
    removed = _interface(cloud, rid, "remove", 200, subnet_id=sub["id"])
    assert removed["port_id"] == added["port_id"]
    fails(cloud, "GET", f"/ports/{added['port_id']}", 404, "PortNotFound")
    _interface(cloud, rid, "remove", 200, port_id=free["id"])
    fails(cloud, "GET", f"/ports/{free['id']}", 404)
    shown = api(cloud, "GET", f"/routers/{rid}", status=200)["router"]
    assert shown["revision_number"] == 5  # two adds, two removes
    api(cloud, "DELETE", f"/routers/{rid}", status=204)
    fails(cloud, "GET", f"/routers/{rid}", 404, "RouterNotFound")
    api(cloud, "DELETE", f"/networks/{net['id']}", status=204)


def test_router_external_gateway(cloud: Cloud) -> None:
    fails(cloud, "POST", "/networks", 403, body={"network": {"router:external": True}})
    public, public_sub = _external(cloud)
    internal, _ = make_network(cloud, cidr="10.60.0.0/24")
    seen = api(cloud, "GET", "/networks?router:external=true", status=200)["networks"]
    assert [n["id"] for n in seen] == [public["id"]]  # a member sees external networks
    router = create(
        cloud, "routers", "router", name="gw", external_gateway_info={"network_id": public["id"]}
    )
    info = router["external_gateway_info"]
    assert info["network_id"] == public["id"] and info["enable_snat"] is True
    assert info["external_fixed_ips"] == [
        {"subnet_id": public_sub["id"], "ip_address": "172.24.4.2"}
    ]
    rid = router["id"]
    gateway_ports = api(cloud, "GET", f"/ports?device_id={rid}", cloud.admin, status=200)["ports"]
    assert [p["device_owner"] for p in gateway_ports] == ["network:router_gateway"]
    assert gateway_ports[0]["project_id"] == ""
    assert (
        api(cloud, "GET", f"/ports?device_id={rid}", status=200)["ports"] == []
    )  # not the member's

    before = snapshot(cloud)
    path = f"/routers/{rid}"
    for gateway, status in (
        ({"network_id": internal["id"]}, 400),
        ({"network_id": "missing"}, 404),
        ({"network_id": public["id"], "enable_snat": False}, 403),
        ({"network_id": public["id"], "external_fixed_ips": [{"ip_address": "172.24.4.9"}]}, 403),
        ({"enable_snat": True}, 400),
    ):
        fails(cloud, "PUT", path, status, body={"router": {"external_gateway_info": gateway}})
    fails(
        cloud,
        "PUT",
        path,
        400,
        "InvalidRoutes",
        body={"router": {"routes": [{"destination": "10.9.0.0/16", "nexthop": "192.0.2.1"}]}},
    )
    assert snapshot(cloud) == before

    fixed = api(
        cloud,
        "PUT",
        path,
        cloud.admin,
        {
            "router": {
                "external_gateway_info": {
                    "network_id": public["id"],
                    "enable_snat": False,
                    "external_fixed_ips": [{"ip_address": "172.24.4.100"}],
                }
            }
        },
        200,
    )["router"]["external_gateway_info"]
    assert fixed["enable_snat"] is False
    assert fixed["external_fixed_ips"][0]["ip_address"] == "172.24.4.100"
    cleared = api(cloud, "PUT", path, body={"router": {"external_gateway_info": {}}}, status=200)
    assert cleared["router"]["external_gateway_info"] is None
    assert api(cloud, "GET", f"/ports?device_id={rid}", cloud.admin, status=200)["ports"] == []
    api(
        cloud,
        "PUT",
        path,
        body={"router": {"external_gateway_info": {"network_id": public["id"]}}},
        status=200,
    )
    fails(cloud, "DELETE", f"/networks/{public['id']}", 409, "NetworkInUse", headers=cloud.admin)
    api(cloud, "DELETE", path, status=204)  # takes its gateway port along
    api(cloud, "DELETE", f"/networks/{public['id']}", cloud.admin, status=204)


def test_floating_ips_associate_and_disassociate(cloud: Cloud) -> None:
    public, public_sub = _external(cloud, cidr="172.30.0.0/29")  # .2-.6
    net, sub = make_network(cloud, cidr="10.70.0.0/24")
    port = create(cloud, "ports", "port", network_id=net["id"], name="vm-port")
    two_ips = create(
        cloud,
        "ports",
        "port",
        network_id=net["id"],
        fixed_ips=[{"subnet_id": sub["id"]}, {"subnet_id": sub["id"]}],
    )
    fip = create(
        cloud, "floatingips", "floatingip", floating_network_id=public["id"], description="d"
    )
    assert fip["status"] == "DOWN" and fip["port_id"] is None and fip["router_id"] is None
    assert fip["floating_ip_address"] == "172.30.0.2" and fip["floating_network_id"] == public["id"]
    path = f"/floatingips/{fip['id']}"

    before = snapshot(cloud)
    fails(
        cloud,
        "PUT",
        path,
        404,
        "ExternalGatewayForFloatingIPNotFound",
        body={"floatingip": {"port_id": port["id"]}},
    )
    router = create(cloud, "routers", "router", external_gateway_info={"network_id": public["id"]})
    before = snapshot(cloud)
    fails(
        cloud,
        "PUT",
        path,
        404,
        "ExternalGatewayForFloatingIPNotFound",
        body={"floatingip": {"port_id": port["id"]}},
    )
    api(
        cloud,
        "PUT",
        f"/routers/{router['id']}/add_router_interface",
        body={"subnet_id": sub["id"]},
        status=200,
    )
    before = snapshot(cloud)
    fails(cloud, "PUT", path, 400, body={"floatingip": {"port_id": two_ips["id"]}})
    fails(
        cloud,
        "PUT",
        path,
        400,
        body={"floatingip": {"port_id": port["id"], "fixed_ip_address": "10.70.0.99"}},
    )
    fails(cloud, "PUT", path, 404, "PortNotFound", body={"floatingip": {"port_id": "missing"}})
    fails(cloud, "PUT", path, 400, body={"floatingip": {"floating_ip_address": "172.30.0.5"}})
    fails(
        cloud, "POST", "/floatingips", 400, body={"floatingip": {"floating_network_id": net["id"]}}
    )
    fails(
        cloud,
        "POST",
        "/floatingips",
        403,
        body={
            "floatingip": {"floating_network_id": public["id"], "floating_ip_address": "172.30.0.5"}
        },
    )
    assert snapshot(cloud) == before

    associated = api(cloud, "PUT", path, body={"floatingip": {"port_id": port["id"]}}, status=200)[
        "floatingip"
    ]
    # the port has no server, so no site to do the NAT: DOWN, as Neutron shows an
    # association no agent has applied (tests/api/test_network_l3_sites.py: ACTIVE)
    assert associated["status"] == "DOWN" and associated["port_id"] == port["id"]
    assert associated["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert associated["router_id"] == router["id"]
    assert associated["port_details"]["name"] == "vm-port"
    chosen = two_ips["fixed_ips"][1]["ip_address"]
    second = create(
        cloud,
        "floatingips",
        "floatingip",
        floating_network_id=public["id"],
        port_id=two_ips["id"],
        fixed_ip_address=chosen,
    )
    assert second["status"] == "DOWN" and second["fixed_ip_address"] == chosen
    fails(
        cloud,
        "POST",
        "/floatingips",
        409,
        "FloatingIPPortAlreadyAssociated",
        body={"floatingip": {"floating_network_id": public["id"], "port_id": port["id"]}},
    )

    def addresses(query: str) -> list[str]:
        found = api(cloud, "GET", f"/floatingips?{query}", status=200)["floatingips"]
        return sorted(f["floating_ip_address"] for f in found)

    assert addresses(f"port_id={port['id']}") == ["172.30.0.2"]
    cloud.wait_idle()
    assert addresses("status=ACTIVE") == []  # still in no site
    assert addresses(f"router_id={router['id']}") == sorted(
        [fip["floating_ip_address"], second["floating_ip_address"]]
    )
    assert addresses(f"floating_network_id={public['id']}&fields=floating_ip_address") == addresses(
        ""
    )
    fails(
        cloud,
        "PUT",
        f"/routers/{router['id']}/remove_router_interface",
        409,
        "RouterInterfaceInUseByFloatingIP",
        body={"subnet_id": sub["id"]},
    )
    fails(
        cloud,
        "PUT",
        f"/routers/{router['id']}",
        409,
        "RouterExternalGatewayInUseByFloatingIp",
        body={"router": {"external_gateway_info": None}},
    )

    moved = api(cloud, "PUT", path, body={"floatingip": {"port_id": None}}, status=200)[
        "floatingip"
    ]
    assert (
        moved["status"] == "DOWN" and moved["port_id"] is None and moved["fixed_ip_address"] is None
    )
    api(cloud, "DELETE", f"/ports/{two_ips['id']}", status=204)  # disassociates `second`
    second_now = api(cloud, "GET", f"/floatingips/{second['id']}", status=200)["floatingip"]
    assert second_now["status"] == "DOWN" and second_now["port_id"] is None

    admin_fip = create(
        cloud,
        "floatingips",
        "floatingip",
        cloud.admin,
        floating_network_id=public["id"],
        floating_ip_address="172.30.0.6",
        project_id=project_of(cloud, cloud.demo),
    )
    assert admin_fip["floating_ip_address"] == "172.30.0.6"
    fails(
        cloud,
        "POST",
        "/floatingips",
        409,
        "IpAddressAlreadyAllocated",
        headers=cloud.admin,
        body={
            "floatingip": {"floating_network_id": public["id"], "floating_ip_address": "172.30.0.6"}
        },
    )
    create(
        cloud, "floatingips", "floatingip", floating_network_id=public["id"]
    )  # the last free address
    before = snapshot(cloud)
    fails(
        cloud,
        "POST",
        "/floatingips",
        409,
        "IpAddressGenerationFailure",
        body={"floatingip": {"floating_network_id": public["id"]}},
    )
    assert snapshot(cloud) == before
    for f in api(cloud, "GET", "/floatingips", status=200)["floatingips"]:
        api(cloud, "DELETE", f"/floatingips/{f['id']}", status=204)
    fails(cloud, "GET", path, 404, "FloatingIPNotFound")
    again = create(cloud, "floatingips", "floatingip", floating_network_id=public["id"])
    assert again["floating_ip_address"] == "172.30.0.2"  # addresses were freed


def test_router_and_floating_ip_quotas(cloud: Cloud) -> None:
    public, _ = _external(cloud)
    project = project_of(cloud, cloud.demo)
    api(
        cloud,
        "PUT",
        f"/quotas/{project}",
        cloud.admin,
        {"quota": {"router": 1, "floatingip": 1}},
        200,
    )
    create(cloud, "routers", "router", name="one")
    create(cloud, "floatingips", "floatingip", floating_network_id=public["id"])
    before = snapshot(cloud)
    fails(cloud, "POST", "/routers", 413, body={"router": {"name": "two"}})
    fails(
        cloud,
        "POST",
        "/floatingips",
        413,
        body={"floatingip": {"floating_network_id": public["id"]}},
    )
    assert snapshot(cloud) == before
