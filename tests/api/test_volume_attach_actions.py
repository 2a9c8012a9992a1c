"""Cinder's attach actions (the flow Nova used before the attachments API):
os-reserve / os-unreserve, os-attach / os-detach to a server (the site attaches it),
os-begin_detaching / os-roll_detaching, os-initialize_connection /
os-terminate_connection, os-set_bootable's 200, and GET extensions."""

from __future__ import annotations

from typing import Any

from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, add_network, add_server, project_id

V3 = "/volume/v3"


def act(cloud: Cloud, volume_id: str, body: dict[str, Any]) -> Any:
    return cloud.client.post(f"{V3}/volumes/{volume_id}/action", headers=cloud.demo, json=body)


def status(cloud: Cloud, volume_id: str) -> str:
    body = cloud.client.get(f"{V3}/volumes/{volume_id}", headers=cloud.demo).json()["volume"]
    return str(body["status"])


def test_reserve_attach_detach_as_cinder(cloud: Cloud) -> None:
    volume = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"size": 1, "availability_zone": "site-a"}},
    ).json()["volume"]
    project = project_id(cloud.service)
    net, _ = add_network(cloud.service, project)
    server = add_server(cloud.service, project, net, az="site-a")
    cloud.wait_idle()
    vid = volume["id"]

    assert act(cloud, vid, {"os-reserve": None}).status_code == 202
    assert status(cloud, vid) == "attaching"
    assert act(cloud, vid, {"os-reserve": None}).status_code == 400  # not available any more
    assert act(cloud, vid, {"os-unreserve": None}).status_code == 202
    assert status(cloud, vid) == "available"
    assert act(cloud, vid, {"os-reserve": None}).status_code == 202
    attach = {"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdc", "mode": "rw"}}
    assert act(cloud, vid, attach).status_code == 202
    cloud.wait_idle()
    body = cloud.client.get(f"{V3}/volumes/{vid}", headers=cloud.demo).json()["volume"]
    assert body["status"] == "in-use"
    assert (body["attachments"][0]["server_id"], body["attachments"][0]["device"]) == (
        server,
        "/dev/vdc",
    )
    assert cloud.service.sites.get("site-a").observe("volume", vid).status == "in-use"
    nova = cloud.client.get(
        f"/compute/v2.1/servers/{server}/os-volume_attachments", headers=cloud.demo
    ).json()["volumeAttachments"]
    assert [a["volumeId"] for a in nova] == [vid]

    connector = {"connector": {"initiator": "iqn.1993-08.org.debian:01:test", "host": "h"}}
    info = act(cloud, vid, {"os-initialize_connection": connector})
    assert info.status_code == 200, info.text
    assert info.json()["connection_info"]["data"]["volume_id"] == vid
    assert act(cloud, vid, {"os-terminate_connection": connector}).status_code == 202

    assert act(cloud, vid, {"os-begin_detaching": None}).status_code == 202
    assert status(cloud, vid) == "detaching"
    assert act(cloud, vid, {"os-roll_detaching": None}).status_code == 202
    assert status(cloud, vid) == "in-use"
    assert act(cloud, vid, {"os-begin_detaching": None}).status_code == 202
    assert act(cloud, vid, {"os-detach": {"attachment_id": None}}).status_code == 202
    cloud.wait_idle()
    body = cloud.client.get(f"{V3}/volumes/{vid}", headers=cloud.demo).json()["volume"]
    assert (body["status"], body["attachments"]) == ("available", [])

    bootable = act(cloud, vid, {"os-set_bootable": {"bootable": True}})
    assert bootable.status_code == 200


def test_refused_attach_actions_change_nothing(cloud: Cloud) -> None:
    volume = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"size": 1, "availability_zone": "site-b"}},
    ).json()["volume"]
    project = project_id(cloud.service)
    net, _ = add_network(cloud.service, project)
    elsewhere = add_server(cloud.service, project, net, az="site-a")
    cloud.wait_idle()
    vid = volume["id"]
    before = snapshot(cloud.service)
    missing = "0b5f4ab6-1f5b-4cd5-bb8f-3b3f3e4b0a5e"
    cases: list[tuple[dict[str, Any], int]] = [
        ({"os-attach": {"instance_uuid": missing, "mountpoint": "/dev/vdb"}}, 404),
        ({"os-attach": {"instance_uuid": elsewhere, "mode": "rx"}}, 400),
        ({"os-attach": {"host_name": "somehost", "mountpoint": "/dev/vdb"}}, 400),
        ({"os-attach": {"instance_uuid": elsewhere}}, 400),  # another zone
        ({"os-detach": {}}, 400),  # not attached
        ({"os-begin_detaching": None}, 400),
        ({"os-initialize_connection": {}}, 400),
        ({"os-no_such_thing": {}}, 400),
    ]
    for body, code in cases:
        answer = act(cloud, vid, body)
        assert answer.status_code == code, (body, answer.text)
    assert act(cloud, missing, {"os-reserve": None}).status_code == 404
    after = difference(before, snapshot(cloud.service))
    assert [p for p in after.split("; ") if p and not p.startswith("sites:")] == []
    assert status(cloud, vid) == "available"


def test_extensions_list(cloud: Cloud) -> None:
    answer = cloud.client.get(f"{V3}/extensions", headers=cloud.demo)
    assert answer.status_code == 200
    aliases = {e["alias"] for e in answer.json()["extensions"]}
    assert {"os-volume-actions", "os-vol-image-meta", "os-admin-actions"} <= aliases
    for extension in answer.json()["extensions"]:
        assert set(extension) == {"alias", "name", "description", "namespace", "updated", "links"}
