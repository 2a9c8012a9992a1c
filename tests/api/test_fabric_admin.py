"""The fabric in the admin API (`GET /isthmus/v1/fabric`) and in an admin's network
body (`isthmus:interconnect`): VNIs, route targets, and per site how the network's
copy there joins the others, up or degraded with the reason.

Two setups: the in-process cloud with embedded sites (their data plane decides
between `evpn` and `none`), and a top Isthmus with an `openstack` site that is a
real site-mode Isthmus (a subprocess), which offers no bgpvpn extension: the
network must show that site degraded with the reason, not pretend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from isthmus.fabric.capability import DATA_PLANE
from isthmus.store.tables import Site
from tests.api.test_compute import V, boot_ok
from tests.api.test_network import api, make_network
from tests.fixtures.cascade import site_mode_isthmus, top_isthmus
from tests.fixtures.isthmus_process import Running
from tests.support import Cloud
from tests.waiting import wait_for

FABRIC = "/isthmus/v1/fabric"


def fabric(cloud: Cloud, headers: dict[str, str] | None = None, status: int = 200) -> Any:
    response = cloud.client.get(FABRIC, headers=headers or cloud.admin)
    assert response.status_code == status, response.text
    return response.json()


def entry(cloud: Cloud, network_id: str) -> dict[str, Any]:
    (found,) = [n for n in fabric(cloud)["fabric"]["networks"] if n["id"] == network_id]
    return found


def test_fabric_shows_vnis_route_targets_and_how_each_site_joins(cloud: Cloud) -> None:
    net, _ = make_network(cloud, cidr="10.40.0.0/24", name="spanning")
    boot_ok(cloud, net["id"], "a", availability_zone="site-a")
    b = boot_ok(cloud, net["id"], "b", availability_zone="site-b")
    cloud.wait_idle()

    body = fabric(cloud)["fabric"]
    assert body["asn"] == 65000
    assert body["vni_range"] == list(cloud.service.config.vni_range)
    vni = api(cloud, "GET", f"/networks/{net['id']}", cloud.admin, status=200)["network"][
        "provider:segmentation_id"
    ]
    shown = entry(cloud, net["id"])
    assert shown["segmentation_id"] == vni and shown["route_targets"] == [f"65000:{vni}"]
    assert shown["spanning"] is True and shown["project_id"] == net["project_id"]
    assert [s["site"] for s in shown["sites"]] == ["site-a", "site-b"]
    with cloud.service.db.read() as session:
        planes = {
            name: plane for name, plane in session.execute(select(Site.name, Site.data_plane))
        }
    for link in shown["sites"]:
        if planes[link["site"]] == DATA_PLANE:
            assert (link["interconnect"], link["status"], link["reason"]) == ("evpn", "up", None)
        else:  # control plane only (no root/FRR here): said, not pretended
            assert (link["interconnect"], link["status"]) == ("none", "degraded")
            assert "no fabric gateway" in link["reason"]
    degraded = any(link["status"] == "degraded" for link in shown["sites"])
    assert shown["status"] == ("degraded" if degraded else "up")

    # the admin's network body says the same per site; a member's has no such key
    admin_view = api(cloud, "GET", f"/networks/{net['id']}", cloud.admin, status=200)["network"]
    assert sorted(admin_view["isthmus:interconnect"]) == ["site-a", "site-b"]
    assert admin_view["isthmus:interconnect"]["site-a"] == {
        k: shown["sites"][0][k] for k in ("interconnect", "status", "reason")
    }
    member_view = api(cloud, "GET", f"/networks/{net['id']}", status=200)["network"]
    assert "isthmus:interconnect" not in member_view
    assert "provider:segmentation_id" not in member_view

    # the network leaves site-b with its last server there: so does site-b's report
    response = cloud.client.delete(f"{V}/servers/{b}", headers=cloud.demo)
    assert response.status_code == 204, response.text
    cloud.wait_idle()
    shown = entry(cloud, net["id"])
    assert [s["site"] for s in shown["sites"]] == ["site-a"] and shown["spanning"] is False
    admin_view = api(cloud, "GET", f"/networks/{net['id']}", cloud.admin, status=200)["network"]
    assert sorted(admin_view["isthmus:interconnect"]) == ["site-a"]


def test_fabric_is_admin_only_and_documented(cloud: Cloud) -> None:
    denied = fabric(cloud, cloud.demo, status=403)
    assert "Policy does not allow" in str(denied)
    assert cloud.client.get(FABRIC).status_code == 401
    spec = cloud.client.get("/isthmus/v1/openapi.json").json()
    operation = spec["paths"][FABRIC]["get"]
    assert "403" in operation["responses"]
    schema = spec["components"]["schemas"]["FabricNetwork"]["properties"]
    assert {"segmentation_id", "route_targets", "sites"} <= set(schema)


# -- an OpenStack site without bgpvpn: a site-mode Isthmus ------------------------------------


@pytest.fixture(scope="module")
def lower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with site_mode_isthmus(tmp_path_factory.mktemp("lower")) as running:
        yield running


@pytest.fixture
def top(tmp_path: Path, lower: Running) -> Iterator[Cloud]:
    with top_isthmus(tmp_path / "top", lower) as cloud:
        yield cloud


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:::openstack")
def test_an_openstack_site_without_bgpvpn_shows_the_network_degraded_there(top: Cloud) -> None:
    net, _ = make_network(top, cidr="10.41.0.0/24", name="reaching")
    boot_ok(top, net["id"], "up-here", availability_zone="top-local")
    server = boot_ok(top, net["id"], "down-there", availability_zone="lower")

    def both_sites() -> dict[str, dict[str, Any]] | None:
        links = {s["site"]: s for s in entry(top, net["id"])["sites"]}
        return links if "lower" in links and "top-local" in links else None

    links = wait_for(both_sites, timeout=60, interval=0.2, what="the network in both sites")
    lower_link = links["lower"]
    assert (lower_link["interconnect"], lower_link["status"]) == ("none", "degraded")
    assert "site lower offers no bgpvpn extension" in lower_link["reason"]
    assert "does not reach other sites" in lower_link["reason"]
    shown = entry(top, net["id"])
    assert shown["status"] == "degraded" and shown["spanning"] is True
    # the network itself is fine: ACTIVE, with the reason for admins in its body
    network = api(top, "GET", f"/networks/{net['id']}", top.admin, status=200)["network"]
    assert network["status"] == "ACTIVE"
    assert network["isthmus:interconnect"]["lower"] == {
        "interconnect": "none",
        "status": "degraded",
        "reason": lower_link["reason"],
    }
    response = top.client.delete(f"{V}/servers/{server}", headers=top.demo)
    assert response.status_code == 204, response.text
    top.wait_idle(timeout=60)
    assert "lower" not in {s["site"] for s in entry(top, net["id"])["sites"]}


def test_the_new_openstack_site_keys_are_validated(cloud: Cloud) -> None:
    for key, value in (("external_network", 5), ("admin_cloud", ["os-site-admin"])):
        body = {"name": "os9", "driver": "openstack", "config": {"cloud": "c", key: value}}
        response = cloud.client.post("/isthmus/v1/sites", headers=cloud.admin, json=body)
        assert response.status_code == 400, response.text
        assert f"Config key {key!r} must be str" in response.text
    assert cloud.client.get("/isthmus/v1/sites/os9", headers=cloud.admin).status_code == 404
