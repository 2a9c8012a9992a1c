"""Where a network lives: `availability_zone_hints` (the sites it may reach; empty =
wherever a port needs it) and `availability_zones` (the sites it is realised in
now, from its bindings). A network reaches a site with its first port there and
leaves when the last one goes; reads never change anything. Servers follow their
networks' hints: a zone outside them is 400, and without a zone a server is
placed among the hinted sites.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from isthmus.store.tables import Binding, Resource, Work
from tests.api.test_compute import V, boot, boot_ok, footprint, show
from tests.api.test_network import api, create, fails, make_network
from tests.support import Cloud


def _zones(cloud: Cloud, network_id: str) -> list[str]:
    return list(
        api(cloud, "GET", f"/networks/{network_id}", status=200)["network"]["availability_zones"]
    )


def _reads_change_nothing(cloud: Cloud, network_id: str) -> None:
    def state() -> tuple[Any, ...]:
        with cloud.service.db.read() as session:
            return (
                sorted(session.execute(select(Resource.id, Resource.generation)).all()),
                sorted(session.execute(select(Binding.resource_id, Binding.site)).all()),
                session.scalar(select(func.count()).select_from(Work)),
            )

    cloud.wait_idle()
    before = state()
    for path in (
        f"/networks/{network_id}",
        "/networks",
        f"/networks?availability_zone=site-c&id={network_id}",
        f"/ports?network_id={network_id}",
        "/availability_zones",
    ):
        api(cloud, "GET", path, status=200)
    assert state() == before, "a GET changed the store"


def _delete_server(cloud: Cloud, server_id: str) -> None:
    response = cloud.client.delete(f"{V}/servers/{server_id}", headers=cloud.demo)
    assert response.status_code == 204, response.text


def test_network_reaches_a_site_with_its_first_port_and_leaves_with_its_last(
    cloud: Cloud,
) -> None:
    network, _ = make_network(cloud, cidr="10.60.0.0/24", name="roaming")
    net = network["id"]
    assert network["availability_zone_hints"] == [] and network["availability_zones"] == []
    _reads_change_nothing(cloud, net)
    assert _zones(cloud, net) == []  # created, in no site: nothing asked for it yet

    a1 = boot_ok(cloud, net, "a1", availability_zone="site-a")
    cloud.wait_idle()
    assert _zones(cloud, net) == ["site-a"]
    a2 = boot_ok(cloud, net, "a2", availability_zone="site-a")
    c1 = boot_ok(cloud, net, "c1", availability_zone="site-c")  # no hints: anywhere
    cloud.wait_idle()
    assert _zones(cloud, net) == ["site-a", "site-c"]
    _reads_change_nothing(cloud, net)
    listed = api(cloud, "GET", f"/networks?id={net}", status=200)["networks"][0]
    assert listed["availability_zones"] == ["site-a", "site-c"]

    _delete_server(cloud, a1)  # site-a still has a2's port
    cloud.wait_idle()
    assert _zones(cloud, net) == ["site-a", "site-c"]
    _delete_server(cloud, a2)  # the last port in site-a
    cloud.wait_idle()
    assert _zones(cloud, net) == ["site-c"]
    _delete_server(cloud, c1)
    cloud.wait_idle()
    assert _zones(cloud, net) == []
    _reads_change_nothing(cloud, net)


def test_hints_limit_where_servers_of_the_network_go(cloud: Cloud) -> None:
    network = create(
        cloud, "networks", "network", name="pinned", availability_zone_hints=["site-a", "site-b"]
    )
    net = network["id"]
    create(cloud, "subnets", "subnet", network_id=net, cidr="10.61.0.0/24", ip_version=4)
    assert network["availability_zone_hints"] == ["site-a", "site-b"]
    assert network["availability_zones"] == []
    _reads_change_nothing(cloud, net)

    # a zone outside the hints: 400 naming the network, its hints and the zone; nothing written
    before = footprint(cloud)
    refused = boot(cloud, cloud.demo, net, "outside", availability_zone="site-c")
    assert refused.status_code == 400, refused.text
    message = refused.json()["badRequest"]["message"]
    assert net in message and "site-a, site-b" in message and "site-c" in message
    assert "availability_zone_hints" in message
    assert footprint(cloud) == before

    # without a zone, placement stays among the hinted sites
    inside = boot(cloud, cloud.demo, net, "inside", min_count=4, max_count=4)
    assert inside.status_code == 202, inside.text
    cloud.wait_idle()
    servers = cloud.client.get(f"{V}/servers/detail?name=inside", headers=cloud.demo).json()
    placed = {s["OS-EXT-AZ:availability_zone"] for s in servers["servers"]}
    assert len(servers["servers"]) == 4 and placed <= {"site-a", "site-b"}, placed
    assert _zones(cloud, net) == sorted(placed)
    pinned = boot_ok(cloud, net, "pinned-b", availability_zone="site-b")
    cloud.wait_idle()
    assert show(cloud, pinned)["OS-EXT-AZ:availability_zone"] == "site-b"
    assert _zones(cloud, net) == sorted(placed | {"site-b"})

    # a port of the network, created first, follows the same rule when a server uses it
    port = create(cloud, "ports", "port", network_id=net, name="pre-made")
    before = footprint(cloud)
    refused = boot(
        cloud,
        cloud.demo,
        None,
        "with-port",
        networks=[{"port": port["id"]}],
        availability_zone="site-c",
    )
    assert refused.status_code == 400, refused.text
    assert footprint(cloud) == before

    # two networks whose hints do not meet: 400 (with or without a zone)
    other = create(
        cloud, "networks", "network", name="elsewhere", availability_zone_hints=["site-c"]
    )
    create(cloud, "subnets", "subnet", network_id=other["id"], cidr="10.62.0.0/24", ip_version=4)
    before = footprint(cloud)
    refused = boot(cloud, cloud.demo, None, "torn", networks=[{"uuid": net}, {"uuid": other["id"]}])
    assert refused.status_code == 400, refused.text
    assert "no availability zone in common" in refused.json()["badRequest"]["message"]
    assert footprint(cloud) == before


def test_unknown_or_malformed_hints_are_refused_and_change_nothing(cloud: Cloud) -> None:
    with cloud.service.db.read() as session:
        before = session.scalar(select(func.count()).select_from(Resource))
    error = fails(
        cloud,
        "POST",
        "/networks",
        404,
        "AvailabilityZoneNotFound",
        body={"network": {"name": "n", "availability_zone_hints": ["site-a", "nowhere"]}},
    )
    assert "nowhere" in error["message"] and "site-a, site-b, site-c" in error["message"]
    for hints in ([""], [7], "site-a"):
        fails(
            cloud,
            "POST",
            "/networks",
            400,
            body={"network": {"name": "n", "availability_zone_hints": hints}},
        )
    with cloud.service.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Resource)) == before
    # repeated names collapse, order kept
    network = create(
        cloud,
        "networks",
        "network",
        name="twice",
        availability_zone_hints=["site-b", "site-a", "site-b"],
    )
    assert network["availability_zone_hints"] == ["site-b", "site-a"]
