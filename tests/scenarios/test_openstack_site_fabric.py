"""Routers, floating IPs and the inter-site interconnect in a REAL OpenStack site
(Debian's Zed packages, tests/fixtures/openstack_site.py; Neutron with the `router`
and `bgpvpn` service plugins), through the whole of Isthmus: the API writes intent,
the engine plans the site (engine/l3.py) and the openstack driver realises it
(sites/openstack/l3.py, interconnect.py). Each object is checked STRAIGHT AT THE
SITE with openstacksdk, and gone from there after the delete.

The site's external network is made here by the site's admin; the site config
names it (`external_network`) and the site's admin cloud (`admin_cloud`), which
makes the BGPVPN and places floating IPs at the address Isthmus chose.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openstack.connection import Connection

from isthmus.config import Config, SiteConfig
from isthmus.service import Service
from tests.api.test_compute import V, boot_ok, show
from tests.api.test_network import api, create, make_network
from tests.api.test_network_l3 import _external
from tests.fixtures.openstack_site import OpenStackSite
from tests.support import Cloud
from tests.waiting import wait_for

pytestmark = [
    # the first test may wait for the site's bring-up (started at collection)
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings("ignore:::openstack"),
]

SITE = "os1"
PUBLIC_CIDR = "172.31.10.0/24"  # Isthmus's public network and the site's: the same range


@dataclass
class Stack:
    cloud: Cloud
    admin: Connection  # straight at the site, as its admin
    member: Connection  # straight at the site, as the project Isthmus drives
    external_id: str  # the site's external network


@pytest.fixture
def stack(tmp_path: Path, openstack_site: OpenStackSite) -> Iterator[Stack]:
    admin = openstack_site.connection(admin=True)
    name = f"isthmus-test-public-{uuid.uuid4().hex[:8]}"
    external = admin.network.create_network(name=name, is_router_external=True)
    admin.network.create_subnet(
        network_id=external.id,
        cidr=PUBLIC_CIDR,
        ip_version=4,
        gateway_ip="172.31.10.1",
        is_dhcp_enabled=False,
    )
    config = Config(
        data_dir=tmp_path / "top",
        workers=2,
        health_interval=0.5,
        sites=[
            SiteConfig(
                SITE,
                "openstack",
                {
                    "cloud": openstack_site.cloud,
                    "clouds_yaml": str(openstack_site.clouds_yaml),
                    "default_image": openstack_site.default_image,
                    "admin_cloud": openstack_site.admin_cloud,
                    "external_network": name,
                    "settle_seconds": 20,
                },
            )
        ],
    )
    service = Service(config, run_engine=True)
    service.bootstrap()
    service.start()
    try:
        yield Stack(Cloud(service), admin, openstack_site.connection(), external.id)
    finally:
        service.stop()
        admin.network.delete_network(external, ignore_missing=True)


def test_router_floating_ip_and_bgpvpn_land_in_the_site_and_leave_it(stack: Stack) -> None:
    cloud, admin, member = stack.cloud, stack.admin, stack.member
    wait_for(
        lambda: (
            cloud.client.get(f"/isthmus/v1/sites/{SITE}", headers=cloud.admin).json()["site"][
                "health"
            ]
            == "up"
        ),
        timeout=120,
        interval=0.3,
        what="the site to be up",
    )
    net, sub = make_network(cloud, cidr="10.60.0.0/24", name="app")
    public, _ = _external(cloud, cidr=PUBLIC_CIDR)
    router = create(cloud, "routers", "router", name="edge")["id"]
    path = f"/routers/{router}/add_router_interface"
    api(cloud, "PUT", path, body={"subnet_id": sub["id"]}, status=200)
    gateway = {"router": {"external_gateway_info": {"network_id": public["id"]}}}
    api(cloud, "PUT", f"/routers/{router}", body=gateway, status=200)
    server = boot_ok(cloud, net["id"], "vm", availability_zone=SITE)
    wait_for(
        lambda: show(cloud, server)["status"] == "ACTIVE",
        timeout=120,
        interval=0.3,
        what="the server ACTIVE",
    )
    (port,) = api(cloud, "GET", f"/ports?device_id={server}", status=200)["ports"]
    fip = create(
        cloud, "floatingips", "floatingip", floating_network_id=public["id"], port_id=port["id"]
    )
    cloud.wait_idle(timeout=120)

    # the network's BGPVPN: type l2, the fabric's route target, associated
    vni = api(cloud, "GET", f"/networks/{net['id']}", cloud.admin, status=200)["network"][
        "provider:segmentation_id"
    ]
    site_net = member.network.find_network(f"isthmus-{net['id']}")
    (vpn,) = admin.network.bgpvpns(name=f"isthmus-{net['id']}")
    assert vpn.type == "l2" and vpn.route_targets == [f"65000:{vni}"]
    (association,) = admin.network.bgpvpn_network_associations(vpn)
    assert association.network_id == site_net.id
    fabric = cloud.client.get("/isthmus/v1/fabric", headers=cloud.admin).json()["fabric"]
    (shown,) = [n for n in fabric["networks"] if n["id"] == net["id"]]
    assert shown["route_targets"] == [f"65000:{vni}"]
    assert shown["sites"] == [
        {"site": SITE, "interconnect": "bgpvpn", "status": "up", "reason": None}
    ]

    # the router: its interface at the subnet's gateway with Isthmus's MAC, its
    # gateway on the site's external network
    site_router = member.network.find_router(f"isthmus-{router}")
    assert site_router.external_gateway_info["network_id"] == stack.external_id
    # at Isthmus's gateway address, so the site gives it to nothing else (a floating IP)
    shown_router = api(cloud, "GET", f"/routers/{router}", status=200)["router"]
    chosen = [f["ip_address"] for f in shown_router["external_gateway_info"]["external_fixed_ips"]]
    site_gateway = site_router.external_gateway_info["external_fixed_ips"]
    assert [f["ip_address"] for f in site_gateway] == chosen
    (interface,) = api(cloud, "GET", f"/ports?device_id={router}", status=200)["ports"]
    (leg,) = member.network.ports(device_id=site_router.id)
    assert leg.name == f"isthmus-{interface['id']}"
    assert leg.mac_address == interface["mac_address"]
    assert [f["ip_address"] for f in leg.fixed_ips] == [sub["gateway_ip"]]
    assert api(cloud, "GET", f"/routers/{router}", status=200)["router"]["status"] == "ACTIVE"

    # the floating IP: at Isthmus's address, on the server's port in the site
    (site_fip,) = [f for f in member.network.ips() if f.description == f"isthmus-{fip['id']}"]
    assert site_fip.floating_ip_address == fip["floating_ip_address"]
    site_port = member.network.find_port(f"isthmus-{port['id']}")
    assert (site_fip.port_id, site_fip.floating_network_id) == (site_port.id, stack.external_id)

    # everything leaves the site with the server
    api(cloud, "DELETE", f"/floatingips/{fip['id']}", status=204)
    response = cloud.client.delete(f"{V}/servers/{server}", headers=cloud.demo)
    assert response.status_code == 204, response.text
    cloud.wait_idle(timeout=120)
    wait_for(
        lambda: not list(member.compute.servers()),
        timeout=120,
        interval=0.3,
        what="the server gone from the site",
    )
    assert not [f for f in member.network.ips() if f.description == f"isthmus-{fip['id']}"]
    assert member.network.find_router(f"isthmus-{router}") is None
    assert list(admin.network.bgpvpns(name=f"isthmus-{net['id']}")) == []
    assert member.network.find_network(f"isthmus-{net['id']}") is None
