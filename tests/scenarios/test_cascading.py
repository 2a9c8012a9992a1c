"""Isthmus as a site of Isthmus, two levels deep.

The top Isthmus (in-process, its engine running) has one embedded site,
`top-local`, and one `openstack` site, `lower`, which is a real site-mode Isthmus
(`isthmus up --site-mode --site-name lower-az`, a subprocess) reached through
openstacksdk with that Isthmus's clouds.yaml. Everything is done through the
top's OpenStack API; what lands below is checked with openstacksdk straight at
the lower Isthmus, as an operator of that cloud would see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from isthmus.store.tables import Resource
from tests.fixtures.cascade import below, ok, site_mode_isthmus, top_isthmus
from tests.fixtures.isthmus_process import Running
from tests.support import Cloud
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.timeout(120),
    # openstacksdk's own deprecation notices about its internals
    pytest.mark.filterwarnings("ignore:::openstack"),
]

C, N = "/compute/v2.1", "/network/v2.0"


@pytest.fixture(scope="module")
def lower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with site_mode_isthmus(tmp_path_factory.mktemp("lower")) as running:
        yield running


@pytest.fixture
def top(tmp_path: Path, lower: Running) -> Iterator[Cloud]:
    with top_isthmus(tmp_path / "top", lower) as cloud:
        yield cloud


def test_the_lower_isthmus_is_an_openstack_site_of_the_top(top: Cloud) -> None:
    sites = {
        s["name"]: s for s in ok(top.client.get("/isthmus/v1/sites", headers=top.admin))["sites"]
    }
    assert sites["lower"]["driver"] == "openstack"
    assert sites["lower"]["health"] == "up", sites["lower"]["last_error"]
    assert sites["lower"]["capacity"]["vcpus"] > 0
    zones = ok(top.client.get(f"{C}/os-availability-zone", headers=top.demo))
    names = {z["zoneName"] for z in zones["availabilityZoneInfo"]}
    assert {"top-local", "lower"} <= names


def test_a_server_booted_in_the_openstack_site_lands_below_and_leaves_with_it(
    top: Cloud, lower: Running
) -> None:
    client, demo = top.client, top.demo
    net = ok(
        client.post(f"{N}/networks", headers=demo, json={"network": {"name": "spanning"}}), 201
    )["network"]
    subnet = ok(
        client.post(
            f"{N}/subnets",
            headers=demo,
            json={
                "subnet": {
                    "network_id": net["id"],
                    "cidr": "10.42.0.0/24",
                    "ip_version": 4,
                    "name": "spanning-sub",
                }
            },
        ),
        201,
    )["subnet"]
    with top.service.db.read() as session:
        image = session.scalar(select(Resource.id).where(Resource.kind == "image"))
    server = ok(
        client.post(
            f"{C}/servers",
            headers=demo,
            json={
                "server": {
                    "name": "cascaded",
                    "flavorRef": "1",
                    "imageRef": image,
                    "availability_zone": "lower",
                    "networks": [{"uuid": net["id"]}],
                    "metadata": {"tier": "web"},
                }
            },
        ),
        202,
    )["server"]

    def status() -> str:
        return ok(client.get(f"{C}/servers/{server['id']}", headers=demo))["server"]["status"]

    wait_for(
        lambda: status() == "ACTIVE", timeout=60, interval=0.2, what="the top's server to be ACTIVE"
    )
    shown = ok(client.get(f"{C}/servers/{server['id']}", headers=demo))["server"]
    assert shown["OS-EXT-AZ:availability_zone"] == "lower"
    port = ok(client.get(f"{N}/ports?device_id={server['id']}", headers=demo))["ports"][0]
    fixed_ip = port["fixed_ips"][0]["ip_address"]

    conn = below(lower)
    lower_server = conn.compute.find_server(f"isthmus-{server['id']}")
    assert lower_server is not None
    lower_server = conn.compute.get_server(lower_server.id)
    assert lower_server.status == "ACTIVE"
    assert lower_server.metadata["isthmus_id"] == server["id"]
    assert lower_server.metadata["isthmus_name"] == "cascaded"
    assert lower_server.metadata["tier"] == "web"
    assert lower_server.availability_zone == "lower-az"
    lower_port = conn.network.find_port(f"isthmus-{port['id']}")
    assert lower_port.mac_address == port["mac_address"]
    assert [f["ip_address"] for f in lower_port.fixed_ips] == [fixed_ip]
    assert lower_port.device_id == lower_server.id
    lower_net = conn.network.find_network(f"isthmus-{net['id']}")
    assert lower_net.description == "spanning"
    assert f"isthmus_id={net['id']}" in lower_net.tags
    lower_subnet = conn.network.find_subnet(f"isthmus-{subnet['id']}")
    assert lower_subnet.cidr == "10.42.0.0/24"
    assert lower_subnet.gateway_ip == subnet["gateway_ip"]
    assert lower_port.fixed_ips[0]["subnet_id"] == lower_subnet.id
    assert conn.image.find_image(f"isthmus-{image}") is not None

    # power goes down the levels too
    ok(client.post(f"{C}/servers/{server['id']}/action", headers=demo, json={"os-stop": None}), 202)
    wait_for(
        lambda: status() == "SHUTOFF",
        timeout=60,
        interval=0.2,
        what="the top's server to be SHUTOFF",
    )
    assert conn.compute.get_server(lower_server.id).status == "SHUTOFF"
    ok(
        client.post(f"{C}/servers/{server['id']}/action", headers=demo, json={"os-start": None}),
        202,
    )
    wait_for(
        lambda: status() == "ACTIVE",
        timeout=60,
        interval=0.2,
        what="the top's server to be ACTIVE again",
    )

    # delete at the top: gone below, and the network leaves the site with its last port
    ok(client.delete(f"{C}/servers/{server['id']}", headers=demo), 204)
    wait_for(
        lambda: client.get(f"{C}/servers/{server['id']}", headers=demo).status_code == 404,
        timeout=60,
        interval=0.2,
        what="the top's server to go",
    )

    def gone_below() -> bool:
        return (
            conn.compute.find_server(f"isthmus-{server['id']}") is None
            and conn.network.find_port(f"isthmus-{port['id']}") is None
            and conn.network.find_network(f"isthmus-{net['id']}") is None
        )

    wait_for(
        gone_below,
        timeout=60,
        interval=0.2,
        what="the server, its port and its network to leave the lower Isthmus",
    )
    # the top still has its network and subnet (a network spans sites; it was only
    # realised below while something there used it)
    ok(client.get(f"{N}/networks/{net['id']}", headers=demo))


def test_volumes_and_reboots_cascade_and_security_groups_map_to_the_sites_ids(
    top: Cloud, lower: Running
) -> None:
    client, demo = top.client, top.demo
    net = ok(client.post(f"{N}/networks", headers=demo, json={"network": {"name": "n2"}}), 201)
    net_id = net["network"]["id"]
    body = {"subnet": {"network_id": net_id, "cidr": "10.43.0.0/24", "ip_version": 4}}
    ok(client.post(f"{N}/subnets", headers=demo, json=body), 201)
    with top.service.db.read() as session:
        image = session.scalar(select(Resource.id).where(Resource.kind == "image"))
    server = {
        "name": "vm2",
        "flavorRef": "1",
        "imageRef": image,
        "availability_zone": "lower",
        "networks": [{"uuid": net_id}],
    }
    server_id = ok(client.post(f"{C}/servers", headers=demo, json={"server": server}), 202)[
        "server"
    ]["id"]

    def server_status() -> str:
        return ok(client.get(f"{C}/servers/{server_id}", headers=demo))["server"]["status"]

    wait_for(
        lambda: server_status() == "ACTIVE",
        timeout=60,
        interval=0.2,
        what="the server to be ACTIVE",
    )
    conn = below(lower)
    lower_server = conn.compute.find_server(f"isthmus-{server_id}")

    # the project's default group allows its own members in: the site's rule names the
    # site's copy of that group
    port = ok(client.get(f"{N}/ports?device_id={server_id}", headers=demo))["ports"][0]
    (group_id,) = port["security_groups"]
    lower_group = conn.network.find_security_group(f"isthmus-{group_id}")
    remote = {
        r.remote_group_id
        for r in conn.network.security_group_rules(security_group_id=lower_group.id)
        if r.remote_group_id
    }
    assert remote == {lower_group.id}

    # reboot goes down and comes back
    ok(
        client.post(
            f"{C}/servers/{server_id}/action", headers=demo, json={"reboot": {"type": "SOFT"}}
        ),
        202,
    )
    wait_for(
        lambda: conn.compute.get_server(lower_server.id).metadata.get("isthmus_reboots") == "1",
        timeout=60,
        interval=0.2,
        what="the site's server to be asked for one reboot",
    )
    wait_for(
        lambda: server_status() == "ACTIVE",
        timeout=60,
        interval=0.2,
        what="the server to be ACTIVE after its reboot",
    )

    # a volume in the openstack site's zone: created, attached, detached, deleted below
    V = "/volume/v3"
    volume = ok(
        client.post(
            f"{V}/volumes",
            headers=demo,
            json={"volume": {"size": 1, "name": "data", "availability_zone": "lower"}},
        ),
        202,
    )["volume"]

    def volume_status() -> str:
        return ok(client.get(f"{V}/volumes/{volume['id']}", headers=demo))["volume"]["status"]

    wait_for(
        lambda: volume_status() == "available",
        timeout=60,
        interval=0.2,
        what="the volume to be available",
    )
    lower_volume = conn.block_storage.find_volume(f"isthmus-{volume['id']}")
    assert lower_volume.metadata["isthmus_name"] == "data"
    attach = {"volumeAttachment": {"volumeId": volume["id"]}}
    ok(client.post(f"{C}/servers/{server_id}/os-volume_attachments", headers=demo, json=attach))
    wait_for(
        lambda: volume_status() == "in-use",
        timeout=60,
        interval=0.2,
        what="the volume to be in-use",
    )
    attachments = conn.block_storage.get_volume(lower_volume.id).attachments
    assert [a["server_id"] for a in attachments] == [lower_server.id]
    detach = f"{C}/servers/{server_id}/os-volume_attachments/{volume['id']}"
    assert client.delete(detach, headers=demo).status_code == 202
    wait_for(
        lambda: volume_status() == "available",
        timeout=60,
        interval=0.2,
        what="the volume to be available again",
    )
    assert conn.block_storage.get_volume(lower_volume.id).attachments == []
    assert client.delete(f"{V}/volumes/{volume['id']}", headers=demo).status_code == 202
    wait_for(
        lambda: conn.block_storage.find_volume(f"isthmus-{volume['id']}") is None,
        timeout=60,
        interval=0.2,
        what="the volume to leave the lower Isthmus",
    )
    assert client.delete(f"{C}/servers/{server_id}", headers=demo).status_code == 204
    wait_for(
        lambda: conn.compute.find_server(f"isthmus-{server_id}") is None,
        timeout=60,
        interval=0.2,
        what="the server to leave the lower Isthmus",
    )
