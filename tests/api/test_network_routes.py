"""Network v2.0 router depth: extra routes (extraroute, extraroute-atomic) validated
as Neutron does and carried in the router's spec to its sites, the admin-only
`distributed` / `ha` attributes, and updating a router interface port's fixed IP
(Tempest's test_router_interface_port_update_with_fixed_ip)."""

from __future__ import annotations

from typing import Any

from isthmus.engine.l3 import router_spec
from isthmus.model.specs import RouterRoute
from isthmus.store.tables import Resource
from tests.api.test_network import api, create, fails, make_network, snapshot
from tests.support import Cloud


def _router_with_interfaces(cloud: Cloud) -> tuple[str, dict[str, Any], dict[str, Any]]:
    _, sub1 = make_network(cloud, cidr="10.60.0.0/24", name="one")
    _, sub2 = make_network(cloud, cidr="10.61.0.0/24", name="two")
    router = create(cloud, "routers", "router", name="r")
    for sub in (sub1, sub2):
        api(
            cloud,
            "PUT",
            f"/routers/{router['id']}/add_router_interface",
            body={"subnet_id": sub["id"]},
            status=200,
        )
    return router["id"], sub1, sub2


def _spec_routes(cloud: Cloud, router_id: str) -> tuple[RouterRoute, ...]:
    with cloud.service.db.read() as session:
        row = session.get(Resource, router_id)
        assert row is not None
        return router_spec(session, row)[0].routes


def test_extra_routes_update_show_and_clear(cloud: Cloud) -> None:
    rid, sub1, sub2 = _router_with_interfaces(cloud)
    routes = [
        {"destination": "192.168.10.0/24", "nexthop": "10.60.0.5"},
        {"destination": "192.168.20.0/24", "nexthop": "10.61.0.7"},
    ]
    updated = api(cloud, "PUT", f"/routers/{rid}", body={"router": {"routes": routes}}, status=200)
    assert updated["router"]["routes"] == routes
    shown = api(cloud, "GET", f"/routers/{rid}", status=200)["router"]
    assert shown["routes"] == routes and shown["revision_number"] > 1
    assert _spec_routes(cloud, rid) == (
        RouterRoute("192.168.10.0/24", "10.60.0.5"),
        RouterRoute("192.168.20.0/24", "10.61.0.7"),
    )
    # Tempest clears them with routes=None
    api(cloud, "PUT", f"/routers/{rid}", body={"router": {"routes": None}}, status=200)
    assert api(cloud, "GET", f"/routers/{rid}", status=200)["router"]["routes"] == []
    assert _spec_routes(cloud, rid) == ()


def test_extra_routes_refused_as_neutron_does(cloud: Cloud) -> None:
    rid, sub1, _ = _router_with_interfaces(cloud)
    api(
        cloud,
        "PUT",
        f"/routers/{rid}",
        body={"router": {"routes": [{"destination": "0.0.0.0/0", "nexthop": "10.60.0.9"}]}},
        status=200,
    )
    before = snapshot(cloud)

    def put(routes: Any, status: int, error: str) -> None:
        fails(cloud, "PUT", f"/routers/{rid}", status, error, body={"router": {"routes": routes}})

    put([{"destination": "192.168.0.0/24", "nexthop": "10.99.0.1"}], 400, "InvalidRoutes")
    put([{"destination": "192.168.0.0/24", "nexthop": "10.60.0.1"}], 400, "InvalidRoutes")
    put([{"destination": "192.168.0.1/24", "nexthop": "10.60.0.5"}], 400, "HTTPBadRequest")
    put([{"destination": "nonsense", "nexthop": "10.60.0.5"}], 400, "HTTPBadRequest")
    put([{"destination": "192.168.0.0/24", "nexthop": "x"}], 400, "HTTPBadRequest")
    put([{"destination": "fd00::/64", "nexthop": "10.60.0.5"}], 400, "HTTPBadRequest")
    put([{"destination": "192.168.0.0/24"}], 400, "HTTPBadRequest")
    put("not a list", 400, "HTTPBadRequest")
    twice = {"destination": "192.168.0.0/24", "nexthop": "10.60.0.5"}
    put([twice, twice], 400, "HTTPBadRequest")
    many = [{"destination": f"192.168.{i}.0/24", "nexthop": "10.60.0.5"} for i in range(31)]
    put(many, 400, "RoutesExhausted")
    fails(
        cloud,
        "POST",
        "/routers",
        400,
        "HTTPBadRequest",
        body={"router": {"name": "x", "routes": []}},
    )
    # the interface a route's nexthop is on cannot go
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/remove_router_interface",
        409,
        "RouterInterfaceInUseByRoute",
        body={"subnet_id": sub1["id"]},
    )
    assert snapshot(cloud) == before


def test_add_and_remove_extraroutes(cloud: Cloud) -> None:
    rid, _, _ = _router_with_interfaces(cloud)
    first = {"destination": "192.168.1.0/24", "nexthop": "10.60.0.5"}
    second = {"destination": "192.168.1.0/24", "nexthop": "10.61.0.5"}
    added = api(
        cloud,
        "PUT",
        f"/routers/{rid}/add_extraroutes",
        body={"router": {"routes": [first, second]}},
        status=200,
    )["router"]
    assert added["routes"] == [first, second]
    again = api(
        cloud,
        "PUT",
        f"/routers/{rid}/add_extraroutes",
        body={"router": {"routes": [first]}},
        status=200,
    )["router"]
    assert again["routes"] == [first, second]
    before = snapshot(cloud)
    fails(
        cloud,
        "PUT",
        f"/routers/{rid}/add_extraroutes",
        400,
        "InvalidRoutes",
        body={"router": {"routes": [{"destination": "10.9.0.0/16", "nexthop": "172.16.0.1"}]}},
    )
    assert snapshot(cloud) == before
    removed = api(
        cloud,
        "PUT",
        f"/routers/{rid}/remove_extraroutes",
        body={"router": {"routes": [first, {"destination": "1.2.3.0/24", "nexthop": "10.60.0.5"}]}},
        status=200,
    )["router"]
    assert removed["routes"] == [second]
    assert _spec_routes(cloud, rid) == (RouterRoute("192.168.1.0/24", "10.61.0.5"),)
    fails(
        cloud,
        "PUT",
        "/routers/missing/add_extraroutes",
        404,
        "RouterNotFound",
        body={"router": {"routes": []}},
    )


def test_distributed_and_ha_are_admin_only(cloud: Cloud) -> None:
    before = snapshot(cloud)
    for attrs in ({"distributed": True}, {"distributed": False}, {"ha": False}):
        error = fails(cloud, "POST", "/routers", 403, "PolicyNotAuthorized", body={"router": attrs})
        assert "create_router" in error["message"]
    assert snapshot(cloud) == before
    member = create(cloud, "routers", "router", name="mine")
    assert "distributed" not in member and "ha" not in member
    fails(
        cloud,
        "PUT",
        f"/routers/{member['id']}",
        403,
        "PolicyNotAuthorized",
        body={"router": {"distributed": True}},
    )
    admin = create(cloud, "routers", "router", cloud.admin, name="dvr", distributed=True)
    assert admin["distributed"] is True and admin["ha"] is False
    updated = api(
        cloud,
        "PUT",
        f"/routers/{admin['id']}",
        cloud.admin,
        {"router": {"distributed": False}},
        200,
    )["router"]
    assert updated["distributed"] is False
    aliases = {e["alias"] for e in api(cloud, "GET", "/extensions", status=200)["extensions"]}
    assert {"extraroute", "extraroute-atomic", "dvr", "l3-ha"} <= aliases


def test_router_interface_port_fixed_ip_update(cloud: Cloud) -> None:
    """As Tempest does: the interface port keeps its (gateway) address when updated
    with only its subnet, and can move to another address of the subnet."""
    _, sub = make_network(cloud, cidr="10.70.0.0/24")
    router = create(cloud, "routers", "router", name="r")
    interface = api(
        cloud,
        "PUT",
        f"/routers/{router['id']}/add_router_interface",
        body={"subnet_id": sub["id"]},
        status=200,
    )
    port_id = interface["port_id"]
    kept = api(
        cloud,
        "PUT",
        f"/ports/{port_id}",
        body={"port": {"fixed_ips": [{"subnet_id": sub["id"]}]}},
        status=200,
    )["port"]
    assert kept["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.70.0.1"}]
    moved = api(
        cloud,
        "PUT",
        f"/ports/{port_id}",
        body={"port": {"fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.70.0.9"}]}},
        status=200,
    )["port"]
    assert moved["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.70.0.9"}]
    with cloud.service.db.read() as session:
        row = session.get(Resource, router["id"])
        assert row is not None
        spec = router_spec(session, row)[0]
    assert [i.ip_address for i in spec.interfaces] == ["10.70.0.9"]
    # an ordinary port still may not take the gateway address
    network_id = sub["network_id"]
    other = create(cloud, "ports", "port", network_id=network_id)
    fails(
        cloud,
        "PUT",
        f"/ports/{other['id']}",
        409,
        "IpAddressAlreadyAllocated",
        body={"port": {"fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.70.0.1"}]}},
    )
