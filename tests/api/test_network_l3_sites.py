"""Routers and floating IPs reach sites through the engine (control plane; the
embedded data plane is tests/fabric/test_routing.py): a router goes to every site
where one of its networks has a server, with all its networks; a floating IP goes to
the site of its port's server; both leave when that stops being true."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from isthmus.store.tables import Binding, Resource
from tests.api.test_compute import V, boot_ok
from tests.api.test_network import api, create, make_network
from tests.api.test_network_l3 import _external
from tests.support import Cloud


def _sites(cloud: Cloud, resource_id: str) -> list[str]:
    with cloud.service.db.read() as session:
        return sorted(
            session.scalars(select(Binding.site).where(Binding.resource_id == resource_id))
        )


def _status(cloud: Cloud, resource_id: str) -> str:
    with cloud.service.db.read() as session:
        row = session.get(Resource, resource_id)
        assert row is not None
        return row.status


def _port_of(cloud: Cloud, server_id: str) -> dict[str, Any]:
    (port,) = api(cloud, "GET", f"/ports?device_id={server_id}", status=200)["ports"]
    return port


def _interface(cloud: Cloud, router_id: str, verb: str, subnet_id: str) -> None:
    path = f"/routers/{router_id}/{verb}_router_interface"
    api(cloud, "PUT", path, body={"subnet_id": subnet_id}, status=200)


def test_router_and_floating_ip_follow_their_servers(cloud: Cloud) -> None:
    net1, sub1 = make_network(cloud, cidr="10.1.0.0/24", name="one")
    net2, sub2 = make_network(cloud, cidr="10.2.0.0/24", name="two")
    router = create(cloud, "routers", "router", name="r")["id"]
    a = boot_ok(cloud, net1["id"], "a", availability_zone="site-a")
    cloud.wait_idle()
    assert _sites(cloud, router) == []  # no interface: nowhere

    _interface(cloud, router, "add", sub1["id"])
    cloud.wait_idle()
    assert _sites(cloud, router) == ["site-a"]
    assert _sites(cloud, net2["id"]) == []

    _interface(cloud, router, "add", sub2["id"])  # net2 comes along to site-a
    cloud.wait_idle()
    assert _sites(cloud, router) == ["site-a"]
    assert _sites(cloud, net2["id"]) == _sites(cloud, sub2["id"]) == ["site-a"]

    b = boot_ok(cloud, net2["id"], "b", availability_zone="site-b")
    cloud.wait_idle()
    assert _sites(cloud, router) == ["site-a", "site-b"]
    assert _sites(cloud, net1["id"]) == ["site-a", "site-b"]  # for the router in site-b
    # the API shows where the router is now, in show and list alike
    shown = api(cloud, "GET", f"/routers/{router}", status=200)["router"]
    assert shown["availability_zones"] == ["site-a", "site-b"]
    routers = api(cloud, "GET", "/routers", status=200)["routers"]
    (listed,) = [r for r in routers if r["id"] == router]
    assert listed["availability_zones"] == ["site-a", "site-b"]
    assert _status(cloud, router) == "ACTIVE"
    driver = cloud.service.sites.get("site-b")
    observed = driver.observe("router", router)
    assert observed is not None and observed.status == "ACTIVE"

    # a floating IP goes to the site of its port's server only
    public, _ = _external(cloud, cidr="172.24.8.0/24")
    gateway = {"router": {"external_gateway_info": {"network_id": public["id"]}}}
    api(cloud, "PUT", f"/routers/{router}", body=gateway, status=200)
    fip = create(
        cloud,
        "floatingips",
        "floatingip",
        floating_network_id=public["id"],
        port_id=_port_of(cloud, b)["id"],
    )
    cloud.wait_idle()
    assert _sites(cloud, fip["id"]) == ["site-b"]
    shown = api(cloud, "GET", f"/floatingips/{fip['id']}", status=200)["floatingip"]
    assert shown["status"] == "ACTIVE" and shown["router_id"] == router
    path = f"/floatingips/{fip['id']}"
    moved = {"floatingip": {"port_id": _port_of(cloud, a)["id"]}}
    assert api(cloud, "PUT", path, body=moved, status=200)["floatingip"]["status"] == "DOWN"
    cloud.wait_idle()
    assert _sites(cloud, fip["id"]) == ["site-a"]
    assert api(cloud, "GET", path, status=200)["floatingip"]["status"] == "ACTIVE"
    assert driver.observe("floating_ip", fip["id"]) is None
    none = {"floatingip": {"port_id": None}}
    assert api(cloud, "PUT", path, body=none, status=200)["floatingip"]["status"] == "DOWN"
    cloud.wait_idle()
    assert _sites(cloud, fip["id"]) == []
    assert api(cloud, "GET", path, status=200)["floatingip"]["status"] == "DOWN"
    api(cloud, "PUT", path, body=moved, status=200)
    cloud.wait_idle()
    assert _sites(cloud, fip["id"]) == ["site-a"]
    api(cloud, "DELETE", path, status=204)
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        assert session.get(Resource, fip["id"]) is None  # left its site, then purged

    # detaching net2: the router leaves site-b, and what it alone kept goes too
    _interface(cloud, router, "remove", sub2["id"])
    cloud.wait_idle()
    assert _sites(cloud, router) == ["site-a"]
    assert _sites(cloud, net1["id"]) == ["site-a"]
    assert _sites(cloud, net2["id"]) == ["site-b"]  # b is there
    assert driver.observe("router", router) is None

    # the last server of its networks goes: the router leaves its last site
    response = cloud.client.delete(f"{V}/servers/{a}", headers=cloud.demo)
    assert response.status_code == 204, response.text
    cloud.wait_idle()
    assert _sites(cloud, router) == [] and _sites(cloud, net1["id"]) == []
    _interface(cloud, router, "remove", sub1["id"])
    api(cloud, "PUT", f"/routers/{router}", body={"router": {"external_gateway_info": {}}})
    api(cloud, "DELETE", f"/routers/{router}", status=204)
    cloud.wait_idle()
    assert _sites(cloud, router) == []
